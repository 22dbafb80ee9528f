//! The RabbitMQ sink: one persistent message per row, published with publisher confirms,
//! **at least once** (docs/pipeline-reference.md "RabbitMQ"). A broker has no transaction
//! that covers the messages and the checkpoint, so:
//!
//! - a commit publishes the page's rows and waits for every confirm, then appends a commit
//!   entry (fence + checkpoint) to the pipeline's checkpoint stream ([`checkpoints`]) and
//!   reads the stream up to it; only an entry that counted moves the checkpoint, and only
//!   then does the commit return `Ok` (and the runner report the checkpoint);
//! - a crash between the confirms and the entry re-publishes the page under the next
//!   lease, and a zombie publishes until its next entry shows it fenced out: duplicates,
//!   each with the same `message_id` as the first copy ([`publish::message_id`]: pipeline,
//!   run, shard, page, position in the page), so a consumer can drop them;
//! - a zombie never moves the checkpoint: its entries after a newer claim do not count.
//!
//! Pages are committed one at a time ([`AnySink::commits_pages_alone`](super::AnySink)) so
//! that a row's page number, and so its id, does not depend on how pages were batched.

mod checkpoints;
pub mod publish;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use apitap_common::checkpoint::Checkpoint;
use apitap_common::spec::RabbitmqSink as RabbitSpec;
use arrow::record_batch::RecordBatch;
use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ConnectionProperties, ErrorKind, ExchangeKind};

use self::checkpoints::{Entry, Kind, Tail};
use self::publish::Message;
use super::{DeadPage, ShardRef, SinkError};
use crate::fetch::Egress;

pub use self::checkpoints::ShardState;

/// Longest error text a dead letter carries in its `x-apitap-error` header.
const MAX_ERROR_HEADER_BYTES: usize = 4096;

/// A connection to the broker: a confirming channel for rows, dead letters and checkpoint
/// entries, and the reader of the pipeline's checkpoint stream (from the first claim).
pub struct RabbitmqSink {
    spec: RabbitSpec,
    /// Kept open for the sink's life; the channels live on it.
    connection: Connection,
    publisher: Channel,
    tail: Option<(String, Tail)>,
    /// The fence each shard was claimed with by this sink.
    claimed: HashMap<ShardRef, u64>,
}

impl std::fmt::Debug for RabbitmqSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the spec: its URL holds the password.
        f.debug_struct("RabbitmqSink")
            .field("exchange", &self.spec.exchange)
            .field("routing_key", &self.spec.routing_key)
            .field("tail", &self.tail)
            .finish_non_exhaustive()
    }
}

/// A broker error as a sink error: refusals of the broker's owner (credentials, a missing
/// exchange or vhost, a queue declared with other arguments, a message too large) are the
/// pipeline's to fix; the rest may pass.
pub(crate) fn amqp_error(context: &str, e: &lapin::Error) -> SinkError {
    let user = match e.kind() {
        ErrorKind::ProtocolError(p) => matches!(
            p.kind(),
            AMQPErrorKind::Soft(
                AMQPSoftError::ACCESSREFUSED
                    | AMQPSoftError::NOTFOUND
                    | AMQPSoftError::PRECONDITIONFAILED
                    | AMQPSoftError::CONTENTTOOLARGE
            ) | AMQPErrorKind::Hard(
                AMQPHardError::NOTALLOWED
                    | AMQPHardError::INVALIDPATH
                    | AMQPHardError::NOTIMPLEMENTED
            )
        ),
        _ => false,
    };
    if user {
        SinkError::User(format!("the broker refused {context}: {e}"))
    } else {
        SinkError::Transient(format!("the broker, {context}: {e}"))
    }
}

