//! Rows as AMQP messages, and publishing a set of messages with publisher confirms: every
//! message is published `mandatory` (an unroutable one comes back instead of vanishing),
//! then every confirm is awaited; a nack, a return or the timeout fails the whole set.

use std::time::Duration;

use arrow::record_batch::RecordBatch;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};

use super::amqp_error;
use crate::sink::{ShardRef, SinkError};

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Message {
    pub routing_key: String,
    pub message_id: String,
    pub body: Vec<u8>,
    pub headers: FieldTable,
}

/// The id of row `index` of page `page` (0-based, counted from the shard's first page):
/// the same record re-published after a crash or by a zombie gets the same id, since a
/// page is re-fetched from the checkpoint before it. Pipeline names are DNS labels, so the
/// id stays far below AMQP's 255 bytes.
pub fn message_id(shard: &ShardRef, page: u64, index: usize) -> String {
    format!(
        "{}/{}/{}/{}/{}",
        shard.pipeline, shard.run_id, shard.shard, page, index
    )
}

/// The headers every message of `shard` carries.
pub fn headers(shard: &ShardRef, fence: u64, page: u64) -> FieldTable {
    let mut h = FieldTable::default();
    h.insert(
        "x-apitap-pipeline".into(),
        AMQPValue::LongString(LongString::from(shard.pipeline.as_bytes().to_vec())),
    );
    h.insert(
        "x-apitap-run".into(),
        AMQPValue::LongLongInt(clamp(shard.run_id)),
    );
    h.insert(
        "x-apitap-shard".into(),
        AMQPValue::LongLongInt(i64::from(shard.shard)),
    );
    h.insert(
        "x-apitap-fence".into(),
        AMQPValue::LongLongInt(clamp(fence)),
    );
    h.insert("x-apitap-page".into(), AMQPValue::LongLongInt(clamp(page)));
    h
}

/// AMQP has signed 64-bit integers; ids and fences never come near `i64::MAX`.
fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Each row of `batch` as one JSON object, at most `max_bytes` long.
pub fn rows_as_json(batch: &RecordBatch, max_bytes: u64) -> Result<Vec<Vec<u8>>, SinkError> {
    let mut w = arrow_json::LineDelimitedWriter::new(Vec::new());
    w.write(batch)
        .and_then(|()| w.finish())
        .map_err(|e| SinkError::User(format!("the page cannot be written as JSON: {e}")))?;
    let text = w.into_inner();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for (index, line) in text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if line.len() as u64 > max_bytes {
            return Err(SinkError::User(format!(
                "row {index} of the page is {} bytes as JSON, over the limit max_message_bytes \
                 of {max_bytes} bytes; select fewer or shorter columns in the transform, or \
                 raise sink.rabbitmq.max_message_bytes",
                line.len()
            )));
        }
        rows.push(line.to_vec());
    }
    Ok(rows)
}

/// Publishes `messages` on `exchange` and waits for every confirm, at most `timeout`.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    messages: Vec<Message>,
    persistent: bool,
    timeout: Duration,
) -> Result<(), SinkError> {
    let publishing = async {
        let mut confirms = Vec::with_capacity(messages.len());
        for m in messages {
            let mut props = BasicProperties::default()
                .with_message_id(ShortString::from(m.message_id))
                .with_content_type("application/json".into())
                .with_headers(m.headers);
            if persistent {
                props = props.with_delivery_mode(2);
            }
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    m.routing_key.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &m.body,
                    props,
                )
                .await
                .map_err(|e| amqp_error("publishing", &e))?;
            confirms.push((m.routing_key, confirm));
        }
        for (routing_key, confirm) in confirms {
            let confirmation = confirm
                .await
                .map_err(|e| amqp_error("waiting for a publisher confirm", &e))?;
            check(confirmation, exchange, &routing_key)?;
        }
        Ok(())
    };
    tokio::time::timeout(timeout, publishing)
        .await
        .map_err(|_| {
            SinkError::Transient(format!(
                "the broker did not confirm every message within confirm_timeout ({timeout:?})"
            ))
        })?
}

fn check(c: Confirmation, exchange: &str, routing_key: &str) -> Result<(), SinkError> {
    match c {
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => Err(SinkError::User(format!(
            "no queue is bound to the exchange {exchange:?} with the routing key \
             {routing_key:?}, so the broker returned the message; bind one, or set \
             sink.rabbitmq.queue (or dead_letter_queue) to have the sink declare it"
        ))),
        Confirmation::Nack(_) => Err(SinkError::Transient(
            "the broker refused a message (nack): it could not store it".into(),
        )),
    }
}
