//! Sockhop's core crate: everything the Lambda functions share.
//!
//! Pure decisions — tokens, claims, permissions, names, wire frames — live in
//! [`token`], [`claims`], [`pattern`], [`names`], [`protocol`] and [`error`].
//! I/O lives only in [`store`] (DynamoDB) and [`gateway`] (the API Gateway
//! management API). [`ops`] joins them into the operations every entry point
//! runs, and [`app`] builds the shared state once per process.

pub mod app;
pub mod claims;
pub mod error;
pub mod gateway;
pub mod lambda;
pub mod names;
pub mod ops;
pub mod pattern;
pub mod protocol;
pub mod store;
pub mod token;

pub use app::App;
