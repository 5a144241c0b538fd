//! `GET /api/v1/openapi.json` is an OpenAPI 3.1 document of exactly the routes the gateway
//! serves, with the error body and every error code.

use crate::helpers::*;
use api_gateway::error::ErrorCode;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every route the gateway's router serves (`routes::router` and `shared::health::router`).
/// The test asks the real router for each, so an entry the router does not serve fails, and
/// compares the list with the document both ways.
const ROUTES: [(&str, &str); 28] = [
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/api/v1/items"),
    ("post", "/api/v1/items"),
    ("get", "/api/v1/items/{id}"),
    ("post", "/api/v1/items/{id}/bid"),
    ("post", "/api/v1/items/{id}/buy"),
    ("get", "/api/v1/items/{id}/bids"),
    ("post", "/api/v1/items/{id}/close"),
    ("post", "/api/v1/items/{id}/cancel"),
    ("post", "/api/v1/items/{id}/extend"),
    ("post", "/api/v1/items/{id}/relist"),
    ("get", "/api/v1/users/{id}/bids"),
    ("get", "/api/v1/users/{id}/stats"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/me"),
    ("get", "/api/v1/me/watchlist"),
    ("put", "/api/v1/me/watchlist/{item_id}"),
    ("delete", "/api/v1/me/watchlist/{item_id}"),
    ("get", "/api/v1/me/notifications"),
    ("post", "/api/v1/me/notifications/read"),
    ("put", "/api/v1/admin/users/{id}/suspension"),
];

/// Every `$ref` in `value`.
fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                refs.push(reference.clone());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(values) => values.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_exactly_the_routes_the_router_serves() {
    let app = spawn_app().await;
    let reply = app.get("/api/v1/openapi.json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let doc = reply.body;
    let version = doc["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1, got {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a local schema reference: {reference}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{reference} resolves"
        );
    }

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(|method| ((*method).to_owned(), path.clone()))
        })
        .collect();
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(
        documented, listed,
        "the document lists exactly the served routes"
    );

    for (method, path) in ROUTES {
        let url = app.url(&path.replace("{id}", "lot-1").replace("{item_id}", "lot-1"));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut request = app.http().request(method.clone(), url);
        if method != reqwest::Method::GET {
            request = request.json(&serde_json::json!({}));
        }
        let reply = app.send(request).await;
        assert_ne!(reply.status, 405, "{method} {path} is served");
        assert!(
            !(reply.status == 404 && reply.body["error"] == "not_found"),
            "{method} {path} is served: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn every_error_response_is_the_error_body_with_every_error_code() {
    let app = spawn_app().await;
    let doc = app.get("/api/v1/openapi.json").await.body;
    let schemas = &doc["components"]["schemas"];
    let codes: Vec<&str> = schemas["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode is an enum")
        .iter()
        .map(|code| code.as_str().expect("a string code"))
        .collect();
    let expected: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    assert_eq!(codes, expected);
    let unique: BTreeSet<&str> = codes.iter().copied().collect();
    assert_eq!(unique.len(), codes.len(), "each code once");
    let body = &schemas["ErrorBody"];
    assert_eq!(body["required"], serde_json::json!(["error", "message"]));
    assert_eq!(
        body["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorCode"
    );

    // Every 4xx/5xx answer a handler documents has that body.
    let mut errors = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for (status, response) in responses {
                if status.starts_with('4') {
                    let schema = &response["content"]["application/json"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                    errors += 1;
                }
            }
        }
    }
    assert!(errors > 50, "the handlers document their errors ({errors})");
}

#[tokio::test]
async fn the_history_row_schema_shows_the_automatic_flag_and_no_maximum() {
    let app = spawn_app().await;
    let doc = app.get("/api/v1/openapi.json").await.body;
    let row = &doc["components"]["schemas"]["ArchivedBid"];
    assert_eq!(row["properties"]["automatic"]["type"], "boolean", "{row}");
    let required = row["required"].as_array().expect("required fields");
    assert!(required.iter().any(|f| f == "automatic"), "{row}");
    let fields = row["properties"].as_object().expect("properties");
    assert!(
        fields.keys().all(|name| !name.contains("max")),
        "no maximum in a row: {row}"
    );
}

/// The property names of the request body schema of `method path`, following `$ref`s and
/// `allOf` (a flattened part).
fn request_fields(doc: &Value, method: &str, path: &str) -> BTreeSet<String> {
    fn walk(doc: &Value, schema: &Value, out: &mut BTreeSet<String>) {
        if let Some(Value::String(reference)) = schema.get("$ref") {
            let name = reference.trim_start_matches("#/components/schemas/");
            walk(doc, &doc["components"]["schemas"][name], out);
        }
        if let Some(parts) = schema["allOf"].as_array() {
            parts.iter().for_each(|part| walk(doc, part, out));
        }
        if let Some(fields) = schema["properties"].as_object() {
            out.extend(fields.keys().cloned());
        }
    }
    let mut out = BTreeSet::new();
    let schema =
        &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    walk(doc, schema, &mut out);
    out
}

#[tokio::test]
async fn creating_and_relisting_document_the_same_round_terms() {
    let app = spawn_app().await;
    let doc = app.get("/api/v1/openapi.json").await.body;
    let create = request_fields(&doc, "post", "/api/v1/items");
    let relist = request_fields(&doc, "post", "/api/v1/items/{id}/relist");
    for term in ["starting_price", "increments", "buy_now_price", "end_time"] {
        assert!(relist.contains(term), "{term} in {relist:?}");
    }
    let own: BTreeSet<String> = ["id", "name", "description"].map(String::from).into();
    let expected: BTreeSet<String> = relist.union(&own).cloned().collect();
    assert_eq!(create, expected);
}
