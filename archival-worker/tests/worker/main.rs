//! The archival worker's black-box tests: real gateway, NATS (JetStream) and PostgreSQL; each
//! test has its own database, stream and subject prefix.

mod archive;
mod failures;
mod helpers;
mod notifications;
mod poison;
mod supervision;
