//! Sockhop's shared crate: everything the Lambda functions share, over the
//! pure rules of `sockhop_core`.
//!
//! - Pure rules — tokens, claims, permissions, names, wire frames, error codes,
//!   schedules, time and ids — are the crate `sockhop_core`, re-exported here
//!   ([`token`], [`claims`], [`pattern`], [`names`], [`protocol`], [`error`],
//!   [`schedule`], [`clock`], [`ids`]).
//! - Ports and the rules that go with them, no AWS: [`effects`] (what
//!   operations decide), [`gateway`] (the fan-out over [`gateway::Sockets`]),
//!   [`queue`] (the delivery queue), [`scheduler`], [`pubsub`] (backend
//!   events and their sinks), [`api_keys`], [`metrics`], and [`store`] (the
//!   table's records and the trait operations read and write through).
//! - [`memory`]: in-memory implementations of the ports (store, queue,
//!   sockets), for deterministic unit tests of the operations.
//! - [`ops`]: the operations. They read through [`store`] and return
//!   [`effects`].
//! - [`adapters`]: what talks to AWS — the DynamoDB store
//!   ([`adapters::dynamodb`], the only code that knows the table's keys), the
//!   management API, SQS, EventBridge Scheduler,
//!   EventBridge and SNS, Secrets Manager, and the SDK interceptor that counts
//!   every request.
//! - [`runtime`]: [`app`] (built once per process), [`driver`] (performs
//!   effects; what handlers call) and [`lambda`] (the bootstrap).
//!
//! The module paths of before the folders (`sockhop::driver`,
//! `sockhop::claims`, ...) are re-exports. See docs/architecture.md.

pub mod adapters;
pub mod api_keys;
pub mod effects;
pub mod gateway;
pub mod memory;
pub mod metrics;
pub mod ops;
pub mod pacing;
pub mod pubsub;
pub mod queue;
pub mod runtime;
pub mod scheduler;
pub mod store;

pub use runtime::{app, driver, lambda};
pub use sockhop_core::{claims, clock, error, ids, names, pattern, protocol, schedule, token};

pub use app::App;
