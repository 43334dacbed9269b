//! Sockhop's core crate: everything the Lambda functions share.
//!
//! Pure decisions — tokens, claims, permissions, names, wire frames — live in
//! [`token`], [`claims`], [`pattern`], [`names`], [`protocol`] and [`error`].
//! [`ops`] are the operations: they read through [`store`] (the only code that
//! knows the table) and return [`effects`]; [`driver`] performs effects
//! through [`gateway`] (the API Gateway management API) and is what handlers
//! call. Publishes wait in [`queue`] for the deliver function; [`api_keys`] holds
//! the server API's keys. [`app`] is built once per process; [`clock`] and [`ids`] give time
//! and message ids as values. See docs/architecture.md.

pub mod api_keys;
pub mod app;
pub mod claims;
pub mod clock;
pub mod driver;
pub mod effects;
pub mod error;
pub mod gateway;
pub mod ids;
pub mod lambda;
pub mod metrics;
pub mod names;
pub mod ops;
pub mod pattern;
pub mod protocol;
pub mod pubsub;
pub mod queue;
pub mod schedule;
pub mod scheduler;
pub mod store;
pub mod token;

pub use app::App;
