//! The pipeline's checkpoint stream: a RabbitMQ stream queue (an append-only log that every
//! reader reads whole, in one order) of claim and commit entries. A shard's state is a pure
//! fold of its entries in log order ([`ShardState::apply`]):
//!
//! - a claim with a fence at least the highest claimed so far raises the fence;
//! - a commit counts only if its fence is the highest claimed at that point of the log, and
//!   only then moves the checkpoint (never backwards).
//!
//! So a zombie's commit entry that lands after a newer lease's claim entry is ignored by
//! every reader: it can never move the checkpoint. A writer learns whether its own entry
//! counted by reading the log up to that entry ([`Tail::until`]): the broker orders the
//! appends, and the fold is the same for every reader.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use apitap_common::checkpoint::Checkpoint;
use futures::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, Consumer};
use serde::{Deserialize, Serialize};

use super::amqp_error;
use crate::sink::SinkError;

/// Entries the broker sends ahead of the ones the tail has acknowledged.
const TAIL_PREFETCH: u16 = 500;

/// Size of one file of the stream: retention drops whole files, so small files let
/// `checkpoint_retention` bite on a log of small entries.
const SEGMENT_BYTES: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Claim,
    Commit,
}

/// One entry of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub pipeline: String,
    pub run_id: u64,
    pub shard: u32,
    pub fence: u64,
    /// The checkpoint after a commit (none on a claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    /// Unique per append: how its writer finds it when reading the log back.
    pub nonce: String,
    pub at_ms: u64,
}

/// A shard's state after a prefix of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardState {
    /// The highest fence claimed.
    pub fence: u64,
    /// The last checkpoint committed under the highest fence.
    pub checkpoint: Checkpoint,
}

impl Default for ShardState {
    fn default() -> Self {
        Self {
            fence: 0,
            checkpoint: Checkpoint::start(),
        }
    }
}

impl ShardState {
    /// Folds `entry` in; `true` if it counted (a claim that is not stale, a commit under
    /// the highest claimed fence).
    pub fn apply(&mut self, entry: &Entry) -> bool {
        match (entry.kind, &entry.checkpoint) {
            (Kind::Claim, _) if entry.fence >= self.fence => {
                self.fence = entry.fence;
                true
            }
            (Kind::Commit, Some(cp)) if entry.fence == self.fence => {
                if cp.pages >= self.checkpoint.pages {
                    self.checkpoint = cp.clone();
                }
                true
            }
            _ => false,
        }
    }
}

/// A reader of the stream from its first entry, kept open for the lease: the state of
/// every shard of the pipeline so far, brought up to date before each decision.
pub struct Tail {
    consumer: Consumer,
    pipeline: String,
    states: HashMap<(u64, u32), ShardState>,
    /// Nonces of this sink's own entries not read back yet.
    awaited: HashSet<String>,
    /// Nonces of this sink's own entries read back, with whether they counted.
    seen: HashMap<String, bool>,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("pipeline", &self.pipeline)
            .field("states", &self.states)
            .finish_non_exhaustive()
    }
}

/// Declares the stream `name` (durable; entries older than `retention` are dropped).
pub async fn declare(channel: &Channel, name: &str, retention: Duration) -> Result<(), SinkError> {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long_string("stream"));
    args.insert(
        "x-max-age".into(),
        long_string(&format!("{}s", retention.as_secs())),
    );
    args.insert(
        "x-stream-max-segment-size-bytes".into(),
        AMQPValue::LongLongInt(SEGMENT_BYTES),
    );
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .map(|_| ())
        .map_err(|e| amqp_error(&format!("declaring the checkpoint stream {name}"), &e))
}

/// The refusal of a stream that is still starting on the node.
fn is_starting(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(p) if p.get_message().as_str().contains("does not have a replica"))
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

impl Tail {
    /// Starts reading the stream `name` from its first entry, on a channel of its own (the
    /// tail's prefetch applies to the whole channel). A stream declared a moment ago may
    /// not have started on the node yet ("does not have a replica on the local node"):
    /// that refusal is tried again on a new channel until `within` has passed.
    pub async fn open(
        connection: &Connection,
        name: &str,
        pipeline: &str,
        within: Duration,
    ) -> Result<Self, SinkError> {
        let deadline = tokio::time::Instant::now() + within;
        let mut pause = Duration::from_millis(20);
        loop {
            match Self::consume(connection, name).await {
                Ok(consumer) => {
                    return Ok(Self {
                        consumer,
                        pipeline: pipeline.to_string(),
                        states: HashMap::new(),
                        awaited: HashSet::new(),
                        seen: HashMap::new(),
                    })
                }
                Err(e) if is_starting(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(e) => {
                    return Err(amqp_error(
                        &format!("reading the checkpoint stream {name}"),
                        &e,
                    ))
                }
            }
        }
    }

    async fn consume(connection: &Connection, name: &str) -> Result<Consumer, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(TAIL_PREFETCH, BasicQosOptions::default())
            .await?;
        let mut args = FieldTable::default();
        args.insert("x-stream-offset".into(), long_string("first"));
        channel
            .basic_consume(name.into(), "".into(), BasicConsumeOptions::default(), args)
            .await
    }

