//! `ShardRunner`: one actor per held lease. It runs the shard loop on the tokio pool (so
//! DataFusion and the sink do not block actor threads) and tells whoever started it (the
//! `Agent`) of its progress and how it ended, through the messages defined here.

use actix::prelude::*;
use apitap_common::checkpoint::Checkpoint;
use apitap_common::error::ErrorClass;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::lease::LeaseWork;
use crate::shard_loop::{self, Outcome};
use crate::spans::lease_span;
use tracing::Instrument;

/// (run id, shard index).
pub type LeaseKey = (u64, u32);

/// A checkpoint was committed to the sink (sent to whoever started the runner).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Progress {
    pub key: LeaseKey,
    pub fence: u64,
    pub checkpoint: Checkpoint,
}

/// The runner's loop ended (sent to whoever started the runner).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunnerFinished {
    pub key: LeaseKey,
    pub fence: u64,
    pub outcome: Outcome,
}

/// Finish the current batch, then stop (drain).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAfterBatch;

/// Stop at once: the lease was revoked; an uncommitted batch is rolled back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Abort;

pub struct ShardRunner {
    work: Option<LeaseWork>,
    key: LeaseKey,
    fence: u64,
    http: reqwest::Client,
    progress: Recipient<Progress>,
    finished: Recipient<RunnerFinished>,
    stop: watch::Sender<bool>,
    task: Option<AbortHandle>,
}

impl ShardRunner {
    pub fn new(
        work: LeaseWork,
        http: reqwest::Client,
        progress: Recipient<Progress>,
        finished: Recipient<RunnerFinished>,
    ) -> Self {
        let (stop, _) = watch::channel(false);
        Self {
            key: (work.run_id, work.shard),
            fence: work.fence,
            work: Some(work),
            http,
            progress,
            finished,
            stop,
            task: None,
        }
    }
}

impl Actor for ShardRunner {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(work) = self.work.take() else { return };
        let to = self.progress.clone();
        let (key, fence) = (self.key, self.fence);
        let progress = move |cp: &Checkpoint| {
            to.do_send(Progress {
                key,
                fence,
                checkpoint: cp.clone(),
            })
        };
        let span = lease_span(&work);
        let handle = tokio::spawn(
            shard_loop::run(work, self.http.clone(), progress, self.stop.subscribe())
                .instrument(span),
        );
        self.task = Some(handle.abort_handle());
        ctx.spawn(handle.into_actor(self).map(|res, act, ctx| {
            let outcome = res.unwrap_or_else(|e| Outcome::Failed {
                error: format!("shard task ended abnormally: {e}"),
                class: ErrorClass::Internal,
                checkpoint: None,
                dead_letters: None,
            });
            act.task = None;
            act.finished.do_send(RunnerFinished {
                key: act.key,
                fence: act.fence,
                outcome,
            });
            ctx.stop();
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Handler<StopAfterBatch> for ShardRunner {
    type Result = ();
    fn handle(&mut self, _: StopAfterBatch, _: &mut Self::Context) {
        self.stop.send_replace(true);
    }
}

impl Handler<Abort> for ShardRunner {
    type Result = ();
    fn handle(&mut self, _: Abort, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
