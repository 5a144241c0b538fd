//! Creating, reading and listing auctions.
//!
//! Creating one needs an access token: its account is the auction's seller (`seller_id`, kept
//! in the item and carried by every event of it), unless an admin suspended it from selling
//! (403 `account_suspended`). Reading and listing are public.
//!
//! The listing (`GET /api/v1/items`) is paged with an opaque cursor over the per-shard listing
//! sets (`store::listing`): one status, one order, `limit` items per page.

use super::error_schema as refused;
use super::identity::Identity;
use super::json_body::JsonBody;
use super::round_terms::{RawFields, RoundTermsRequest};
use super::{AppState, item_id};
use crate::auth::error::Activity;
use crate::error::{ApiError, ErrorCode};
use crate::store::{CreatedItem, ListingCursor, ListingQuery, NewItem};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use shared::item_state::ItemView;
use shared::redis_keys::ListingOrder;
use shared::text::{ItemDescription, ItemName};
use shared::{IncrementTable, ItemId, ItemStatus, Timestamp, UserId};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/items", get(list_items).post(create_item))
        .route("/api/v1/items/{id}", get(get_item))
}

/// `POST /api/v1/items`: the item's own fields and its first round's terms
/// ([`RoundTermsRequest`], which a relist takes as well). Read from the body's raw fields
/// (see `round_terms` for why not `flatten`).
#[derive(Debug, Deserialize)]
#[serde(try_from = "RawFields")]
struct CreateItemRequest {
    id: Option<ItemId>,
    name: String,
    description: String,
    terms: RoundTermsRequest,
}

/// The document shows one flat object: the terms' schema with the item's own fields added.
/// (utoipa would render a flattened struct as `allOf` of two closed objects, each refusing
/// the other's fields: a body no client could send.)
impl PartialSchema for CreateItemRequest {
    fn schema() -> RefOr<Schema> {
        let mut schema = RoundTermsRequest::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            let text = |description: &str| {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(description))
                    .into()
            };
            object.properties.insert(
                "id".to_owned(),
                text("the item's id (letters, digits, `-`, `_`); generated when absent"),
            );
            object
                .properties
                .insert("name".to_owned(), text("the item's name"));
            object.properties.insert(
                "description".to_owned(),
                text("what is sold (empty when absent)"),
            );
            object.required.push("name".to_owned());
            object.description =
                Some("A new item: its own fields and its first round's terms.".to_owned());
        }
        schema
    }
}

impl ToSchema for CreateItemRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <RoundTermsRequest as ToSchema>::schemas(schemas);
    }
}

impl TryFrom<RawFields> for CreateItemRequest {
    type Error = serde_json::Error;

    fn try_from(mut fields: RawFields) -> Result<Self, serde_json::Error> {
        let id: Option<Option<ItemId>> = take(&mut fields, "id")?;
        let name = take(&mut fields, "name")?
            .ok_or_else(|| <serde_json::Error as serde::de::Error>::missing_field("name"))?;
        let description = take(&mut fields, "description")?.unwrap_or_default();
        Ok(Self {
            id: id.flatten(),
            name,
            description,
            terms: RoundTermsRequest::from_rest(&fields)?,
        })
    }
}

/// Takes field `name` out of `fields` and decodes it; `None` when absent.
fn take<T: serde::de::DeserializeOwned>(
    fields: &mut RawFields,
    name: &str,
) -> Result<Option<T>, serde_json::Error> {
    fields
        .remove(name)
        .map(|raw| {
            serde_json::from_str(raw.get())
                .map_err(|e| serde::de::Error::custom(format_args!("{name}: {e}")))
        })
        .transpose()
}

impl CreateItemRequest {
    /// Applies the rules serde cannot express; `seller` creates it.
    fn validate(self, seller: UserId, default: &IncrementTable) -> Result<NewItem, ApiError> {
        let name = ItemName::parse(&self.name)
            .map_err(|e| ApiError::new(ErrorCode::InvalidName, format!("name {e}")))?;
        let description = ItemDescription::parse(&self.description).map_err(|e| {
            ApiError::new(ErrorCode::InvalidDescription, format!("description {e}"))
        })?;
        Ok(NewItem {
            id: self.id.unwrap_or_else(|| {
                // "item-" + 32 hex digits: always a valid id.
                ItemId::parse(format!("item-{}", uuid::Uuid::now_v7().simple()))
                    .expect("generated ids match the id rules")
            }),
            name: name.into_string(),
            description: description.into_string(),
            terms: self.terms.validate(default)?,
            seller_id: Some(seller),
        })
    }
}

