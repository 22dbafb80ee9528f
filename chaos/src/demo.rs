//! `apitap-chaos demo`: start a local cluster (one coordinator, two workers, the mock API),
//! submit `examples/pipelines/demo.yaml`, show the run's progress, and print what landed in
//! the SQLite file.

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::{Connection, Row};

use crate::testbed::{bins, TestCluster};

pub struct DemoOptions {
    pub pipeline: PathBuf,
    pub out: PathBuf,
    pub records: u64,
    pub workers: usize,
    /// Plaintext, no tokens, secrets unsealed (by default the demo runs as production
    /// should: mutual TLS, API tokens, sealed secrets).
    pub insecure: bool,
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    // Emptied first, but only a folder apitap-chaos wrote (never someone's files).
    let out = crate::testbed::out_dir::fresh(&opts.out, "demo")?;
    let db = out.join("demo.db");
    eprintln!("starting a local cluster: 1 coordinator, {} workers, mock API with {} records (logs in {})", opts.workers, opts.records, out.join("logs").display());
    let mut builder = TestCluster::builder()
        .coordinators(1)
        .workers(opts.workers)
        .records(opts.records)
        .out_dir(&out);
    if !opts.insecure {
        builder = builder.tls();
    }
    let cluster = builder.start().await?;
    let context = out.join("apitapctl.yaml");
    cluster.write_context(&context, "demo")?;
    eprintln!(
        "cluster ready: coordinator {} ({}), mock API {}",
        cluster.coordinator_addrs()[0],
        if opts.insecure {
            "plaintext"
        } else {
            "mutual TLS, API token, sealed secrets"
        },
        cluster.mock.url()
    );
    if let Some(admin) = &cluster.coordinators[0].admin {
        eprintln!(
            "web console: http://{admin}/console{}",
            if opts.insecure {
                String::new()
            } else {
                format!(
                    " (sign in with the token in {})",
                    cluster.coordinators[0]
                        .data_dir
                        .join("admin.token")
                        .display()
                )
            }
        );
    }
    eprintln!(
        "submitting {} (apitapctl context: APITAP_CONFIG={})",
        opts.pipeline.display(),
        context.display()
    );
    let status = Command::new(bins::path("apitapctl")?)
        .env("APITAP_CONFIG", &context)
        .arg("submit")
        .arg(&opts.pipeline)
        .arg("--watch")
        .env("MOCK_API_URL", cluster.mock.url())
        .env("DEMO_DB", &db)
        .status()?;
    if !status.success() {
        anyhow::bail!(
            "the demo run did not succeed; see the logs in {}",
            out.join("logs").display()
        );
    }
    print_rows(&db).await?;
    eprintln!("stopping the cluster");
    drop(cluster);
    Ok(())
}

async fn print_rows(db: &Path) -> anyhow::Result<()> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM users")
        .fetch_one(&mut conn)
        .await?
        .get(0);
    println!();
    println!(
        "{count} rows landed in {} (table users); the first 5:",
        db.display()
    );
    let rows =
        sqlx::query("SELECT id, userName, email, score, city FROM users ORDER BY id LIMIT 5")
            .fetch_all(&mut conn)
            .await?;
    println!(
        "{:>4}  {:<12}  {:<22}  {:>7}  city",
        "id", "userName", "email", "score"
    );
    for r in rows {
        let id: i64 = r.try_get(0).unwrap_or_default();
        let user: String = r.try_get(1).unwrap_or_default();
        let email: String = r.try_get(2).unwrap_or_default();
        let score: f64 = r.try_get(3).unwrap_or_default();
        let city: String = r.try_get(4).unwrap_or_default();
        println!("{id:>4}  {user:<12}  {email:<22}  {score:>7.2}  {city}");
    }
    Ok(())
}
