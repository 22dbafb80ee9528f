//! `spec.sink.rabbitmq`: one AMQP message per row, published with publisher confirms, at
//! least once; the shard's checkpoint and fence live in a stream queue on the same broker
//! (the worker's `sink/rabbitmq` module; docs/pipeline-reference.md "RabbitMQ").

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::parse::Problem;
use crate::limits::{
    DEFAULT_RABBITMQ_CHECKPOINT_RETENTION, DEFAULT_RABBITMQ_CONFIRM_TIMEOUT,
    DEFAULT_RABBITMQ_MAX_MESSAGE_BYTES, MAX_AMQP_NAME_BYTES, MAX_RABBITMQ_CONFIRM_TIMEOUT,
    MIN_RABBITMQ_CHECKPOINT_RETENTION, RABBITMQ_MAX_MESSAGE_BYTES_CEILING,
};

const RABBITMQ: &str = "spec.sink.rabbitmq";

/// Shortest `confirm_timeout`: below it a busy broker fails every commit.
const MIN_CONFIRM_TIMEOUT: Duration = Duration::from_millis(100);

/// Longest `checkpoint_retention` (a year): RabbitMQ's `x-max-age` takes it in seconds.
const MAX_CHECKPOINT_RETENTION: Duration = Duration::from_secs(366 * 86_400);

/// Where and how rows are published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitmqSink {
    /// `amqp://user:${PASSWORD}@host:5672/vhost` or `amqps://…`; a password must be a
    /// secret reference.
    pub url: String,
    /// The exchange rows are published to; `""` (the default) is the default exchange,
    /// which routes by queue name.
    #[serde(default)]
    pub exchange: String,
    /// The routing key of every row.
    pub routing_key: String,
    /// A durable queue to declare and bind to `exchange` with `routing_key` before the
    /// first publish (none: the topology is the operator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The routing key of dead letters (default `<routing_key>.dead-letters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_routing_key: Option<String>,
    /// A durable queue to declare and bind for dead letters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<String>,
    /// Delivery mode 2: the broker writes each message to disk (default true).
    #[serde(default = "yes")]
    pub persistent: bool,
    /// How long a commit waits for its confirms.
    #[serde(default = "default_confirm_timeout", with = "duration")]
    pub confirm_timeout: Duration,
    /// The largest message (one row as JSON).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u64,
    /// The stream queue that holds the pipeline's checkpoints and fences (default
    /// `apitap.checkpoints.<pipeline>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_stream: Option<String>,
    /// How long the broker keeps checkpoint entries (the stream's `x-max-age`).
    #[serde(default = "default_checkpoint_retention", with = "duration")]
    pub checkpoint_retention: Duration,
}

fn yes() -> bool {
    true
}
fn default_confirm_timeout() -> Duration {
    DEFAULT_RABBITMQ_CONFIRM_TIMEOUT
}
fn default_max_message_bytes() -> u64 {
    DEFAULT_RABBITMQ_MAX_MESSAGE_BYTES
}
fn default_checkpoint_retention() -> Duration {
    DEFAULT_RABBITMQ_CHECKPOINT_RETENTION
}

impl RabbitmqSink {
    /// The routing key of dead letters.
    pub fn dead_letter_key(&self) -> String {
        self.dead_letter_routing_key
            .clone()
            .unwrap_or_else(|| format!("{}.dead-letters", self.routing_key))
    }

    /// The checkpoint stream of `pipeline`.
    pub fn checkpoint_stream_for(&self, pipeline: &str) -> String {
        self.checkpoint_stream.clone().unwrap_or_else(|| {
            let name: String = format!("apitap.checkpoints.{pipeline}")
                .chars()
                .map(|c| if is_name_char(c) { c } else { '_' })
                .collect();
            truncate_bytes(name, MAX_AMQP_NAME_BYTES)
        })
    }
}

