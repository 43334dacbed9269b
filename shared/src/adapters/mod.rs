//! What talks to AWS: each adapter implements a port (a trait outside this
//! folder) or, for the table, is the only code that knows it.
//!
//! - [`dynamodb`]: the [`Store`](crate::store::Store) on DynamoDB, the only
//!   module that knows the table (keys, item shapes, pagination, stream
//!   records, conditional writes).
//! - [`management_api`]: API Gateway's management API, the
//!   [`Sockets`](crate::gateway::Sockets) frames go through.
//! - [`sqs`]: the SQS FIFO [`DeliveryQueue`](crate::queue::DeliveryQueue).
//! - [`eventbridge_scheduler`]: EventBridge Scheduler, the
//!   [`Scheduler`](crate::scheduler::Scheduler) of scheduled publishes.
//! - [`event_sinks`]: the EventBridge and SNS
//!   [`EventSink`](crate::pubsub::EventSink)s of backend events.
//! - [`secrets_manager`]: the server API's generated keys, a
//!   [`KeySource`](crate::api_keys::KeySource).
//! - [`count_requests`]: the SDK interceptor that counts every request
//!   ([`metrics`](crate::metrics)).
//!
//! Nothing outside `adapters/` and `runtime/` names an AWS SDK crate
//! (tests/tests/structure.rs).

pub mod count_requests;
pub mod dynamodb;
pub mod event_sinks;
pub mod eventbridge_scheduler;
pub mod management_api;
pub mod secrets_manager;
pub mod sqs;
