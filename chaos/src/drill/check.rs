//! The checks made once the cluster has healed: every source record in the sink exactly
//! once, and every coordinator holding the same Raft state.

use std::collections::BTreeSet;
use std::time::Duration;

use super::workload::DrillPipeline;
use crate::mock_api::record;
use crate::testbed::grpc::{status_as, Caller};
use crate::testbed::{wait, SinkReader};

/// How one pipeline's table compares with the records it had to load.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableCheck {
    pub pipeline: String,
    pub table: String,
    pub expected: u64,
    pub rows: u64,
    /// Expected ids absent from the table.
    pub lost: u64,
    /// Rows beyond the first of each id (for a sink with message ids: beyond the first of
    /// each distinct message id of an id).
    pub duplicated: u64,
    /// A sink with message ids (RabbitMQ, at least once): rows of an id beyond the first
    /// that repeat a message id already seen, which consumers drop. Not a violation.
    pub redelivered: u64,
    /// Ids the table should not hold at all.
    pub unexpected: u64,
    /// Rows whose content differs from the mock API's record.
    pub corrupt: u64,
    /// The first missing ids, for the report.
    pub first_lost: Vec<u64>,
    /// The first ids loaded more than once.
    pub first_duplicated: Vec<u64>,
    /// Every missing id, for the per-shard gaps.
    #[serde(skip)]
    pub lost_ids: BTreeSet<u64>,
}

/// Compares `p.table` in the sink with ids `p.first_id..=p.last_id` of the mock dataset.
pub async fn table(sink: &SinkReader, p: &DrillPipeline) -> anyhow::Result<TableCheck> {
    let mut c = TableCheck {
        pipeline: p.name.clone(),
        table: p.table.clone(),
        expected: p.records(),
        ..Default::default()
    };
    let mut seen = BTreeSet::new();
    for r in sink.id_rows(&p.table).await? {
        let (id, n) = (r.id as u64, r.rows);
        c.rows += n;
        if !(p.first_id..=p.last_id).contains(&id) {
            c.unexpected += 1;
            continue;
        }
        seen.insert(id);
        // At least once: the same message again is a redelivery; another message id for
        // the same record is a duplicate.
        let distinct = r.message_ids.unwrap_or(n).min(n);
        c.redelivered += n - distinct;
        if distinct > 1 {
            c.duplicated += distinct - 1;
            if c.first_duplicated.len() < 10 {
                c.first_duplicated.push(id);
            }
        }
        let want = record(id);
        let ok = r
            .email
            .iter()
            .all(|f| f.as_deref() == want["email"].as_str())
            && r.user_name
                .iter()
                .all(|f| f.as_deref() == want["userName"].as_str());
        if !ok {
            c.corrupt += 1;
        }
    }
    c.lost_ids = (p.first_id..=p.last_id)
        .filter(|id| !seen.contains(id))
        .collect();
    c.lost = c.lost_ids.len() as u64;
    c.first_lost = c.lost_ids.iter().take(10).copied().collect();
    Ok(c)
}

/// Shards (by their `start-end` key) with missing ids: "gaps per shard".
pub fn shard_gaps(check: &TableCheck, shard_keys: &[String]) -> Vec<String> {
    if check.lost == 0 {
        return Vec::new();
    }
    shard_keys
        .iter()
        .filter_map(|k| {
            let (a, b) = k.split_once('-')?;
            let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
            let missing = check.lost_ids.range(a..=b).count();
            (missing > 0).then(|| format!("{} shard {k}: {missing} ids missing", check.pipeline))
        })
        .collect()
}

/// Waits until every coordinator reports the same applied index and state digest (asked as
/// `caller`); on a timeout returns what each one reported.
pub async fn raft_converged(
    addrs: &[String],
    caller: &Caller,
    timeout: Duration,
) -> Result<String, String> {
    let agreed = wait::until_async("the coordinators to agree", timeout, || async {
        let mut seen = BTreeSet::new();
        for a in addrs {
            let s = status_as(a, caller).await.ok()?;
            seen.insert((s.applied_index, s.state_digest));
        }
        (seen.len() == 1).then(|| seen.into_iter().next().map(|(_, d)| d).unwrap_or_default())
    })
    .await;
    match agreed {
        Ok(d) => Ok(d),
        Err(_) => {
            let mut views = Vec::new();
            for a in addrs {
                views.push(match status_as(a, caller).await {
                    Ok(s) => format!("{a}: applied {} digest {}", s.applied_index, s.state_digest),
                    Err(e) => format!("{a}: unreachable ({e})"),
                });
            }
            Err(views.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_attributed_to_their_shards() {
        let c = TableCheck {
            pipeline: "drill-1".into(),
            lost: 3,
            lost_ids: [3, 4, 25].into_iter().collect(),
            ..Default::default()
        };
        let keys = vec!["1-10".to_string(), "11-20".to_string(), "21-30".to_string()];
        assert_eq!(
            shard_gaps(&c, &keys),
            vec![
                "drill-1 shard 1-10: 2 ids missing".to_string(),
                "drill-1 shard 21-30: 1 ids missing".to_string()
            ]
        );
    }
}
