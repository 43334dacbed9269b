//! What runs the rest: [`app`] builds the process's [`App`](app::App) (its
//! configuration and every adapter, wired to its port) once per cold start;
//! [`driver`] is the entry points handlers call, running an operation and
//! performing the effects it returned; [`lambda`] is the bootstrap every
//! function's `main.rs` calls.

pub mod app;
pub mod driver;
pub mod lambda;
