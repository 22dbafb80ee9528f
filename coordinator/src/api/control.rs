//! `ControlService`: what apitapctl talks to. Writes are Raft commands on the leader;
//! reads are linearizable (served by the leader after `ensure_linearizable`).

use std::collections::BTreeMap;
use std::sync::Arc;

use apitap_common::{spec, trace_context};
use apitap_proto::v1::control_service_server::ControlService;
use apitap_proto::v1::*;
use tonic::{Request, Response, Status};

use super::convert::run_info;
use super::{audited, membership, views};
use crate::auth::Caller;
use crate::error::Error;
use crate::node::Node;
use crate::spans::{self, Trigger};
use crate::state::access::AuditRecord;
use crate::state::command::{self, Command, CommandResult};
use crate::state::model::{namespace_or_default, pipeline_key};

pub struct ControlApi {
    pub node: Arc<Node>,
}

type Reply<T> = Result<Response<T>, Status>;

fn rejected(r: CommandResult) -> Status {
    match r {
        CommandResult::Rejected { reason } if reason.contains("not found") => {
            Status::not_found(reason)
        }
        CommandResult::Rejected { reason } => Status::failed_precondition(reason),
        other => Status::internal(format!("unexpected result {other:?}")),
    }
}

fn sink_summary(s: &spec::Sink) -> String {
    if let Some(pg) = &s.postgres {
        format!("postgres:{}", pg.table)
    } else if let Some(my) = &s.mysql {
        format!("mysql:{}", my.table)
    } else if let Some(sq) = &s.sqlite {
        format!("sqlite:{}:{}", sq.path, sq.table)
    } else {
        String::new()
    }
}

/// The URL without query string, so that listings never show secrets.
fn url_summary(url: &str) -> String {
    url.split('?').next().unwrap_or_default().to_string()
}

/// An audit outcome for a membership change.
fn outcome<T>(r: &std::result::Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("rejected: {e}"),
    }
}

/// The namespace (empty: `default`) and state key of the pipeline a request names. Both
/// parts must be DNS labels, as at submit: a request then cannot spell another namespace's
/// key, and a huge or hostile name is refused before it reaches a log line or, through the
/// audit record of a delete, the Raft log.
fn requested_pipeline<'a>(namespace: &'a str, name: &str) -> Result<(&'a str, String), Status> {
    let namespace = namespace_or_default(namespace);
    for (what, value) in [("namespace", namespace), ("pipeline name", name)] {
        if !spec::is_dns_label(value) {
            let shown: String = value.chars().take(64).collect();
            return Err(Status::invalid_argument(format!(
                "{what} {shown:?} is not a valid name: 1 to 63 lowercase letters, digits and \
                 `-`, starting and ending with a letter or digit"
            )));
        }
    }
    Ok((namespace, pipeline_key(namespace, name)))
}

impl ControlApi {
    /// `plain` as the state keeps it: the values already stored when they are the same (a
    /// fresh seal would differ and bump the version), sealed under the current key if not.
    fn stored_secrets(
        &self,
        namespace: &str,
        name: &str,
        plain: BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let key = pipeline_key(namespace, name);
        let st = self.node.state();
        if let Some(p) = st.state.pipelines.get(&key) {
            let opened = self.node.secrets.open_pipeline(namespace, name, &p.secrets);
            if opened.ok() == Some(plain.clone()) {
                return p.secrets.clone();
            }
        }
        self.node.secrets.seal_all(&key, &plain)
    }

    fn namespace_of_run(&self, run_id: u64) -> String {
        let st = self.node.state();
        st.state
            .runs
            .get(&run_id)
            .map_or("default", |r| st.state.namespace_of_run(r))
            .to_string()
    }

