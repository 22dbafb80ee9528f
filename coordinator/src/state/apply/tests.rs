//! Commands applied to a state as the log would apply them, one index at a time.

use std::collections::BTreeMap;

use apitap_common::shard::ShardDef;
use apitap_proto::limits::{
    MAX_CHECKPOINT_BYTES, MAX_DEAD_LETTER_RECORD_BYTES, MAX_DEAD_LETTER_SAMPLE, MAX_ERROR_BYTES,
    MAX_RETRY_AFTER_MS,
};

use crate::state::command::{self, apply, Command, CommandResult, LeaseGrant};
use crate::state::model::{DeadLetterSample, RunState, ShardState, State};

/// A state machine fed by hand: each step is the next log index.
struct Log {
    state: State,
    index: u64,
}

impl Log {
    fn new() -> Self {
        Self {
            state: State::default(),
            index: 0,
        }
    }

    fn step(&mut self, cmd: Command) -> CommandResult {
        self.index += 1;
        apply(&mut self.state, self.index, &cmd).0
    }

    fn pipeline(&mut self, name: &str, secret: &str, shards: u32, max_attempts: u32) -> u64 {
        let defs = crate::state::apply::test_shards(shards);
        let r = self.step(Command::PutPipeline(command::PutPipeline {
            secrets: BTreeMap::from([("TOKEN".into(), secret.into())]),
            max_attempts,
            rate_limit: Some(("api".into(), 10.0, 5)),
            start_run: Some(defs),
            ..command::PutPipeline::for_test(name)
        }));
        match r {
            CommandResult::PipelineStored {
                run_id: Some(id), ..
            } => id,
            other => panic!("not stored: {other:?}"),
        }
    }

    fn grant(&mut self, run_id: u64, shard: u32, worker: &str) -> u64 {
        let r = self.step(Command::GrantLeases(command::GrantLeases {
            grants: vec![LeaseGrant {
                run_id,
                shard,
                worker: worker.into(),
                trace: None,
            }],
            max_shards_per_namespace: 0,
        }));
        assert!(
            matches!(r, CommandResult::Granted { granted: 1, .. }),
            "{r:?}"
        );
        self.index
    }

    fn complete(&mut self, run_id: u64, fence: u64, worker: &str, ok: bool) -> CommandResult {
        self.step(Command::CompleteShard(command::CompleteShard {
            run_id,
            shard: 0,
            fence,
            ok,
            retriable: true,
            error: (!ok).then(|| "boom".into()),
            pages: 1,
            records: 10,
            watermark: None,
            dead_letters: 0,
            dead_letter_sample: Vec::new(),
            now_ms: 5,
            worker: worker.into(),
        }))
    }
}

