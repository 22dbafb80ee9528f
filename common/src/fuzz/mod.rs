//! Input generators and checks for property tests and for `apitap-chaos fuzz`.
//!
//! They live here, in the library, so that the crate's property tests (`cargo test`) and the
//! long fuzz runs of the chaos command draw from the same generators and hold inputs to the
//! same checks: a generator improved for one improves both. Compiled in tests and with the
//! `fuzz` feature only, so that proptest is not part of a production build.
//!
//! - [`hostile`]: text and numbers an attacker or a broken upstream would send;
//! - [`json`]: JSON values with those texts and numbers, nested deep;
//! - [`jsonpath`]: JSON paths, written and as steps, with the document they point into;
//! - [`spec`]: pipeline specs, mutated and hostile, and what the loader must answer.

pub mod hostile;
pub mod json;
pub mod jsonpath;
pub mod spec;