    /// Records a membership change (not a state command) in the audit trail, in the
    /// background: while a membership change cannot commit, neither can its record, and the
    /// caller must still get its answer. A record that cannot be committed is logged.
    async fn record_membership(
        &self,
        caller: &Caller,
        action: &str,
        object: String,
        outcome: &str,
    ) {
        let cmd = Command::RecordAudit(command::RecordAudit {
            record: AuditRecord {
                seq: 0,
                at_ms: apitap_common::time::now_ms(),
                actor: caller.describe(),
                action: action.into(),
                object: object.clone(),
                outcome: outcome.into(),
            },
        });
        tracing::info!(target: "apitap::audit", actor = %caller.describe(), %action, %object, %outcome, "audit");
        let node = self.node.clone();
        let action = action.to_string();
        tokio::spawn(async move {
            if let Err(e) = node.propose(cmd).await {
                tracing::warn!(error = %e, %action, "membership change not recorded in the audit trail");
            }
        });
    }

    /// Deletes a rate-limit key, or ends its back-off; answers with the key as it was
    /// before (deleted) or is now (back-off cleared).
    async fn drop_limit(
        &self,
        req: Request<RateLimitKeyRequest>,
        backoff_only: bool,
    ) -> Reply<RateLimitInfo> {
        let caller = Caller::of(&req);
        let key = req.into_inner().key;
        let before = self
            .rate_limits()
            .await?
            .into_iter()
            .find(|l| l.key == key)
            .ok_or_else(|| Error::NotFound(format!("rate limit {key}")))?;
        let cmd = Command::DeleteRateLimit(command::DeleteRateLimit {
            key: key.clone(),
            backoff_only,
        });
        match self.node.propose(audited(&caller, cmd)).await? {
            CommandResult::Done if backoff_only => self
                .rate_limits()
                .await?
                .into_iter()
                .find(|l| l.key == key)
                .map(Response::new)
                .ok_or_else(|| Status::internal("limit vanished")),
            CommandResult::Done => Ok(Response::new(before)),
            other => Err(rejected(other)),
        }
    }

    /// Cancels or retries the run `req` names, if the caller may change its namespace
    /// (`action` names what is refused otherwise): `cmd` makes the command from the run id
    /// and the time.
    async fn change_run(
        &self,
        req: Request<GetRunRequest>,
        action: &str,
        cmd: impl FnOnce(u64, u64) -> Command,
    ) -> Reply<RunInfo> {
        let caller = Caller::of(&req);
        let run_id = req.into_inner().run_id;
        caller.check_namespace(&self.namespace_of_run(run_id), action)?;
        let cmd = cmd(run_id, apitap_common::time::now_ms());
        self.run_command(run_id, audited(&caller, cmd)).await
    }

    /// Proposes a command about one run and answers with the run afterwards.
    async fn run_command(&self, run_id: u64, cmd: Command) -> Reply<RunInfo> {
        match self.node.propose(cmd).await? {
            CommandResult::Done => self.run_reply(run_id),
            other => Err(rejected(other)),
        }
    }

    /// The caller and the request of a read, once this node may answer it (linearizable:
    /// the leader, after confirming it still leads).
    async fn read<R>(&self, req: Request<R>) -> Result<(Caller, R), Status> {
        let caller = Caller::of(&req);
        self.node.linearizable().await?;
        Ok((caller, req.into_inner()))
    }

    /// The run as it is now, after a command about it committed.
    fn run_reply(&self, run_id: u64) -> Reply<RunInfo> {
        let st = self.node.state();
        let run = st
            .state
            .runs
            .get(&run_id)
            .ok_or_else(|| Status::internal("run vanished"))?;
        Ok(Response::new(run_info(run, &st.state)))
    }

    async fn rate_limits(&self) -> Result<Vec<RateLimitInfo>, Status> {
        self.node.linearizable().await?;
        Ok(views::rate_limits(&self.node))
    }

    /// The status after a membership change, with what the change did.
    async fn changed(&self, change: String) -> Reply<ClusterStatusResponse> {
        let mut status = self.status().await?;
        status.change = change;
        Ok(Response::new(status))
    }

    async fn status(&self) -> Result<ClusterStatusResponse, Status> {
        Ok(views::cluster_status(&self.node, views::Digest::Compute))
    }
}

