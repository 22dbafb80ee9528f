//! `apitap-chaos`: the local demo, the testbed playground, benchmarks and chaos drills.

use std::path::PathBuf;

use apitap_chaos::demo::{self, DemoOptions};
use apitap_chaos::fuzz;
use apitap_chaos::playground::{self, UpOptions};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "apitap-chaos",
    version,
    about = "Local clusters for demos, tests and chaos drills of ApiTap Cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a local cluster, submit the demo pipeline, watch it, print what landed.
    Demo {
        /// Pipeline to submit.
        #[arg(long, default_value = "examples/pipelines/demo.yaml")]
        pipeline: PathBuf,
        /// Folder for logs, data and the SQLite file (emptied first).
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// Records served by the mock API.
        #[arg(long, default_value_t = 2500)]
        records: u64,
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Without mutual TLS, API tokens and sealed secrets (on by default).
        #[arg(long)]
        insecure: bool,
    },
    /// Benchmarks that print figures as JSON lines (not tests).
    Bench {
        #[command(subcommand)]
        bench: BenchCmd,
    },
    /// Start a testbed (coordinators, workers, the mock API and a throwaway PostgreSQL) and
    /// keep it running until Ctrl-C, printing every node's gRPC and admin HTTP address, each
    /// coordinator's web console, the mock API's URL and PostgreSQL's URL.
    Up {
        #[arg(long, default_value_t = 1)]
        coordinators: usize,
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[arg(long, default_value_t = 10000)]
        records: u64,
        /// Print one JSON object with the addresses on the first line of stdout:
        /// `coordinators` [{id, grpc, admin, console}], `workers` [{id, admin}], `mock_api`,
        /// `postgres`, `logs`.
        #[arg(long)]
        json: bool,
        /// Folder for logs and data; emptied first unless --keep is given (a folder that
        /// apitap-chaos did not write is refused).
        #[arg(long, default_value = "out/up")]
        out: PathBuf,
        /// Start the playground that --out holds again, on its coordinators' data and at
        /// their addresses, instead of a fresh one (PostgreSQL and the mock API are new).
        #[arg(long)]
        keep: bool,
        /// Without mutual TLS, API tokens and sealed secrets (on by default, as in
        /// production): for plain tools such as grpcurl.
        #[arg(long)]
        insecure: bool,
    },
    /// Property-based fuzzing of the parsers that read outside input: the spec loader, the
    /// JSON path subset, the Link header parser and JSON → Arrow inference (docs/chaos.md).
    /// Prints progress to stderr and a table of cases, failures and seconds; each failure
    /// with its shrunk input. Exit status: 0 no failure, 1 a failure, 3 a hang.
    Fuzz {
        /// Cases per target.
        #[arg(long, default_value_t = 10_000)]
        cases: u64,
        /// One target, or all of them one after the other.
        #[arg(long, value_enum, default_value_t = FuzzTarget::All)]
        target: FuzzTarget,
        /// Seed of the run (the same seed runs the same cases).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop each target after this long, whatever --cases says.
        #[arg(long, value_parser = humantime::parse_duration)]
        max_time: Option<std::time::Duration>,
        /// Longest one case may take before it counts as a failure; ten times this is a hang.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        case_budget: std::time::Duration,
        /// How often to print progress.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        progress: std::time::Duration,
    },
    /// Run a chaos drill: a built-in one (kill-leader, kill-workers, zombie-worker,
    /// flaky-upstream, partition-leader, mixed, rate-limit) or a YAML scenario file (docs/chaos.md).
    /// Exit status: 0 every invariant held, 1 a violation, 2 the drill could not run.
    Drill {
        /// Built-in drill name or scenario file.
        name_or_file: String,
        /// Seed of every random choice (default: the scenario's).
        #[arg(long)]
        seed: Option<u64>,
        /// Print the report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// Folder for logs, data and report.json (default out/drill/NAME; emptied first).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run the cluster in plaintext: no TLS, no tokens, secrets stored as submitted. By
        /// default a drill's cluster is secured as in production (mutual TLS with a
        /// certificate per node, tokens, sealed secrets); plaintext is for comparing figures
        /// and for watching the links with plain tools (tcpdump, grpcurl -plaintext).
        #[arg(long)]
        insecure: bool,
        /// The sink the workload loads into (default: the scenario's `workload.sink`, else
        /// postgres). The checker reads every record back from it; `kill-pg-backend`
        /// faults need postgres.
        #[arg(long, value_enum)]
        sink: Option<apitap_chaos::testbed::SinkKind>,
    },
}