    /// The pipeline whose entries this tail folds.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The state of `(run_id, shard)` as far as the tail has read.
    pub fn state(&self, run_id: u64, shard: u32) -> ShardState {
        self.states
            .get(&(run_id, shard))
            .cloned()
            .unwrap_or_default()
    }

    /// Reads what the broker has sent already, without waiting.
    pub async fn catch_up(&mut self) -> Result<(), SinkError> {
        while let Some(next) = self.consumer.next().now_or_never() {
            self.take(next).await?;
        }
        Ok(())
    }

    /// Marks `nonce` as an entry this sink is about to append (before it is published, so
    /// that a read in between cannot miss it).
    pub fn expect(&mut self, nonce: &str) {
        self.awaited.insert(nonce.to_string());
    }

    /// Reads until the entry with `nonce` (announced with [`Tail::expect`]) has been
    /// folded in, at most `timeout`; whether it counted.
    pub async fn until(&mut self, nonce: &str, timeout: Duration) -> Result<bool, SinkError> {
        let reading = async {
            loop {
                if let Some(counted) = self.seen.remove(nonce) {
                    return Ok(counted);
                }
                let next = self.consumer.next().await;
                self.take(next).await?;
            }
        };
        tokio::time::timeout(timeout, reading).await.map_err(|_| {
            SinkError::Transient(format!(
                "the checkpoint stream did not deliver this sink's own entry within {timeout:?}"
            ))
        })?
    }

    async fn take(
        &mut self,
        next: Option<Result<lapin::message::Delivery, lapin::Error>>,
    ) -> Result<(), SinkError> {
        let delivery = match next {
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(amqp_error("reading the checkpoint stream", &e)),
            None => {
                return Err(SinkError::Transient(
                    "the broker cancelled the checkpoint stream reader".into(),
                ))
            }
        };
        let entry: Option<Entry> = serde_json::from_slice(&delivery.data).ok();
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| amqp_error("acknowledging a checkpoint entry", &e))?;
        // Entries of other pipelines (a shared stream) and foreign messages are skipped.
        if let Some(entry) = entry.filter(|e| e.pipeline == self.pipeline) {
            let counted = self
                .states
                .entry((entry.run_id, entry.shard))
                .or_default()
                .apply(&entry);
            if self.awaited.remove(&entry.nonce) {
                self.seen.insert(entry.nonce, counted);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apitap_common::checkpoint::Position;

    fn entry(kind: Kind, fence: u64, pages: u64) -> Entry {
        Entry {
            kind,
            pipeline: "p".into(),
            run_id: 1,
            shard: 0,
            fence,
            checkpoint: (kind == Kind::Commit).then(|| Checkpoint {
                position: Position::Start,
                pages,
                records: pages * 10,
                watermark: None,
            }),
            nonce: format!("{fence}-{pages}"),
            at_ms: 0,
        }
    }

    #[test]
    fn a_commit_after_a_newer_claim_is_ignored_and_older_claims_do_not_count() {
        let mut s = ShardState::default();
        assert!(s.apply(&entry(Kind::Claim, 5, 0)));
        assert!(s.apply(&entry(Kind::Commit, 5, 1)));
        assert!(s.apply(&entry(Kind::Claim, 9, 0)));
        // The zombie (fence 5) commits page 2 after fence 9 claimed.
        assert!(!s.apply(&entry(Kind::Commit, 5, 2)));
        assert_eq!((s.fence, s.checkpoint.pages), (9, 1));
        // A stale claim neither lowers the fence nor counts.
        assert!(!s.apply(&entry(Kind::Claim, 7, 0)));
        assert_eq!(s.fence, 9);
        // The same fence may claim again (a retried claim).
        assert!(s.apply(&entry(Kind::Claim, 9, 0)));
        assert!(s.apply(&entry(Kind::Commit, 9, 3)));
        assert_eq!(s.checkpoint.pages, 3);
    }

    #[test]
    fn a_checkpoint_never_goes_back_and_a_commit_without_a_claim_is_ignored() {
        let mut s = ShardState::default();
        assert!(
            !s.apply(&entry(Kind::Commit, 4, 1)),
            "commit before any claim"
        );
        s.apply(&entry(Kind::Claim, 4, 0));
        s.apply(&entry(Kind::Commit, 4, 3));
        // A retried commit whose first attempt landed late carries fewer pages.
        s.apply(&entry(Kind::Commit, 4, 2));
        assert_eq!(s.checkpoint.pages, 3);
    }
}