#[tonic::async_trait]
impl ControlService for ControlApi {
    async fn submit_pipeline(
        &self,
        req: Request<SubmitPipelineRequest>,
    ) -> Reply<SubmitPipelineResponse> {
        let caller = Caller::of(&req);
        let req = req.into_inner();
        let file = if req.file.is_empty() {
            "pipeline.yaml"
        } else {
            &req.file
        };
        let provided: BTreeMap<String, String> = req.secrets.clone().into_iter().collect();
        // Validate again: the coordinator never trusts the client's check.
        let pipeline = spec::load(file, &req.spec_yaml, Some(&provided))
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let namespace = pipeline.metadata.namespace.clone();
        caller.check_namespace(&namespace, "submit pipelines")?;
        let secrets = self.stored_secrets(
            &namespace,
            pipeline.name(),
            spec::secrets::collect(&pipeline, &provided),
        );
        let start_run = (req.start_run && pipeline.spec.schedule.is_none())
            .then(|| apitap_common::shard::expand(&pipeline.spec))
            .transpose()
            .map_err(|e| Error::InvalidInput(format!("{file}: {e}")))?;
        let span = match start_run {
            Some(_) => spans::start_run(pipeline.name(), Trigger::Submit),
            None => tracing::Span::none(),
        };
        let cmd = Command::PutPipeline(command::PutPipeline {
            name: pipeline.name().to_string(),
            namespace,
            spec_yaml: req.spec_yaml.clone(),
            secrets,
            every_ms: pipeline
                .spec
                .schedule
                .as_ref()
                .and_then(|s| s.every)
                .map(|d| d.as_millis() as u64),
            cron: pipeline.spec.schedule.as_ref().and_then(|s| s.cron.clone()),
            max_attempts: pipeline.spec.policy.max_attempts,
            source_url: url_summary(&pipeline.spec.source.http.url),
            sink: sink_summary(&pipeline.spec.sink),
            initial_watermark: pipeline
                .spec
                .incremental
                .as_ref()
                .map(|i| i.initial.clone()),
            watermark_basis: pipeline
                .spec
                .incremental
                .as_ref()
                .map(|i| i.basis(&pipeline.spec.source.http.url)),
            rate_limit: pipeline
                .spec
                .rate_limit
                .as_ref()
                .map(|r| (r.key.clone(), r.requests_per_second, r.burst)),
            start_run,
            trace: trace_context::traceparent(&span),
            now_ms: apitap_common::time::now_ms(),
            quota: command::Quota {
                pipelines_per_namespace: self.node.config.max_pipelines_per_namespace,
                rate_limit_keys: self.node.config.max_rate_limit_keys,
                rate_limit_keys_per_namespace: self.node.config.max_rate_limit_keys_per_namespace,
            },
        });
        match self
            .node
            .propose_traced(audited(&caller, cmd), &span)
            .await?
        {
            CommandResult::PipelineStored {
                version,
                created,
                run_id,
            } => Ok(Response::new(SubmitPipelineResponse {
                name: pipeline.name().to_string(),
                namespace: pipeline.metadata.namespace.clone(),
                version,
                run_id: run_id.unwrap_or(0),
                created,
            })),
            other => Err(rejected(other)),
        }
    }

    async fn list_pipelines(
        &self,
        req: Request<ListPipelinesRequest>,
    ) -> Reply<ListPipelinesResponse> {
        let (caller, req) = self.read(req).await?;
        let pipelines = views::pipelines(&self.node, &caller, &req.namespace, usize::MAX);
        Ok(Response::new(ListPipelinesResponse { pipelines }))
    }

    async fn get_pipeline(&self, req: Request<GetPipelineRequest>) -> Reply<PipelineInfo> {
        let (caller, req) = self.read(req).await?;
        let (_, key) = requested_pipeline(&req.namespace, &req.name)?;
        views::pipeline(&self.node, &caller, &key)
            .map(Response::new)
            .ok_or_else(|| Error::NotFound(format!("pipeline {key}")).into())
    }