fn rejected(r: &CommandResult) -> &str {
    match r {
        CommandResult::Rejected { reason } => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn only_the_holder_may_report_on_a_shard() {
    let mut log = Log::new();
    let run = log.pipeline("p", "s", 1, 3);
    let fence = log.grant(run, 0, "a");

    let forged_checkpoint = log.step(Command::Checkpoint(command::Checkpoint {
        run_id: run,
        shard: 0,
        fence,
        checkpoint: "{\"forged\":true}".into(),
        pages: 99,
        records: 99,
        worker: "b".into(),
    }));
    assert!(rejected(&forged_checkpoint).contains("not held by worker b"));
    let forged_release = log.step(Command::ReleaseLease(command::ReleaseLease {
        run_id: run,
        shard: 0,
        fence,
        checkpoint: None,
        worker: "b".into(),
    }));
    rejected(&forged_release);
    rejected(&log.complete(run, fence, "b", true));

    let shard = &log.state.runs[&run].shards[0];
    assert_eq!(shard.state, ShardState::Leased);
    assert_eq!(shard.worker.as_deref(), Some("a"));
    assert_eq!(shard.checkpoint, None);

    assert_eq!(log.complete(run, fence, "a", true), CommandResult::Done);
    assert_eq!(log.state.runs[&run].state, RunState::Succeeded);
}

#[test]
fn a_stale_fence_is_rejected_even_from_the_right_worker() {
    let mut log = Log::new();
    let run = log.pipeline("p", "s", 1, 3);
    let first = log.grant(run, 0, "a");
    let expired = log.step(Command::ExpireLease(command::ExpireLease {
        run_id: run,
        shard: 0,
        fence: first,
    }));
    assert_eq!(expired, CommandResult::Done);
    let second = log.grant(run, 0, "a");
    assert!(second > first);
    rejected(&log.complete(run, first, "a", true));
    assert_eq!(log.complete(run, second, "a", true), CommandResult::Done);
}

#[test]
fn failures_retry_until_the_attempts_run_out_then_the_run_fails() {
    let mut log = Log::new();
    let run = log.pipeline("p", "s", 1, 2);
    let f1 = log.grant(run, 0, "a");
    log.complete(run, f1, "a", false);
    let shard = &log.state.runs[&run].shards[0];
    assert_eq!(shard.state, ShardState::Pending);
    assert!(shard.not_before_ms > 5, "a back-off before the next grant");
    let f2 = log.grant(run, 0, "a");
    log.complete(run, f2, "a", false);
    let r = &log.state.runs[&run];
    assert_eq!(r.shards[0].state, ShardState::Failed);
    assert_eq!(r.state, RunState::Failed);
    assert!(r.error.as_deref().unwrap().contains("boom"));

    // Retry puts the failed shard back with a fresh budget; a second retry is refused
    // while the run is active.
    let retry = || {
        Command::RetryRun(command::RetryRun {
            run_id: run,
            now_ms: 9,
        })
    };
    assert_eq!(log.step(retry()), CommandResult::Done);
    assert_eq!(log.state.runs[&run].state, RunState::Pending);
    assert!(rejected(&log.step(retry())).contains("still pending"));
}

#[test]
fn a_cancelled_run_takes_no_more_reports() {
    let mut log = Log::new();
    let run = log.pipeline("p", "s", 2, 1);
    let fence = log.grant(run, 0, "a");
    let r = log.step(Command::CancelRun(command::CancelRun {
        run_id: run,
        now_ms: 3,
    }));
    assert_eq!(r, CommandResult::Done);
    rejected(&log.complete(run, fence, "a", true));
    let st = &log.state.runs[&run];
    assert_eq!(st.state, RunState::Cancelled);
    assert!(st.shards.iter().all(|s| s.state == ShardState::Cancelled));
}

#[test]
fn oversized_reports_are_bounded() {
    let mut log = Log::new();
    let run = log.pipeline("p", "s", 1, 1);
    let fence = log.grant(run, 0, "a");
    let big = log.step(Command::Checkpoint(command::Checkpoint {
        run_id: run,
        shard: 0,
        fence,
        checkpoint: "x".repeat(MAX_CHECKPOINT_BYTES + 1),
        pages: 1,
        records: 1,
        worker: "a".into(),
    }));
    assert!(rejected(&big).contains("MAX_CHECKPOINT_BYTES"));
    let r = log.step(Command::CompleteShard(command::CompleteShard {
        run_id: run,
        shard: 0,
        fence,
        ok: false,
        retriable: false,
        error: Some("e".repeat(10 * MAX_ERROR_BYTES)),
        pages: 0,
        records: 0,
        watermark: None,
        dead_letters: 0,
        dead_letter_sample: Vec::new(),
        now_ms: 5,
        worker: "a".into(),
    }));
    assert_eq!(r, CommandResult::Done);
    let error = log.state.runs[&run].shards[0].error.clone().unwrap();
    assert!(error.len() <= MAX_ERROR_BYTES, "{} bytes", error.len());
}

#[test]
fn dead_letters_add_up_over_attempts_and_keep_a_bounded_sample_of_the_newest() {
    let mut log = Log::new();
    let run = log.pipeline("p", "s", 1, 3);
    let failed_with = |log: &mut Log, fence: u64, count: u64, pages: std::ops::Range<u64>| {
        let sample = pages
            .map(|page| DeadLetterSample {
                page,
                error: "e".repeat(2 * MAX_ERROR_BYTES),
                record: format!("{{\"page\": {page}, \"pad\": \"{}\"}}", "x".repeat(4096)),
            })
            .collect();
        log.step(Command::CompleteShard(command::CompleteShard {
            run_id: run,
            shard: 0,
            fence,
            ok: false,
            retriable: true,
            error: Some("cannot cast".into()),
            pages: 0,
            records: 0,
            watermark: None,
            now_ms: 5,
            worker: "a".into(),
            dead_letters: count,
            dead_letter_sample: sample,
        }))
    };
    let fence = log.grant(run, 0, "a");
    assert_eq!(failed_with(&mut log, fence, 10, 1..6), CommandResult::Done);
    let fence = log.grant(run, 0, "a");
    assert_eq!(failed_with(&mut log, fence, 2, 7..8), CommandResult::Done);
    let shard = &log.state.runs[&run].shards[0];
    assert_eq!(shard.dead_letters, 12);
    let pages: Vec<u64> = shard.dead_letter_sample.iter().map(|d| d.page).collect();
    assert_eq!(pages.len(), MAX_DEAD_LETTER_SAMPLE);
    assert_eq!(pages, [4, 5, 7], "the newest are kept");
    for d in &shard.dead_letter_sample {
        assert!(
            d.record.len() <= MAX_DEAD_LETTER_RECORD_BYTES,
            "{}",
            d.record.len()
        );
        assert!(d.error.len() <= MAX_ERROR_BYTES, "{}", d.error.len());
        assert!(d.record.ends_with("[truncated]"));
    }
}

#[test]
fn a_back_off_is_clamped_to_the_maximum_and_only_extends() {
    let mut log = Log::new();
    log.pipeline("p", "s", 1, 1);
    let ten_years = 10 * 365 * 86_400_000;
    let now = 1_000_000;
    let backoff = |until_ms| {
        Command::Backoff(command::Backoff {
            key: "api".into(),
            until_ms,
            now_ms: now,
        })
    };
    assert_eq!(log.step(backoff(now + ten_years)), CommandResult::Done);
    assert_eq!(
        log.state.rate_limits["api"].backoff_until_ms,
        now + MAX_RETRY_AFTER_MS
    );
    log.step(backoff(now + 5));
    assert_eq!(
        log.state.rate_limits["api"].backoff_until_ms,
        now + MAX_RETRY_AFTER_MS,
        "a shorter back-off does not shorten a longer one"
    );
    assert_eq!(log.step(backoff(u64::MAX)), CommandResult::Done);
}

#[test]
fn a_worker_has_between_one_and_the_maximum_slots() {
    let mut log = Log::new();
    let register = |slots| {
        Command::RegisterWorker(command::RegisterWorker {
            id: "w".into(),
            addr: String::new(),
            slots,
            now_ms: 0,
            max_workers: 0,
        })
    };
    assert!(rejected(&log.step(register(u32::MAX))).contains("MAX_WORKER_SLOTS"));
    rejected(&log.step(register(0)));
    assert!(log.state.workers.is_empty());
    assert_eq!(log.step(register(8)), CommandResult::Done);
    assert_eq!(log.state.workers["w"].slots, 8);
}

#[test]
fn commands_read_back_from_the_log_format_of_earlier_versions() {
    // Struct variants of earlier versions, as JSON in existing logs and snapshots: the
    // newtype payloads must read them, with a missing worker as "unchecked".
    let old = r#"{"Checkpoint":{"run_id":1,"shard":0,"fence":7,"checkpoint":"{}","pages":1,"records":2}}"#;
    let cmd: Command = serde_json::from_str(old).unwrap();
    let Command::Checkpoint(c) = &cmd else {
        panic!("{cmd:?}")
    };
    assert_eq!((c.fence, c.worker.as_str()), (7, ""));
    let back = serde_json::to_string(&Command::CancelRun(command::CancelRun {
        run_id: 3,
        now_ms: 4,
    }))
    .unwrap();
    assert_eq!(back, r#"{"CancelRun":{"run_id":3,"now_ms":4}}"#);
}

#[test]
fn pipelines_named_alike_in_two_namespaces_coexist() {
    let mut log = Log::new();
    let run_a = log.pipeline("p", "s", 1, 1);
    let other = command::PutPipeline {
        namespace: "b".into(),
        spec_yaml: "another spec".into(),
        start_run: Some(vec![ShardDef {
            index: 0,
            key: "k0".into(),
            vars: BTreeMap::new(),
        }]),
        now_ms: 2,
        ..command::PutPipeline::for_test("p")
    };
    let run_b = match log.step(Command::PutPipeline(other)) {
        CommandResult::PipelineStored {
            created: true,
            run_id: Some(id),
            ..
        } => id,
        other => panic!("b/p not created: {other:?}"),
    };
    assert_eq!(log.state.pipelines["default/p"].spec_yaml, "spec of p");
    assert_eq!(log.state.pipelines["b/p"].spec_yaml, "another spec");
    assert_eq!(log.state.runs[&run_b].namespace, "b");
    // A bare name (a command written before namespaces) means `default`.
    let r = log.step(Command::DeletePipeline(command::DeletePipeline {
        name: "p".into(),
        now_ms: 3,
    }));
    assert!(matches!(
        r,
        CommandResult::PipelineDeleted { runs_cancelled: 1 }
    ));
    assert!(!log.state.pipelines.contains_key("default/p"));
    assert_eq!(log.state.runs[&run_a].state, RunState::Cancelled);
    assert_eq!(log.state.runs[&run_b].state, RunState::Pending);
    // Runs start by key; the other namespace's pipeline is untouched.
    let r = log.step(Command::StartRun(command::StartRun {
        pipeline: "b/p".into(),
        shards: vec![],
        trace: None,
        now_ms: 4,
        failed: None,
    }));
    assert!(matches!(r, CommandResult::RunStarted { .. }), "{r:?}");
    let r = log.step(Command::StartRun(command::StartRun {
        pipeline: "default/p".into(),
        shards: vec![],
        trace: None,
        now_ms: 4,
        failed: None,
    }));
    assert!(rejected(&r).contains("pipeline default/p not found"));
}

#[test]
fn a_rate_limit_key_belongs_to_the_namespace_that_created_it() {
    let mut log = Log::new();
    log.pipeline("p", "s", 1, 1);
    let other = command::PutPipeline {
        namespace: "b".into(),
        rate_limit: Some(("api".into(), 1.0, 1)),
        ..command::PutPipeline::for_test("q")
    };
    assert!(matches!(
        log.step(Command::PutPipeline(other)),
        CommandResult::PipelineStored { .. }
    ));
    // Namespace b's pipeline shares the upstream's budget but cannot change it.
    assert_eq!(log.state.rate_limits["api"].rps, 10.0);
    assert_eq!(
        log.state.rate_limits["api"].owner.as_deref(),
        Some("default")
    );
}

#[test]
fn a_run_keeps_the_secrets_it_started_with() {
    let mut log = Log::new();
    let run = log.pipeline("p", "first", 1, 1);
    log.step(Command::DeletePipeline(command::DeletePipeline {
        name: "p".into(),
        now_ms: 3,
    }));
    log.pipeline("p", "second", 1, 1);
    assert_eq!(log.state.runs[&run].secrets["TOKEN"], "first");
    assert_eq!(log.state.pipelines["default/p"].secrets["TOKEN"], "second");
}

#[test]
fn quotas_cap_pipelines_per_namespace_workers_and_rate_limit_keys() {
    let mut log = Log::new();
    let put = |name: &str, key: &str| {
        Command::PutPipeline(command::PutPipeline {
            rate_limit: Some((key.into(), 1.0, 1)),
            quota: command::Quota {
                pipelines_per_namespace: 2,
                rate_limit_keys: 2,
                rate_limit_keys_per_namespace: 0,
            },
            ..command::PutPipeline::for_test(name)
        })
    };
    assert!(matches!(
        log.step(put("a", "k1")),
        CommandResult::PipelineStored { .. }
    ));
    assert!(matches!(
        log.step(put("b", "k2")),
        CommandResult::PipelineStored { .. }
    ));
    assert!(rejected(&log.step(put("c", "k1"))).contains("--max-pipelines-per-namespace"));
    // Updating an existing pipeline is not a new one; a third key is over its cap.
    assert!(matches!(
        log.step(put("a", "k1")),
        CommandResult::PipelineStored { .. }
    ));
    assert!(rejected(&log.step(put("a", "k3"))).contains("--max-rate-limit-keys"));
    assert_eq!(log.state.pipelines.len(), 2);

    let register = |id: &str| {
        Command::RegisterWorker(command::RegisterWorker {
            id: id.into(),
            addr: String::new(),
            slots: 1,
            now_ms: 0,
            max_workers: 1,
        })
    };
    assert_eq!(log.step(register("w1")), CommandResult::Done);
    assert_eq!(
        log.step(register("w1")),
        CommandResult::Done,
        "re-registering"
    );
    assert!(rejected(&log.step(register("w2"))).contains("--max-workers"));

    // Keys per namespace: b's pipelines may create one; a's keys do not count for b.
    let in_b = |name: &str, key: &str| {
        Command::PutPipeline(command::PutPipeline {
            namespace: "b".into(),
            rate_limit: Some((key.into(), 1.0, 1)),
            quota: command::Quota {
                rate_limit_keys_per_namespace: 1,
                ..Default::default()
            },
            ..command::PutPipeline::for_test(name)
        })
    };
    assert!(matches!(
        log.step(in_b("x", "b1")),
        CommandResult::PipelineStored { .. }
    ));
    assert!(
        matches!(
            log.step(in_b("y", "k1")),
            CommandResult::PipelineStored { .. }
        ),
        "another namespace's key is used, not created"
    );
    assert!(rejected(&log.step(in_b("z", "b2"))).contains("--max-rate-limit-keys-per-namespace"));
}

#[test]
fn a_back_off_can_be_cleared_and_a_key_deleted() {
    let mut log = Log::new();
    log.pipeline("p", "s", 1, 1);
    log.step(Command::Backoff(command::Backoff {
        key: "api".into(),
        until_ms: 5_000,
        now_ms: 1_000,
    }));
    let drop = |backoff_only| {
        Command::DeleteRateLimit(command::DeleteRateLimit {
            key: "api".into(),
            backoff_only,
        })
    };
    assert_eq!(log.step(drop(true)), CommandResult::Done);
    assert_eq!(log.state.rate_limits["api"].backoff_until_ms, 0);
    assert_eq!(log.step(drop(false)), CommandResult::Done);
    assert!(log.state.rate_limits.is_empty());
    assert!(rejected(&log.step(drop(false))).contains("no rate limit"));
}

#[test]
fn tokens_name_real_namespaces_and_not_too_many() {
    let mut log = Log::new();
    let create = |id: &str, namespaces: Vec<String>| {
        Command::CreateToken(command::CreateToken {
            token: crate::state::access::TokenRecord {
                id: id.into(),
                name: "t".into(),
                role: crate::state::access::Role::Operator,
                namespaces,
                hash: String::new(),
                created_at_ms: 0,
                created_by: String::new(),
                expires_at_ms: None,
            },
        })
    };
    for bad in ["Ünïcode", "", "a/b", &"x".repeat(64)] {
        let r = log.step(create("bad", vec![bad.to_string()]));
        assert!(
            rejected(&r).contains("not a namespace name"),
            "{bad:?}: {r:?}"
        );
    }
    let many: Vec<String> = (0..65).map(|i| format!("ns{i}")).collect();
    assert!(rejected(&log.step(create("many", many))).contains("MAX_TOKEN_NAMESPACES"));
    rejected(&log.step(create("none", vec![])));
    assert!(log.state.tokens.is_empty());
    let ok = log.step(create("ok", vec!["a".into(), "*".into()]));
    assert_eq!(ok, CommandResult::Done);
}
