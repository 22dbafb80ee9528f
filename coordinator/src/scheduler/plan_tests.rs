//! Ticks replayed without a node: a state built by applying commands, a liveness, a clock.

use std::time::{Duration, Instant};

use super::*;
use crate::state::command::{apply, CommandResult};

const SPEC: &str = "apiVersion: apitap/v1\nkind: Pipeline\nmetadata: { name: p }\nspec:\n  source: { http: { url: \"http://127.0.0.1:9/v1/all\" } }\n  sink: { sqlite: { path: /tmp/unused.db, table: t } }\n";

fn config() -> PlanConfig {
    PlanConfig {
        lease_ttl: Duration::from_secs(10),
        worker_heartbeat: Duration::from_secs(1),
        max_shards_per_namespace: 100,
        keep_runs: 10,
        forget_workers_after: Duration::from_secs(3600),
    }
}

struct World {
    state: State,
    live: Liveness,
    index: u64,
    t0: Instant,
    /// The term of the leader that plans.
    term: u64,
}

impl World {
    /// The leader of term 1 from `t0` on.
    fn new() -> Self {
        let t0 = Instant::now();
        let mut live = Liveness::default();
        live.reset(1, t0);
        Self {
            state: State::default(),
            live,
            index: 0,
            t0,
            term: 1,
        }
    }

    fn step(&mut self, cmd: Command) -> CommandResult {
        self.index += 1;
        apply(&mut self.state, self.index, &cmd).0
    }

    fn worker(&mut self, id: &str, slots: u32, at: Duration) {
        self.step(Command::RegisterWorker(command::RegisterWorker {
            id: id.into(),
            addr: String::new(),
            slots,
            now_ms: 0,
            max_workers: 0,
        }));
        self.live.heartbeat(id, "", slots, false, self.t0 + at);
    }

    fn pipeline(&mut self, every_ms: Option<u64>, shards: u32) {
        let defs = crate::state::apply::test_shards(shards);
        self.step(Command::PutPipeline(command::PutPipeline {
            spec_yaml: SPEC.into(),
            every_ms,
            start_run: every_ms.is_none().then_some(defs),
            now_ms: 1_000,
            ..command::PutPipeline::for_test("p")
        }));
    }

    /// The tick at `at` after the start (wall clock `1_000 + at` ms), applied.
    fn tick(&mut self, at: Duration) -> Vec<&'static str> {
        let now_ms = 1_000 + at.as_millis() as u64;
        let plan = plan(
            &self.state,
            &mut self.live,
            &config(),
            self.term,
            self.t0 + at,
            now_ms,
        );
        let kinds = plan
            .cmds
            .iter()
            .map(|p| match p.cmd {
                Command::GrantLeases(_) => "grant",
                Command::ExpireLease(_) => "expire",
                Command::StartRun(_) => "start",
                Command::PruneRuns(_) => "prune",
                Command::ForgetWorkers(_) => "forget",
                _ => "other",
            })
            .collect();
        for p in plan.cmds {
            self.step(p.cmd);
        }
        kinds
    }
}

#[test]
fn shards_go_to_live_workers_and_expire_when_not_renewed() {
    let mut w = World::new();
    w.worker("a", 2, Duration::ZERO);
    w.pipeline(None, 3);
    assert_eq!(w.tick(Duration::ZERO), ["grant"]);
    assert_eq!(w.state.leased_by_namespace()["default"], 2, "a has 2 slots");
    // A worker not heard from within the placement window gets nothing more.
    w.worker("b", 2, Duration::ZERO);
    assert!(w.tick(Duration::from_secs(5)).is_empty());
    // The TTL (counted from the first tick that saw the leases, at 5 s) runs out without
    // renewals: both of a's leases expire.
    assert!(w.tick(Duration::from_secs(14)).is_empty());
    let kinds = w.tick(Duration::from_secs(16));
    assert_eq!(kinds.iter().filter(|k| **k == "expire").count(), 2);
}

#[test]
fn a_schedule_fires_when_due_and_not_over_a_running_run() {
    let mut w = World::new();
    w.pipeline(Some(60_000), 1);
    assert!(w.tick(Duration::ZERO).contains(&"start"));
    // The run is pending (no worker): no second run, however late.
    assert!(!w.tick(Duration::from_secs(600)).contains(&"start"));
}

#[test]
fn a_new_term_gives_every_lease_a_full_ttl() {
    let mut w = World::new();
    w.worker("a", 1, Duration::ZERO);
    w.pipeline(None, 1);
    w.tick(Duration::ZERO);
    // The next leader starts counting at its first tick, however old the lease.
    w.term = 2;
    assert!(w.tick(Duration::from_secs(100)).is_empty());
    assert_eq!(w.tick(Duration::from_secs(111)).first(), Some(&"expire"));
}

#[test]
fn a_schedule_that_cannot_be_planned_fails_a_run_and_waits_for_its_next_time() {
    let mut w = World::new();
    // Stored before the shard limit existed: 20,000 shards, over MAX_SHARDS.
    w.step(Command::PutPipeline(command::PutPipeline {
        spec_yaml: SPEC.replace(
            "spec:\n",
            "spec:\n  shards: { param: id, range: { start: 0, end: 20000, count: 20000 } }\n",
        ),
        every_ms: Some(60_000),
        now_ms: 1_000,
        ..command::PutPipeline::for_test("p")
    }));
    assert_eq!(w.tick(Duration::ZERO), ["start"]);
    let run = &w.state.runs[&w.state.next_run_id];
    assert_eq!(run.state, crate::state::model::RunState::Failed);
    let error = run.error.as_deref().unwrap_or_default();
    assert!(error.contains("the run could not be planned"), "{error}");
    assert!(
        error.contains("10000") || error.contains("10,000"),
        "{error}"
    );
    // Not again on every tick: the next attempt is the next scheduled time.
    assert!(w.tick(Duration::from_secs(30)).is_empty());
    assert_eq!(w.tick(Duration::from_secs(61)), ["start"]);
}