    async fn delete_pipeline(
        &self,
        req: Request<DeletePipelineRequest>,
    ) -> Reply<DeletePipelineResponse> {
        let caller = Caller::of(&req);
        let req = req.into_inner();
        let (namespace, key) = requested_pipeline(&req.namespace, &req.name)?;
        caller.check_namespace(namespace, "delete pipelines")?;
        let cmd = Command::DeletePipeline(command::DeletePipeline {
            name: key,
            now_ms: apitap_common::time::now_ms(),
        });
        match self.node.propose(audited(&caller, cmd)).await? {
            CommandResult::PipelineDeleted { runs_cancelled } => {
                Ok(Response::new(DeletePipelineResponse {
                    deleted: true,
                    runs_cancelled,
                }))
            }
            other => Err(rejected(other)),
        }
    }

    async fn start_run(&self, req: Request<StartRunRequest>) -> Reply<RunInfo> {
        let caller = Caller::of(&req);
        let req = req.into_inner();
        let (namespace, key) = requested_pipeline(&req.namespace, &req.pipeline)?;
        caller.check_namespace(namespace, "start runs")?;
        let name = req.pipeline.clone();
        let spec_yaml = {
            let st = self.node.state();
            st.state
                .pipelines
                .get(&key)
                .map(|p| p.spec_yaml.clone())
                .ok_or_else(|| Error::NotFound(format!("pipeline {key}")))?
        };
        let pipeline =
            spec::load(&name, &spec_yaml, None).map_err(|e| Error::InvalidInput(e.to_string()))?;
        let shards = apitap_common::shard::expand(&pipeline.spec)
            .map_err(|e| Error::InvalidInput(format!("{name}: {e}")))?;
        let span = spans::start_run(&name, Trigger::Run);
        let cmd = Command::StartRun(command::StartRun {
            pipeline: key,
            shards,
            trace: trace_context::traceparent(&span),
            now_ms: apitap_common::time::now_ms(),
            failed: None,
        });
        match self
            .node
            .propose_traced(audited(&caller, cmd), &span)
            .await?
        {
            CommandResult::RunStarted { run_id } => self.run_reply(run_id),
            other => Err(rejected(other)),
        }
    }

    async fn list_runs(&self, req: Request<ListRunsRequest>) -> Reply<ListRunsResponse> {
        let (caller, req) = self.read(req).await?;
        let filter = views::RunFilter {
            pipeline: &req.pipeline,
            namespace: &req.namespace,
            limit: if req.limit == 0 {
                50
            } else {
                req.limit as usize
            },
        };
        let runs = views::runs(&self.node, &caller, &filter);
        Ok(Response::new(ListRunsResponse { runs }))
    }

    async fn get_run(&self, req: Request<GetRunRequest>) -> Reply<RunInfo> {
        let (caller, req) = self.read(req).await?;
        let id = req.run_id;
        views::run(&self.node, &caller, id)
            .map(Response::new)
            .ok_or_else(|| Error::NotFound(format!("run {id}")).into())
    }

    async fn cancel_run(&self, req: Request<GetRunRequest>) -> Reply<RunInfo> {
        self.change_run(req, "cancel runs", |run_id, now_ms| {
            Command::CancelRun(command::CancelRun { run_id, now_ms })
        })
        .await
    }

    async fn retry_run(&self, req: Request<GetRunRequest>) -> Reply<RunInfo> {
        self.change_run(req, "retry runs", |run_id, now_ms| {
            Command::RetryRun(command::RetryRun { run_id, now_ms })
        })
        .await
    }

