//! Shared checks of the cluster tests: what a user would verify in their warehouse.

pub mod expect;
