//! Shared checks of the cluster tests: what a user would verify in their warehouse
//! (`expect`), what an operator reads from a node's admin server (`admin`, and its JSON API:
//! `api`), and a headless Chromium to open the web console with (`browser`).

pub mod admin;
pub mod api;
pub mod browser;
pub mod expect;
pub mod fixture;
pub mod pipelines;