fn truncate_bytes(mut s: String, max: usize) -> String {
    while s.len() > max {
        s.pop();
    }
    s
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// An exchange, queue or routing key name: at most [`MAX_AMQP_NAME_BYTES`], printable.
fn name_rule(key: &str, value: &str, may_be_empty: bool, out: &mut Vec<Problem>) {
    let path = format!("{RABBITMQ}.{key}");
    if value.is_empty() && !may_be_empty {
        out.push(Problem::new(path, "must not be empty").hint(format!(
            "for example {key}: apitap.{}",
            key.replace('_', "-")
        )));
    } else if value.len() > MAX_AMQP_NAME_BYTES {
        out.push(
            Problem::new(path, format!("is {} bytes long", value.len())).hint(format!(
                "AMQP names are at most {MAX_AMQP_NAME_BYTES} bytes"
            )),
        );
    } else if value.chars().any(char::is_control) {
        out.push(
            Problem::new(path, format!("holds a control character: {value:?}"))
                .hint("letters, digits, and . _ - : # * are usual"),
        );
    }
}

/// The rules of `spec.sink.rabbitmq` (the secrets in it are checked like every other).
pub(crate) fn rules(r: &RabbitmqSink, out: &mut Vec<Problem>) {
    url_rules(&r.url, out);
    name_rule("exchange", &r.exchange, true, out);
    name_rule("routing_key", &r.routing_key, false, out);
    for (key, value) in [
        ("queue", &r.queue),
        ("dead_letter_routing_key", &r.dead_letter_routing_key),
        ("dead_letter_queue", &r.dead_letter_queue),
        ("checkpoint_stream", &r.checkpoint_stream),
    ] {
        if let Some(v) = value {
            name_rule(key, v, false, out);
        }
    }
    if r.exchange.is_empty() {
        // The default exchange routes a message to the queue named by its routing key.
        for (key, queue, routing) in [
            ("queue", &r.queue, r.routing_key.clone()),
            (
                "dead_letter_queue",
                &r.dead_letter_queue,
                r.dead_letter_key(),
            ),
        ] {
            if let Some(q) = queue.as_deref().filter(|q| **q != routing) {
                out.push(
                    Problem::new(
                        format!("{RABBITMQ}.{key}"),
                        format!("the default exchange cannot route the key {routing:?} to the queue {q:?}"),
                    )
                    .hint("name an exchange (exchange: amq.direct), or make the routing key the queue's name"),
                );
            }
        }
    }
    if r.dead_letter_key() == r.routing_key {
        out.push(
            Problem::new(
                format!("{RABBITMQ}.dead_letter_routing_key"),
                "is the routing key of the rows",
            )
            .hint("dead letters need a key of their own, e.g. <routing_key>.dead-letters"),
        );
    }
    if r.confirm_timeout < MIN_CONFIRM_TIMEOUT || r.confirm_timeout > MAX_RABBITMQ_CONFIRM_TIMEOUT {
        out.push(
            Problem::new(
                format!("{RABBITMQ}.confirm_timeout"),
                format!("{:?} is out of range", r.confirm_timeout),
            )
            .hint(format!(
                "between {}ms and {}s",
                MIN_CONFIRM_TIMEOUT.as_millis(),
                MAX_RABBITMQ_CONFIRM_TIMEOUT.as_secs()
            )),
        );
    }
    if r.max_message_bytes == 0 || r.max_message_bytes > RABBITMQ_MAX_MESSAGE_BYTES_CEILING {
        out.push(
            Problem::new(
                format!("{RABBITMQ}.max_message_bytes"),
                format!("{} is out of range", r.max_message_bytes),
            )
            .hint(format!(
                "between 1 and {RABBITMQ_MAX_MESSAGE_BYTES_CEILING} (RabbitMQ's own max_message_size)"
            )),
        );
    }
    if r.checkpoint_retention < MIN_RABBITMQ_CHECKPOINT_RETENTION
        || r.checkpoint_retention > MAX_CHECKPOINT_RETENTION
    {
        out.push(
            Problem::new(
                format!("{RABBITMQ}.checkpoint_retention"),
                format!("{:?} is out of range", r.checkpoint_retention),
            )
            .hint("between 1h and 366d; keep it longer than any run with its retries"),
        );
    }
}

fn url_rules(url: &str, out: &mut Vec<Problem>) {
    let path = format!("{RABBITMQ}.url");
    if url.starts_with("${") {
        return;
    }
    let probe = url.replace("${", "x").replace('}', "x");
    let parsed = match url::Url::parse(&probe) {
        Ok(u) if matches!(u.scheme(), "amqp" | "amqps") && u.host_str().is_some() => u,
        _ => {
            out.push(
                Problem::new(path, "not an AMQP URL")
                    .hint("amqp://user:${RABBITMQ_PASSWORD}@host:5672/vhost, or amqps:// for TLS"),
            );
            return;
        }
    };
    // The password is the only part of `url` that is secret; in clear it would be stored
    // and shown with the spec.
    let password_in_clear = parsed.password().is_some()
        && !url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .is_some_and(|(userinfo, _)| {
                userinfo
                    .split_once(':')
                    .is_some_and(|(_, pw)| pw.starts_with("${") && pw.ends_with('}'))
            });
    if password_in_clear {
        out.push(
            Problem::new(path, "the password must be a secret reference, not the password itself")
                .hint("write amqp://user:${RABBITMQ_PASSWORD}@host/vhost and export RABBITMQ_PASSWORD=..."),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(url: &str) -> RabbitmqSink {
        serde_json::from_value(serde_json::json!({"url": url, "routing_key": "users"}))
            .expect("a minimal sink.rabbitmq")
    }

    fn problems(r: &RabbitmqSink) -> Vec<String> {
        let mut out = Vec::new();
        rules(r, &mut out);
        out.iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn defaults_and_derived_names() {
        let r = sink("amqp://etl:${PW}@broker/%2f");
        assert!(r.persistent);
        assert_eq!(r.confirm_timeout, DEFAULT_RABBITMQ_CONFIRM_TIMEOUT);
        assert_eq!(r.max_message_bytes, DEFAULT_RABBITMQ_MAX_MESSAGE_BYTES);
        assert_eq!(r.dead_letter_key(), "users.dead-letters");
        assert_eq!(
            r.checkpoint_stream_for("team/users ü"),
            "apitap.checkpoints.team_users__"
        );
        let long = "x".repeat(400);
        assert_eq!(r.checkpoint_stream_for(&long).len(), MAX_AMQP_NAME_BYTES);
        assert!(problems(&r).is_empty(), "{:?}", problems(&r));
    }

    #[test]
    fn the_password_must_be_a_secret_and_the_url_amqp() {
        for url in ["amqp://etl:pw@broker/%2f", "amqp://etl:${PW}x@broker/%2f"] {
            let p = problems(&sink(url));
            assert!(
                p.len() == 1 && p[0].contains("secret reference"),
                "{url}: {p:?}"
            );
        }
        for url in ["amqp://etl@broker/%2f", "amqps://broker", "${BROKER_URL}"] {
            assert!(problems(&sink(url)).is_empty(), "{url}");
        }
        for url in ["http://broker", "amqp://", "broker:5672"] {
            let p = problems(&sink(url));
            assert!(
                p.len() == 1 && p[0].contains("not an AMQP URL"),
                "{url}: {p:?}"
            );
        }
    }

    #[test]
    fn names_are_bounded_and_dead_letters_need_their_own_key() {
        let mut r = sink("amqp://broker");
        r.routing_key = "k".repeat(MAX_AMQP_NAME_BYTES + 1);
        assert!(problems(&r)[0].contains("256 bytes long"));
        let mut r = sink("amqp://broker");
        r.dead_letter_routing_key = Some("users".into());
        assert!(problems(&r)[0].contains("is the routing key of the rows"));
    }
}
