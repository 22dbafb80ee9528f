//! Shared checks of the cluster tests: what a user would verify in their warehouse
//! (`expect`), and what an operator reads from a node's admin server (`admin`).

pub mod admin;
pub mod expect;
pub mod fixture;
pub mod pipelines;