    async fn set_rate_limit(&self, req: Request<SetRateLimitRequest>) -> Reply<RateLimitInfo> {
        let caller = Caller::of(&req);
        let req = req.into_inner();
        if req.key.trim().is_empty() {
            return Err(Status::invalid_argument(
                "the rate-limit key is empty; usually it is the API host",
            ));
        }
        if !(req.rps > 0.0 && req.rps.is_finite()) {
            return Err(Status::invalid_argument("--rps must be a positive number"));
        }
        let cmd = Command::SetRateLimit(command::SetRateLimit {
            key: req.key.clone(),
            rps: req.rps,
            burst: req.burst.max(1),
        });
        self.node.propose(audited(&caller, cmd)).await?;
        let limits = self.rate_limits().await?;
        limits
            .into_iter()
            .find(|l| l.key == req.key)
            .map(Response::new)
            .ok_or_else(|| Status::internal("limit vanished"))
    }

    async fn delete_rate_limit(&self, req: Request<RateLimitKeyRequest>) -> Reply<RateLimitInfo> {
        self.drop_limit(req, false).await
    }

    async fn clear_backoff(&self, req: Request<RateLimitKeyRequest>) -> Reply<RateLimitInfo> {
        self.drop_limit(req, true).await
    }

    async fn list_rate_limits(
        &self,
        _: Request<ListRateLimitsRequest>,
    ) -> Reply<ListRateLimitsResponse> {
        Ok(Response::new(ListRateLimitsResponse {
            limits: self.rate_limits().await?,
        }))
    }

    async fn cluster_status(
        &self,
        _: Request<ClusterStatusRequest>,
    ) -> Reply<ClusterStatusResponse> {
        Ok(Response::new(self.status().await?))
    }

    async fn cluster_init(&self, req: Request<ClusterInitRequest>) -> Reply<ClusterStatusResponse> {
        let caller = Caller::of(&req);
        let change = membership::init(&self.node).await?;
        let data_dir = &self.node.config.data_dir;
        let token = crate::auth::bootstrap::first_admin_token(&self.node, data_dir)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        drop(token);
        self.record_membership(
            &caller,
            "cluster-init",
            format!("node {}", self.node.id),
            "ok",
        )
        .await;
        self.changed(format!(
            "{change}; the first admin token is in {} on node {} (readable by its owner only)",
            crate::auth::bootstrap::token_path(data_dir).display(),
            self.node.id
        ))
        .await
    }

    async fn cluster_add(&self, req: Request<ClusterAddRequest>) -> Reply<ClusterStatusResponse> {
        let caller = Caller::of(&req);
        let req = req.into_inner();
        let object = format!("node {} at {}", req.node_id, req.addr);
        let result = membership::add(&self.node, req.node_id, &req.addr, req.learner_only).await;
        self.record_membership(&caller, "cluster-add", object.clone(), &outcome(&result))
            .await;
        self.changed(format!("{object}: {}", result?)).await
    }

    async fn cluster_remove(
        &self,
        req: Request<ClusterRemoveRequest>,
    ) -> Reply<ClusterStatusResponse> {
        let caller = Caller::of(&req);
        let id = req.into_inner().node_id;
        let result = membership::remove(&self.node, id).await;
        self.record_membership(
            &caller,
            "cluster-remove",
            format!("node {id}"),
            &outcome(&result),
        )
        .await;
        self.changed(format!("node {id}: {}", result?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::requested_pipeline;

    #[test]
    fn a_requested_pipeline_is_two_dns_labels() {
        assert_eq!(
            requested_pipeline("", "orders").expect("default"),
            ("default", "default/orders".to_string())
        );
        assert_eq!(requested_pipeline("b", "orders").expect("b").1, "b/orders");
        for (ns, name) in [
            ("a", "x/y"),
            ("a/b", "c"),
            ("a", ""),
            ("A", "x"),
            ("a", "é"),
        ] {
            let e = requested_pipeline(ns, name).expect_err("refused");
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{ns:?} {name:?}");
        }
        let huge = "x".repeat(1 << 20);
        let e = requested_pipeline("a", &huge).expect_err("huge");
        assert!(
            e.message().len() < 300,
            "the refusal does not echo the value"
        );
    }
}
