use std::sync::Arc;

use apitap_common::checkpoint::Position;
use arrow::array::Int64Array;
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::json;

use super::*;

fn rows(column: &str, values: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
}

fn page(column: &str, values: &[i64], pages: u64, done: bool) -> PendingPage {
    PendingPage {
        rows: Some(rows(column, values)),
        records: values.iter().map(|v| json!({ column: v })).collect(),
        after: Checkpoint {
            position: if done {
                Position::Done
            } else {
                Position::Start
            },
            pages,
            records: 0,
            watermark: None,
        },
    }
}

fn limits(max_records: u64, max_wait: Duration) -> Batch {
    Batch {
        max_records,
        max_wait,
        ..Batch::default()
    }
}

#[test]
fn a_batch_is_due_at_max_records_and_not_before() {
    let t = Instant::now();
    let l = limits(4, Duration::from_secs(60));
    let mut b = Pending::default();
    assert!(!b.is_due(&l, t), "an empty batch is never due");
    b.push(page("id", &[1, 2], 1, false), t);
    assert!(!b.is_due(&l, t));
    b.push(page("id", &[3], 2, false), t);
    assert!(!b.is_due(&l, t), "3 of 4 records");
    b.push(page("id", &[4], 3, false), t);
    assert!(b.is_due(&l, t), "4 of 4 records");
    assert_eq!(b.last().map(|c| c.pages), Some(3));
}

#[test]
fn a_batch_is_due_when_max_wait_passed_since_its_first_page() {
    let t = Instant::now();
    let l = limits(1000, Duration::from_millis(200));
    let mut b = Pending::default();
    assert_eq!(b.deadline(l.max_wait), None);
    b.push(page("id", &[1], 1, false), t);
    b.push(page("id", &[2], 2, false), t + Duration::from_millis(150));
    assert_eq!(b.deadline(l.max_wait), Some(t + Duration::from_millis(200)));
    assert!(!b.is_due(&l, t + Duration::from_millis(199)));
    assert!(b.is_due(&l, t + Duration::from_millis(200)));
    assert!(
        b.is_due(&limits(1000, Duration::ZERO), t),
        "max_wait 0 commits every page"
    );
}

#[test]
fn the_last_page_of_the_shard_closes_the_batch() {
    let t = Instant::now();
    let mut b = Pending::default();
    b.push(page("id", &[1], 1, true), t);
    assert!(b.is_due(&limits(1000, Duration::from_secs(60)), t));
}

#[test]
fn pages_join_only_a_batch_of_their_schema_and_concat_in_order() {
    let t = Instant::now();
    let mut b = Pending::default();
    assert!(b.fits(Some(&rows("id", &[1]))), "an empty batch takes any");
    b.push(page("id", &[1, 2], 1, false), t);
    assert!(b.fits(None), "a page without rows fits any batch");
    b.push(
        PendingPage {
            rows: None,
            records: Vec::new(),
            after: Checkpoint::start(),
        },
        t,
    );
    b.push(page("id", &[3], 3, false), t);
    assert!(!b.fits(Some(&rows("other", &[1]))));
    let pages = b.take();
    assert!(b.is_empty() && b.deadline(Duration::ZERO).is_none());
    let all = concat(&pages).unwrap().unwrap();
    let ids = all.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(ids.values().to_vec(), vec![1, 2, 3]);
    assert_eq!(concat(&pages[1..2]).unwrap(), None);
}