#[tracing::instrument(skip_all, fields(item_id = tracing::field::Empty))]
#[utoipa::path(
    post, path = "/api/v1/items", tag = "items", security(("bearer" = [])),
    request_body = CreateItemRequest,
    responses((status = 201, description = "the item created", body = serde_json::Value), refused::BadInput, refused::Unauthenticated, refused::Forbidden, refused::Conflict, refused::BodyTimedOut, refused::TooLarge, refused::Throttled, refused::Unavailable)
)]
async fn create_item(
    State(ctx): State<AppState>,
    seller: Identity,
    JsonBody(request): JsonBody<CreateItemRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if ctx.suspensions.forbids(&seller.user_id, Activity::Sell) {
        return Err(ApiError::new(
            ErrorCode::AccountSuspended,
            "this account is suspended from selling",
        ));
    }
    let item = request.validate(seller.user_id, &ctx.config.default_increments)?;
    tracing::Span::current().record("item_id", tracing::field::display(&item.id));
    match ctx.store.create_item(&item).await? {
        CreatedItem::Created => {}
        CreatedItem::Exists => {
            return Err(ApiError::new(
                ErrorCode::ItemExists,
                format!("item {} already exists", item.id),
            ));
        }
        CreatedItem::EndsInThePast => {
            return Err(ApiError::new(
                ErrorCode::InvalidEndTime,
                "end_time must be in the future and after start_time",
            ));
        }
    }
    let view = read_view(&ctx, &item.id).await?;
    let location = format!("/api/v1/items/{}", item.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    ))
}

async fn read_view(ctx: &AppState, id: &ItemId) -> Result<ItemView, ApiError> {
    let state = ctx
        .store
        .get_item(id)
        .await?
        .ok_or_else(|| ApiError::ItemNotFound(id.to_string()))?;
    Ok(state.view(Timestamp::now()))
}

#[tracing::instrument(skip_all, fields(item_id = %raw))]
#[utoipa::path(
    get, path = "/api/v1/items/{id}", tag = "items",
    params(("id" = String, Path, description = "item id")),
    responses((status = 200, description = "the item", body = serde_json::Value), refused::BadInput, refused::NotFound, refused::Throttled, refused::Unavailable)
)]
async fn get_item(
    State(ctx): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<ItemView>, ApiError> {
    let id = item_id(raw)?;
    read_view(&ctx, &id).await.map(Json)
}

/// Most items per page.
const MAX_LIMIT: usize = 100;
/// Default items per page.
const DEFAULT_LIMIT: usize = 20;
/// Longest name search, in characters (a name has at most 200).
const MAX_QUERY_CHARS: usize = 100;

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    sort: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

impl ListQuery {
    /// The listing asked for, or a 400 naming the parameter.
    fn validate(self) -> Result<ListingQuery, ApiError> {
        let status = match self.status.as_deref() {
            None | Some("" | "active") => ItemStatus::Active,
            Some("scheduled") => ItemStatus::Scheduled,
            Some("closed") => ItemStatus::Closed,
            Some("cancelled") => ItemStatus::Cancelled,
            Some(other) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidStatus,
                    format!("status must be active, scheduled, closed or cancelled, not {other:?}"),
                ));
            }
        };
        let order = match self.sort.as_deref() {
            None | Some("" | "ending_soon") => ListingOrder::EndingSoon,
            Some("newest") => ListingOrder::Newest,
            Some(other) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("sort must be ending_soon or newest, not {other:?}"),
                ));
            }
        };
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(_) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidLimit,
                    format!("limit must be between 1 and {MAX_LIMIT}"),
                ));
            }
        };
        let name_contains = match self.q.as_deref() {
            None | Some("") => None,
            Some(q) if q.chars().count() > MAX_QUERY_CHARS || q.chars().any(char::is_control) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!(
                        "q must be at most {MAX_QUERY_CHARS} characters, without control characters"
                    ),
                ));
            }
            Some(q) => Some(q.to_lowercase()),
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(text) => Some(ListingCursor::parse(text, status, order).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidCursor,
                    "cursor must be a next_cursor of a previous page with the same status and sort",
                )
            })?),
        };
        Ok(ListingQuery {
            status,
            order,
            after,
            limit,
            name_contains,
        })
    }
}

#[tracing::instrument(skip_all)]
#[utoipa::path(
    get, path = "/api/v1/items", tag = "items",
    params(
        ("status" = Option<String>, Query, description = "active (default), scheduled, closed or cancelled", pattern = "^(active|scheduled|closed|cancelled)$"),
        ("sort" = Option<String>, Query, description = "ending_soon (default: soonest end first) or newest (most recently listed first)", pattern = "^(ending_soon|newest)$"),
        ("q" = Option<String>, Query, description = "only items whose name contains this, ignoring case (at most 100 characters); a page may then hold fewer than `limit` items while `next_cursor` is set"),
        ("limit" = Option<u32>, Query, description = "items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "the `next_cursor` of the previous page (same status and sort)"),
    ),
    responses((status = 200, description = "a page of items: `{items, count, next_cursor}` (`next_cursor` null on the last page)", body = serde_json::Value), (status = 400, description = "invalid input (see `error`; a bad cursor is `invalid_cursor`)", body = super::error_schema::ErrorBody), refused::Throttled, refused::Unavailable)
)]
async fn list_items(
    State(ctx): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let query = query.validate()?;
    let now = Timestamp::now();
    let page = ctx.store.list_items(&query, now).await?;
    let items: Vec<ItemView> = page.items.iter().map(|state| state.view(now)).collect();
    let next = page
        .next
        .map(|cursor| cursor.encode(query.status, query.order));
    Ok(Json(
        json!({ "items": items, "count": items.len(), "next_cursor": next }),
    ))
}
