//! The replicated data model. [`command::Command`] is the only way to change it, and
//! [`command::apply`] is deterministic (one function per command in `apply/`): no clocks, no I/O; times arrive stamped in commands.

pub mod access;
pub mod apply;
pub mod command;
pub mod model;
pub mod transition;

pub use model::State;
