//! The pipeline spec: one YAML document per pipeline (docs/pipeline-reference.md).
//!
//! [`load`] parses and validates; every problem is reported with file, line, column, the
//! key path and a hint. Strings may hold `${ENV}` secrets ([`secrets`]) and `{{ var }}`
//! template variables ([`template`]); both are kept unresolved in the stored spec. Every
//! size and count is bounded by [`crate::limits`]; [`load_with`] takes other limits.

mod batch;
mod bounds;
mod connector_rules;
mod delimited;
pub mod duration;
mod files;
mod guard;
mod header_values;
mod message;
mod parse;
mod positions;
mod rabbitmq;
pub mod secrets;
pub mod template;
mod types;
mod validate;
mod yaml_error;

#[cfg(test)]
mod connector_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod test_doc;
#[cfg(test)]
mod tests;

pub use batch::Batch;
pub use connector_rules::MAX_SCOPES;
pub use files::{FileFormat, FilesSink, S3Options, MAX_FILES_TABLE_CHARS};
pub use message::MAX_MESSAGE_CHARS;
pub use parse::{check_document_size, load, load_with, SpecError, SpecErrors};
pub use rabbitmq::RabbitmqSink;
pub use types::*;
pub use validate::is_dns_label;
