//! The OpenAPI schema of the body of every error answer, `{"error": code, "message": text}`,
//! and the error answers the routes share ([`BadInput`] … [`Unavailable`]), apart from the
//! document (`openapi`) so the handlers' `#[utoipa::path]` annotations can name them without
//! the document and the handlers using each other. A route lists the refusals it can give by
//! name, and writes a tuple only where its meaning is its own (`buy_now`'s 409).

use crate::error::ErrorCode;
use std::collections::BTreeMap;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{Content, Ref, RefOr, Response, Schema};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

/// The body of every error answer: `error` is one of [`ErrorCode`]'s wire strings (clients
/// match on it), `message` says what to change. Only its schema is used: the body itself is
/// written by `shared::error_body::response`.
pub struct ErrorBody;

impl PartialSchema for ErrorBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property("error", ErrorCode::name_ref())
            .property(
                "message",
                ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)),
            )
            .required("error")
            .required("message")
            .into()
    }
}

impl ToSchema for ErrorBody {}

impl ErrorCode {
    fn name_ref() -> RefOr<Schema> {
        RefOr::Ref(Ref::from_schema_name("ErrorCode"))
    }
}

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.as_str())))
            .into()
    }
}

impl ToSchema for ErrorCode {}

/// An error answer with the status `STATUS` and an [`ErrorBody`], described once for every
/// route that gives it; the aliases below are what the annotations name.
pub struct Refusal<const STATUS: u16>;

pub type BadInput = Refusal<400>;
pub type Unauthenticated = Refusal<401>;
pub type Forbidden = Refusal<403>;
pub type NotFound = Refusal<404>;
pub type BodyTimedOut = Refusal<408>;
pub type Conflict = Refusal<409>;
pub type TooLarge = Refusal<413>;
pub type Throttled = Refusal<429>;
pub type Unavailable = Refusal<503>;

impl<const STATUS: u16> Refusal<STATUS> {
    const DESCRIPTION: &'static str = match STATUS {
        400 => "invalid input (see `error`)",
        401 => "no or invalid bearer token",
        403 => "not allowed for this account",
        404 => "no such item or account",
        408 => "the request body did not arrive in time",
        409 => "conflicts with the state of the item or account",
        413 => "request body too large",
        429 => "too many requests; see Retry-After",
        503 => "a dependency is unavailable; retry",
        _ => panic!("a refusal without a description"),
    };
}

impl<const STATUS: u16> IntoResponses for Refusal<STATUS> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let response = ResponseBuilder::new()
            .description(Self::DESCRIPTION)
            .content(
                "application/json",
                Content::new(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody")))),
            )
            .build();
        BTreeMap::from([(STATUS.to_string(), RefOr::T(response))])
    }
}
