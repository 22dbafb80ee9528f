//! The RabbitMQ sink against a real broker (a throwaway node of the testbed): publish,
//! message ids and headers read back, resume, a zombie fenced out without moving the
//! checkpoint, unroutable and oversized messages, dead letters, refusals before connecting.

use std::time::Duration;

use apitap_chaos::testbed::rabbitmq::{read_all, read_messages};
use apitap_chaos::testbed::TempRabbitmq;
use apitap_common::checkpoint::Checkpoint;
use apitap_common::limits::{
    DEFAULT_RABBITMQ_CHECKPOINT_RETENTION, DEFAULT_RABBITMQ_MAX_MESSAGE_BYTES,
};
use serde_json::json;

use super::RabbitmqSink;
use crate::fetch::Egress;
use crate::sink::sql::suite::{at, shard, users_page as page};
use crate::sink::{dead, SinkError};

fn spec(url: String, queue: &str) -> apitap_common::spec::RabbitmqSink {
    apitap_common::spec::RabbitmqSink {
        url,
        exchange: "amq.direct".into(),
        routing_key: queue.into(),
        queue: Some(queue.into()),
        dead_letter_routing_key: None,
        dead_letter_queue: Some(format!("{queue}.dead-letters")),
        persistent: true,
        confirm_timeout: Duration::from_secs(10),
        max_message_bytes: DEFAULT_RABBITMQ_MAX_MESSAGE_BYTES,
        checkpoint_stream: Some(format!("{queue}.checkpoints")),
        checkpoint_retention: DEFAULT_RABBITMQ_CHECKPOINT_RETENTION,
    }
}

#[tokio::test]
async fn publish_resume_fencing_and_dead_letters() {
    let node = TempRabbitmq::start().unwrap();
    let spec = spec(node.url(), "users");
    let egress = Egress::default();
    let s = shard();

    let mut a = RabbitmqSink::open(&spec, &egress).await.unwrap();
    assert_eq!(a.claim(&s, 5).await.unwrap(), Checkpoint::start());
    a.commit(&s, 5, Some(&page(1, 3)), &at(3, 1, 3))
        .await
        .unwrap();
    a.commit(&s, 5, None, &at(3, 2, 3)).await.unwrap();
    a.commit(&s, 5, Some(&page(4, 2)), &at(5, 3, 5))
        .await
        .unwrap();

    let got = read_messages(&node.url(), "users").await.unwrap();
    let want: Vec<(String, String)> = [
        ("1", 0, 0),
        ("2", 0, 1),
        ("3", 0, 2),
        ("4", 2, 0),
        ("5", 2, 1),
    ]
    .iter()
    .map(|(id, page, i)| (id.to_string(), format!("p/9/2/{page}/{i}")))
    .collect();
    assert_eq!(got, want, "one message per row, named by page and position");
    let fences: Vec<_> = read_all(&node.url(), "users")
        .await
        .unwrap()
        .iter()
        .map(|m| m.fence)
        .collect();
    assert_eq!(
        fences,
        vec![Some(5); 5],
        "reading back consumed nothing; the fence is in a header"
    );

    // A new lease with a newer fence resumes from the committed checkpoint.
    let mut b = RabbitmqSink::open(&spec, &egress).await.unwrap();
    assert_eq!(b.claim(&s, 9).await.unwrap(), at(5, 3, 5));
    // The zombie (fence 5) cannot commit: refused, and the checkpoint does not move.
    let zombie = a.commit(&s, 5, Some(&page(6, 1)), &at(6, 4, 6)).await;
    assert!(
        matches!(zombie, Err(SinkError::Fenced { stored: 9, ours: 5 })),
        "{zombie:?}"
    );
    // Whatever the zombie published before it learnt is a duplicate-free extra with its
    // own page's id, never a new checkpoint: the next lease resumes where fence 9 is.
    let mut c = RabbitmqSink::open(&spec, &egress).await.unwrap();
    assert_eq!(c.claim(&s, 10).await.unwrap(), at(5, 3, 5));
    // A stale claim is refused.
    let stale = RabbitmqSink::open(&spec, &egress)
        .await
        .unwrap()
        .claim(&s, 7)
        .await;
    assert!(
        matches!(
            stale,
            Err(SinkError::Fenced {
                stored: 10,
                ours: 7
            })
        ),
        "{stale:?}"
    );
    // b was fenced out by c's claim.
    let fenced = b
        .dead_letter(&s, 9, dead(3, &[json!({"id": 6})], "bad"))
        .await;
    assert!(
        matches!(fenced, Err(SinkError::Fenced { .. })),
        "{fenced:?}"
    );

    // Re-publishing a page after a crash gives the same ids (a duplicate a consumer drops).
    c.commit(&s, 10, Some(&page(6, 2)), &at(7, 4, 7))
        .await
        .unwrap();
    let ids: Vec<_> = read_messages(&node.url(), "users")
        .await
        .unwrap()
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert!(
        ids.ends_with(&["p/9/2/3/0".to_string(), "p/9/2/3/1".to_string()]),
        "{ids:?}"
    );

    // Dead letters go to their own key with the error.
    c.dead_letter(
        &s,
        10,
        dead(
            4,
            &[json!({"id": 8}), json!({"id": 9})],
            "column x: not a number",
        ),
    )
    .await
    .unwrap();
    let dead = read_messages(&node.url(), "users.dead-letters")
        .await
        .unwrap();
    assert_eq!(
        dead,
        vec![
            ("8".to_string(), "p/9/2/4/0/dead-letter".to_string()),
            ("9".to_string(), "p/9/2/4/1/dead-letter".to_string())
        ]
    );
}

