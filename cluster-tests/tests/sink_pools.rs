//! A worker with many slots shares one connection pool per sink database: 40 shards at once
//! into PostgreSQL hold at most `--sink-connections` connections, and every record lands
//! once.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apitap_chaos::testbed::pipeline_doc;
use apitap_cluster_tests::fixture;

const RECORDS: u64 = 4_000;
const SHARDS: u32 = 40;
const CONNECTIONS: i64 = 3;

#[tokio::test(flavor = "multi_thread")]
async fn forty_shards_on_one_worker_share_the_sink_connections() -> anyhow::Result<()> {
    let (pg, builder) = fixture::warehouse()?;
    let cluster = builder
        .coordinators(1)
        .workers(1)
        .slots(SHARDS)
        .records(RECORDS)
        .worker_env("APITAP_SINK_CONNECTIONS", &CONNECTIONS.to_string())
        .start()
        .await?;
    // Slow enough that all 40 shards are in flight at once.
    fixture::slow_source(&cluster, 100);
    let yaml = pipeline_doc::Sharded {
        name: "pooled",
        ids: 1..=RECORDS,
        shards: SHARDS,
        paging: &pipeline_doc::limit_offset(20),
        sink: &pipeline_doc::postgres("pooled"),
        http_extra: "",
        spec_extra: "  batch: { max_records: 20 }\n",
    }
    .yaml();

    // The most worker connections PostgreSQL sees at once, sampled during the run.
    let pool = sqlx::PgPool::connect(&pg.url()).await?;
    let most = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (pool, most, stop) = (pool.clone(), most.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let n: Result<i64, _> = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'apitap-worker'",
                )
                .fetch_one(&pool)
                .await;
                if let Ok(n) = n {
                    most.fetch_max(n, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let run = tokio::task::block_in_place(|| cluster.submit("pooled", &yaml))?;
    let info = tokio::task::block_in_place(|| {
        fixture::wait_succeeded(&cluster, run, Duration::from_secs(180))
    })?;
    stop.store(true, Ordering::Relaxed);
    sampler.await?;

    let most = most.load(Ordering::Relaxed);
    assert!(most >= 1, "the sampler saw the worker's connections");
    assert!(
        most <= CONNECTIONS,
        "{SHARDS} shards held {most} connections at once, more than --sink-connections {CONNECTIONS}"
    );
    assert_eq!(
        info["shards"].as_array().map(Vec::len),
        Some(SHARDS as usize)
    );
    let (rows, ids): (i64, i64) = sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT id) FROM pooled")
        .fetch_one(&pool)
        .await?;
    assert_eq!((rows, ids), (RECORDS as i64, RECORDS as i64));
    Ok(())
}