impl RabbitmqSink {
    /// Connects to the broker `spec.url` names (its host must pass `egress`), and declares
    /// the queues the spec asks for.
    pub async fn open(spec: &RabbitSpec, egress: &Egress) -> Result<Self, SinkError> {
        let url = url::Url::parse(&spec.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "amqp" | "amqps") && u.host_str().is_some())
            .ok_or_else(|| {
                SinkError::User(
                    "sink.rabbitmq.url is not an amqp:// or amqps:// URL with a host".into(),
                )
            })?;
        super::endpoint::check("sink.rabbitmq.url", &url, egress).await?;
        let host = url.host_str().unwrap_or_default().to_string();
        let props = ConnectionProperties::default()
            .with_connection_name(LongString::from("apitap-worker".as_bytes().to_vec()));
        let connection =
            tokio::time::timeout(spec.confirm_timeout, Connection::connect(&spec.url, props))
                .await
                .map_err(|_| {
                    SinkError::Transient(format!(
                        "no AMQP connection to {host} within confirm_timeout ({:?})",
                        spec.confirm_timeout
                    ))
                })?
                .map_err(|e| amqp_error(&format!("the connection to {host}"), &e))?;
        let publisher = channel(&connection).await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| amqp_error("publisher confirms", &e))?;
        let sink = Self {
            spec: spec.clone(),
            connection,
            publisher,
            tail: None,
            claimed: HashMap::new(),
        };
        sink.declare_topology().await?;
        Ok(sink)
    }

    /// The exchange must exist (checked passively: the sink does not own it); the queues
    /// the spec names are declared durable and bound.
    async fn declare_topology(&self) -> Result<(), SinkError> {
        let s = &self.spec;
        if !s.exchange.is_empty() {
            // A failed passive declare closes its channel: use one of its own.
            let probe = channel(&self.connection).await?;
            probe
                .exchange_declare(
                    s.exchange.as_str().into(),
                    ExchangeKind::Direct,
                    ExchangeDeclareOptions {
                        passive: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| {
                    amqp_error(
                        &format!(
                            "the exchange {:?} (it must exist; the sink does not declare exchanges)",
                            s.exchange
                        ),
                        &e,
                    )
                })?;
            let _ = probe.close(200, "done".into()).await;
        }
        let dead_key = s.dead_letter_key();
        for (queue, key) in [
            (&s.queue, s.routing_key.as_str()),
            (&s.dead_letter_queue, dead_key.as_str()),
        ] {
            let Some(queue) = queue else { continue };
            self.publisher
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| amqp_error(&format!("declaring the queue {queue:?}"), &e))?;
            if !s.exchange.is_empty() {
                self.publisher
                    .queue_bind(
                        queue.as_str().into(),
                        s.exchange.as_str().into(),
                        key.into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| amqp_error(&format!("binding the queue {queue:?}"), &e))?;
            }
        }
        Ok(())
    }

    /// The reader of `pipeline`'s checkpoint stream, opened (and the stream declared) on
    /// first use; one sink serves one pipeline.
    async fn tail(&mut self, pipeline: &str) -> Result<(&str, &mut Tail), SinkError> {
        if self.tail.is_none() {
            let stream = self.spec.checkpoint_stream_for(pipeline);
            let ch = channel(&self.connection).await?;
            checkpoints::declare(&ch, &stream, self.spec.checkpoint_retention).await?;
            let _ = ch.close(200, "declared".into()).await;
            let tail = Tail::open(
                &self.connection,
                &stream,
                pipeline,
                self.spec.confirm_timeout,
            )
            .await?;
            self.tail = Some((stream, tail));
        }
        match &mut self.tail {
            Some((stream, tail)) if tail.pipeline() == pipeline => Ok((stream.as_str(), tail)),
            _ => Err(SinkError::Internal(
                "one RabbitMQ sink serves one pipeline".into(),
            )),
        }
    }

    /// Appends `entry` to the checkpoint stream and reads up to it: whether it counted.
    async fn append(&mut self, entry: Entry) -> Result<bool, SinkError> {
        let body = serde_json::to_vec(&entry)
            .map_err(|e| SinkError::Internal(format!("checkpoint entry: {e}")))?;
        let timeout = self.spec.confirm_timeout;
        let publisher = self.publisher.clone();
        let (stream, tail) = self.tail(&entry.pipeline).await?;
        tail.expect(&entry.nonce);
        let message = Message {
            routing_key: stream.to_string(),
            message_id: entry.nonce.clone(),
            body,
            headers: FieldTable::default(),
        };
        publish::publish_confirmed(&publisher, "", vec![message], true, timeout).await?;
        tail.until(&entry.nonce, timeout).await
    }

    /// Claims `shard` for `fence`: appends a claim entry and reads the stream up to it.
    /// The checkpoint is the last one committed under the highest fence before it.
    pub async fn claim(&mut self, shard: &ShardRef, fence: u64) -> Result<Checkpoint, SinkError> {
        let counted = self.append(entry(shard, Kind::Claim, fence, None)).await?;
        let state = self.state(shard).await?;
        if !counted {
            return Err(SinkError::Fenced {
                stored: state.fence,
                ours: fence,
            });
        }
        self.claimed.insert(shard.clone(), fence);
        Ok(state.checkpoint)
    }

    /// Publishes the page's rows, waits for their confirms, then appends the commit entry;
    /// `Ok` only if that entry counted.
    pub async fn commit(
        &mut self,
        shard: &ShardRef,
        fence: u64,
        batch: Option<&RecordBatch>,
        checkpoint: &Checkpoint,
    ) -> Result<(), SinkError> {
        self.check_owned(shard, fence).await?;
        if let Some(b) = batch.filter(|b| b.num_rows() > 0) {
            // The page this commit is for: pages are committed one at a time.
            let page = checkpoint.pages.checked_sub(1).ok_or_else(|| {
                SinkError::Internal("a commit with rows must count at least one page".into())
            })?;
            let rows = publish::rows_as_json(b, self.spec.max_message_bytes)?;
            let headers = publish::headers(shard, fence, page);
            self.publish_page(&self.spec.routing_key, shard, page, rows, headers, "")
                .await?;
            // The rows are confirmed, the checkpoint entry not yet written: a crash here
            // makes the next lease publish the page again (docs/chaos.md "Fail points").
            #[cfg(feature = "failpoints")]
            fail::fail_point!("sink::rabbitmq::after_confirms", |_| {
                std::process::abort()
            });
        }
        let counted = self
            .append(entry(shard, Kind::Commit, fence, Some(checkpoint.clone())))
            .await?;
        if counted {
            return Ok(());
        }
        Err(SinkError::Fenced {
            stored: self.state(shard).await?.fence,
            ours: fence,
        })
    }

    /// Publishes `records` of page `page` to the dead-letter routing key, each with the
    /// error in `x-apitap-error`, if `fence` still owns the shard. Re-publishing the same
    /// page gives the same message ids.
    pub async fn dead_letter(
        &mut self,
        shard: &ShardRef,
        fence: u64,
        dead: DeadPage<'_>,
    ) -> Result<(), SinkError> {
        let DeadPage {
            page,
            records,
            error,
        } = dead;
        self.check_owned(shard, fence).await?;
        let mut headers = publish::headers(shard, fence, page);
        let mut error = error.to_string();
        while error.len() > MAX_ERROR_HEADER_BYTES {
            error.pop();
        }
        headers.insert(
            "x-apitap-error".into(),
            AMQPValue::LongString(LongString::from(error.into_bytes())),
        );
        let bodies = records.iter().map(|r| r.to_string().into_bytes()).collect();
        let dead_key = self.spec.dead_letter_key();
        self.publish_page(&dead_key, shard, page, bodies, headers, "/dead-letter")
            .await
    }

    /// Publishes `bodies` (row `index` of page `page` each) to `routing_key` on the spec's
    /// exchange and waits for every confirm; `id_suffix` tells dead letters apart.
    async fn publish_page(
        &self,
        routing_key: &str,
        shard: &ShardRef,
        page: u64,
        bodies: Vec<Vec<u8>>,
        headers: FieldTable,
        id_suffix: &str,
    ) -> Result<(), SinkError> {
        let messages = bodies
            .into_iter()
            .enumerate()
            .map(|(index, body)| Message {
                routing_key: routing_key.to_string(),
                message_id: format!("{}{id_suffix}", publish::message_id(shard, page, index)),
                body,
                headers: headers.clone(),
            })
            .collect();
        publish::publish_confirmed(
            &self.publisher,
            &self.spec.exchange,
            messages,
            self.spec.persistent,
            self.spec.confirm_timeout,
        )
        .await
    }

    /// `Ok` if this sink claimed `shard` with `fence` and no newer claim has been read.
    async fn check_owned(&mut self, shard: &ShardRef, fence: u64) -> Result<(), SinkError> {
        match self.claimed.get(shard) {
            Some(f) if *f == fence => {}
            _ => {
                return Err(SinkError::Internal(
                    "commit before claim: this lease has not claimed the shard".into(),
                ))
            }
        }
        let state = self.state(shard).await?;
        if state.fence > fence {
            return Err(SinkError::Fenced {
                stored: state.fence,
                ours: fence,
            });
        }
        Ok(())
    }

    /// `shard`'s state with every entry the broker has sent so far.
    async fn state(&mut self, shard: &ShardRef) -> Result<ShardState, SinkError> {
        let (_, tail) = self.tail(&shard.pipeline).await?;
        tail.catch_up().await?;
        Ok(tail.state(shard.run_id, shard.shard))
    }
}

async fn channel(connection: &Connection) -> Result<Channel, SinkError> {
    connection
        .create_channel()
        .await
        .map_err(|e| amqp_error("opening a channel", &e))
}

fn entry(shard: &ShardRef, kind: Kind, fence: u64, checkpoint: Option<Checkpoint>) -> Entry {
    Entry {
        kind,
        pipeline: shard.pipeline.clone(),
        run_id: shard.run_id,
        shard: shard.shard,
        fence,
        checkpoint,
        nonce: format!("{:032x}", rand::random::<u128>()),
        at_ms: apitap_common::time::now_ms(),
    }
}