#[tokio::test]
async fn refusals_are_user_errors_that_say_what_to_fix() {
    let node = TempRabbitmq::start().unwrap();
    let egress = Egress::default();
    let s = shard();
    let user_error = |r: Result<(), SinkError>| match r {
        Err(SinkError::User(m)) => m,
        other => panic!("expected a user error, got {other:?}"),
    };

    // No queue bound for the routing key: the broker returns the message.
    let mut unbound = spec(node.url(), "nowhere");
    unbound.queue = None;
    let mut sink = RabbitmqSink::open(&unbound, &egress).await.unwrap();
    sink.claim(&s, 1).await.unwrap();
    let m = user_error(sink.commit(&s, 1, Some(&page(1, 1)), &at(1, 1, 1)).await);
    assert!(m.contains("no queue is bound"), "{m}");

    // A row over max_message_bytes names the limit.
    let mut small = spec(node.url(), "small");
    small.max_message_bytes = 10;
    let mut sink = RabbitmqSink::open(&small, &egress).await.unwrap();
    sink.claim(&s, 1).await.unwrap();
    let m = user_error(sink.commit(&s, 1, Some(&page(1, 1)), &at(1, 1, 1)).await);
    assert!(m.contains("max_message_bytes"), "{m}");

    // A broker that stops answering: no confirm within confirm_timeout is transient.
    let mut slow = spec(node.url(), "slow");
    slow.confirm_timeout = Duration::from_millis(500);
    let mut sink = RabbitmqSink::open(&slow, &egress).await.unwrap();
    sink.claim(&s, 1).await.unwrap();
    node.pause();
    let timed_out = sink.commit(&s, 1, Some(&page(1, 1)), &at(1, 1, 1)).await;
    node.resume();
    match timed_out {
        Err(SinkError::Transient(m)) => assert!(m.contains("confirm_timeout"), "{m}"),
        other => panic!("expected a transient error, got {other:?}"),
    }

    let open_error = |r: Result<RabbitmqSink, SinkError>| match r {
        Err(SinkError::User(m)) => m,
        other => panic!("expected a user error, got {other:?}"),
    };
    // A wrong password, and an exchange that does not exist.
    let wrong = spec(node.url().replace(&node.password, "wrong"), "users");
    let m = open_error(RabbitmqSink::open(&wrong, &egress).await);
    assert!(!m.contains("wrong"), "the password is never shown: {m}");
    let mut missing = spec(node.url(), "users");
    missing.exchange = "no-such-exchange".into();
    let m = open_error(RabbitmqSink::open(&missing, &egress).await);
    assert!(
        m.contains("no-such-exchange") && m.contains("must exist"),
        "{m}"
    );
    // A broker on a metadata address, or on loopback when the worker denies it, is
    // refused before any connection.
    let m = open_error(
        RabbitmqSink::open(&spec("amqp://u:p@169.254.169.254/%2f".into(), "q"), &egress).await,
    );
    assert!(m.contains("egress deny-list"), "{m}");
    let m = open_error(
        RabbitmqSink::open(&spec(node.url(), "q"), &Egress::new(Vec::new(), true)).await,
    );
    assert!(m.contains("egress deny-list"), "{m}");
}
