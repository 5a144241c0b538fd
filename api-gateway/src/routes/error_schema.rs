//! The OpenAPI schema of the body of every error answer, `{"error": code, "message": text}`,
//! apart from the document (`openapi`) so the handlers' `#[utoipa::path]`
//! annotations can name it without the document and the handlers using each other.

use crate::error::ErrorCode;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

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
        RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorCode"))
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
