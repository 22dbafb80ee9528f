//! The replicated data model. [`command::Command`] is the only way to change it, and
//! [`command::apply`] is deterministic: no clocks, no I/O; times arrive stamped in commands.

pub mod command;
pub mod model;

pub use model::State;
