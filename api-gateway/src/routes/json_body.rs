//! `JsonBody<T>`: reads the body (within the size limit) and decodes it with serde_json.
//!
//! Unlike `axum::Json` it does not insist on a `Content-Type` (the original Go clients did not
//! always send one) and every failure is an `ApiError` with the serde message, so a client
//! learns exactly which field broke which rule.

use crate::error::{ApiError, ErrorCode};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::new(ErrorCode::InvalidBody, rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            let code = if e.is_data() {
                ErrorCode::InvalidInput
            } else {
                ErrorCode::InvalidJson
            };
            ApiError::new(code, e.to_string())
        })
    }
}