/// `--target` of `fuzz`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FuzzTarget {
    All,
    Spec,
    Jsonpath,
    Link,
    Infer,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// End-to-end records/s from submit to a succeeded run into a throwaway sink; with
    /// PostgreSQL also the rate of PostgreSQL's own COPY of the same rows, and the ratio.
    Load {
        #[arg(long, default_value_t = 100_000)]
        records: u64,
        #[arg(long, default_value_t = 1000)]
        page_size: u64,
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Shards each worker runs at once.
        #[arg(long, default_value_t = 4)]
        slots: u32,
        /// Split the id range into this many shards.
        #[arg(long, default_value_t = 1)]
        shards: u32,
        /// Repeat the measurement.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        /// Where the records go (each a throwaway server or file).
        #[arg(long, value_enum, default_value_t = apitap_chaos::testbed::SinkKind::Postgres)]
        sink: apitap_chaos::testbed::SinkKind,
        /// Added to every upstream request (a slow API), e.g. 50ms.
        #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
        latency: std::time::Duration,
    },
    /// SIGKILL the leader of 3 coordinators under a submit loop, again and again: time to
    /// a new leader and to the first acknowledged submit; no acknowledged submit lost.
    Failover {
        #[arg(long, default_value_t = 20)]
        kills: u32,
        /// Keep this many CPU cores busy beside the cluster the whole time.
        #[arg(long, default_value_t = 0)]
        cpu_hog: usize,
        /// SIGTERM instead of SIGKILL: the leader hands leadership off and exits; also
        /// reports the time from SIGTERM to its exit.
        #[arg(long)]
        sigterm: bool,
    },
    /// Committed pipeline submits/s and latency on 3 coordinators with N clients.
    Submit {
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Run the cluster and the clients with mutual TLS (a throwaway CA), API tokens and
        /// sealed secrets.
        #[arg(long)]
        tls: bool,
    },
    /// SIGKILL a worker holding leases of a slow sharded run (1 coordinator, 3 workers,
    /// PostgreSQL sink), again and again: time until one of its shards commits on another
    /// worker (lease TTL + grant + claim + first page).
    Reassign {
        #[arg(long, default_value_t = 10)]
        kills: u32,
        /// `--lease-ttl` of the coordinator.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        lease_ttl: std::time::Duration,
        /// Shards of the run (at most 8, what two surviving workers can hold).
        #[arg(long, default_value_t = 6)]
        shards: u32,
        /// Latency the mock API adds to every page request, in ms.
        #[arg(long, default_value_t = 200)]
        latency_ms: u64,
        /// Keep logs and data in this new (or empty) folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Lease grants/s the leader sustains to simulated in-process workers (gRPC
    /// WorkerService) that complete every lease at once; 1 coordinator, no real workers.
    Grants {
        #[arg(long, default_value_t = 50)]
        workers: usize,
        #[arg(long, default_value_t = 2000)]
        shards: u32,
        /// Slots each simulated worker registers with.
        #[arg(long, default_value_t = 4)]
        slots: u32,
        /// Mutual TLS (a certificate per simulated worker), tokens and sealed secrets.
        #[arg(long)]
        tls: bool,
    },
    /// A global rate budget under demand far above it: worst 1 s window at the mock API
    /// (overshoot % over the limit), utilisation %, budget RPCs/s per worker. Real workers
    /// and two pipelines sharing the key (default), or `--simulated N` in-process workers
    /// that call AcquireBudget themselves (the only mode that counts those RPCs).
    Ratelimit(apitap_chaos::bench::ratelimit::RateLimitBench),
    /// Latency (p50/p99 ms) of the coordinator's JSON API and web console pages with
    /// `--runs` pending 3-shard runs and `--workers` registered simulated workers in the
    /// state; 1 coordinator, no real workers.
    Console {
        #[arg(long, default_value_t = 1000)]
        runs: u32,
        #[arg(long, default_value_t = 50)]
        workers: u32,
        /// Requests per route, one after another.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Rate-limit keys in use (their charts on the rate-limit page).
        #[arg(long, default_value_t = 20)]
        rate_keys: u32,
        /// Samples of each key's history to wait for before measuring (one per 5 s).
        #[arg(long, default_value_t = 3)]
        rate_samples: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    apitap_common_log();
    match Cli::parse().command {
        Cmd::Demo {
            pipeline,
            out,
            records,
            workers,
            insecure,
        } => {
            demo::run(DemoOptions {
                pipeline,
                out,
                records,
                workers,
                insecure,
            })
            .await
        }
        Cmd::Bench {
            bench:
                BenchCmd::Load {
                    records,
                    page_size,
                    workers,
                    slots,
                    shards,
                    repeat,
                    sink,
                    latency,
                },
        } => {
            for _ in 0..repeat {
                let figures = apitap_chaos::bench::load(apitap_chaos::bench::LoadBench {
                    records,
                    page_size,
                    workers,
                    slots,
                    shards,
                    sink,
                    latency,
                })
                .await?;
                println!("{figures}");
            }
            Ok(())
        }
        Cmd::Bench {
            bench:
                BenchCmd::Failover {
                    kills,
                    cpu_hog,
                    sigterm,
                },
        } => {
            let b = apitap_chaos::bench::raft::FailoverBench {
                kills,
                cpu_hog,
                graceful: sigterm,
            };
            println!("{}", apitap_chaos::bench::raft::failover(b).await?);
            Ok(())
        }
        Cmd::Bench {
            bench:
                BenchCmd::Submit {
                    clients,
                    seconds,
                    tls,
                },
        } => {
            println!(
                "{}",
                apitap_chaos::bench::raft::submit(clients, seconds, tls).await?
            );
            Ok(())
        }
        Cmd::Bench {
            bench:
                BenchCmd::Reassign {
                    kills,
                    lease_ttl,
                    shards,
                    latency_ms,
                    out,
                },
        } => {
            let b = apitap_chaos::bench::lease::ReassignBench {
                kills,
                lease_ttl,
                shards,
                latency_ms,
                out,
            };
            println!("{}", apitap_chaos::bench::lease::reassign(b).await?);
            Ok(())
        }
        Cmd::Bench {
            bench:
                BenchCmd::Grants {
                    workers,
                    shards,
                    slots,
                    tls,
                },
        } => {
            let b = apitap_chaos::bench::lease::GrantsBench {
                workers,
                shards,
                slots,
                tls,
            };
            println!("{}", apitap_chaos::bench::lease::grants(b).await?);
            Ok(())
        }
        Cmd::Bench {
            bench:
                BenchCmd::Console {
                    runs,
                    workers,
                    requests,
                    rate_keys,
                    rate_samples,
                },
        } => {
            let b = apitap_chaos::bench::console::ConsoleBench {
                runs,
                workers,
                requests,
                rate_keys,
                rate_samples,
            };
            println!("{}", apitap_chaos::bench::console::console(b).await?);
            Ok(())
        }
        Cmd::Bench {
            bench: BenchCmd::Ratelimit(b),
        } => {
            println!("{}", apitap_chaos::bench::ratelimit::ratelimit(b).await?);
            Ok(())
        }
        Cmd::Fuzz {
            cases,
            target,
            seed,
            max_time,
            case_budget,
            progress,
        } => {
            let opts = fuzz::RunOptions {
                cases,
                max_time,
                seed,
                case_budget,
                progress: Some(progress),
            };
            let targets = match target {
                FuzzTarget::All => fuzz::Target::ALL.to_vec(),
                FuzzTarget::Spec => vec![fuzz::Target::Spec],
                FuzzTarget::Jsonpath => vec![fuzz::Target::Jsonpath],
                FuzzTarget::Link => vec![fuzz::Target::Link],
                FuzzTarget::Infer => vec![fuzz::Target::Infer],
            };
            let outcomes: Vec<fuzz::Outcome> = targets.iter().map(|t| t.run(&opts)).collect();
            for failure in outcomes.iter().filter_map(|o| o.failure.as_deref()) {
                println!("FAILURE {failure}\n");
            }
            print!("{}", fuzz::table(&outcomes));
            std::process::exit(if outcomes.iter().any(|o| o.failures > 0) {
                1
            } else {
                0
            })
        }
        Cmd::Drill {
            name_or_file,
            seed,
            json,
            out,
            insecure,
            sink,
        } => match drill(&name_or_file, seed, json, out, !insecure, sink).await {
            Ok(report) => std::process::exit(if report.passed { 0 } else { 1 }),
            Err(e) => {
                eprintln!("drill could not run: {e:#}");
                std::process::exit(2)
            }
        },
        Cmd::Up {
            coordinators,
            workers,
            records,
            json,
            out,
            keep,
            insecure,
        } => {
            let opts = UpOptions {
                coordinators,
                workers,
                records,
                out,
                keep,
                insecure,
            };
            let playground = playground::start(&opts).await?;
            if json {
                println!("{}", playground.info());
            } else {
                print!("{}", playground.text());
            }
            tokio::signal::ctrl_c().await?;
            drop(playground);
            Ok(())
        }
    }
}

async fn drill(
    name_or_file: &str,
    seed: Option<u64>,
    json: bool,
    out: Option<PathBuf>,
    tls: bool,
    sink: Option<apitap_chaos::testbed::SinkKind>,
) -> anyhow::Result<apitap_chaos::drill::Report> {
    let mut scenario = apitap_chaos::drill::load(name_or_file)?;
    if let Some(seed) = seed {
        scenario.reseed(seed);
    }
    if let Some(sink) = sink {
        scenario.workload.sink = sink;
    }
    let out = out.unwrap_or_else(|| PathBuf::from("out/drill").join(&scenario.name));
    let opts = apitap_chaos::drill::DrillOptions {
        out,
        verbose: true,
        tls,
    };
    let report = tokio::select! {
        r = apitap_chaos::drill::run(scenario, opts) => r?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the cluster was stopped"),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.human());
    }
    Ok(report)
}

fn apitap_common_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}
