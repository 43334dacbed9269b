//! Sockhop's pure rules, with no I/O: connect and subscribe tokens ([`token`]),
//! their claims and the permissions they resolve to ([`claims`], with
//! [`pattern`] for the `*` and `#regex:` keys), the name rules ([`names`]), the
//! wire frames and commands ([`protocol`]), the protocol's error codes
//! ([`error`]), scheduled-publish expressions ([`schedule`]), and time and
//! message ids as values ([`clock`], [`ids`]).
//!
//! Nothing here talks to AWS, opens a socket or needs an async runtime:
//! tests/tests/structure.rs checks this crate's dependency tree. The crate
//! `sockhop` (shared/) re-exports every module at its root, so
//! `sockhop::claims::…` is this crate's `claims`. See docs/architecture.md.

pub mod claims;
pub mod clock;
pub mod error;
pub mod ids;
pub mod names;
pub mod pattern;
pub mod protocol;
pub mod schedule;
pub mod token;
