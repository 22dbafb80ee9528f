//! The JSON API: reads of the cluster, its workers, pipelines, runs and rate limits, and the
//! run actions. Each route names the `ControlService` RPC whose role it needs, and every
//! served route is listed in [`SERVED`], which the OpenAPI test holds to the document.

use actix_web::{web, HttpResponse};
use apitap_common::spec;
use apitap_proto::v1::{PipelineInfo, RunInfo};
use tonic::Status;

use super::actions::{cancel, retry, run_now};
use super::context::Ctx;
use super::events::run_events;
use super::model::*;
use super::reply::ErrorBody;
use super::Settings;
use crate::api::views::{self, RunFilter};
use crate::auth::Caller;
use crate::node::Node;
use crate::state::model::{namespace_or_default, pipeline_key};

/// Runs a listing returns when the request gives no `limit`.
pub const DEFAULT_LIST: u32 = 50;

/// Declares the routes once: mounted by `configure`, listed in `SERVED`.
macro_rules! routes {
    ($(($method:ident, $path:literal, $handler:path)),* $(,)?) => {
        /// (method, path) of every route of the JSON API, as mounted.
        pub const SERVED: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        /// Mounts the JSON API.
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::$method().to($handler));)*
        }
    };
}

routes! {
    (get, "/api/cluster", cluster),
    (get, "/api/workers", workers),
    (get, "/api/pipelines", pipelines),
    (get, "/api/pipelines/{namespace}/{name}", pipeline),
    (get, "/api/runs", runs),
    (get, "/api/runs/{id}", run),
    (get, "/api/runs/{id}/events", run_events),
    (get, "/api/ratelimits", rate_limits),
    (post, "/api/pipelines/{namespace}/{name}/run", run_now),
    (post, "/api/runs/{id}/cancel", cancel),
    (post, "/api/runs/{id}/retry", retry),
}

/// A `namespace/name` from a path, both DNS labels as at submit.
pub fn pipeline_key_of(namespace: &str, name: &str) -> Result<String, Status> {
    for (what, value) in [("namespace", namespace), ("pipeline name", name)] {
        if !spec::is_dns_label(value) {
            let shown: String = value.chars().take(64).collect();
            return Err(Status::invalid_argument(format!(
                "{what} {shown:?} is not a valid name: 1 to 63 lowercase letters, digits and `-`"
            )));
        }
    }
    Ok(pipeline_key(namespace_or_default(namespace), name))
}

/// The pipeline with its next scheduled start, and its spec with any secret value that
/// appears in it as written replaced by `***` (a spec names its secrets as `${VAR}`; this
/// keeps a value pasted into it as well out of the answer).
pub fn pipeline_view(node: &Node, mut info: PipelineInfo) -> PipelineView {
    let st = node.state();
    let record = st
        .state
        .pipelines
        .get(&pipeline_key(&info.namespace, &info.name));
    let next_run_ms = record.and_then(|p| crate::scheduler::plan::next_run_ms(&st.state, p));
    if let Some(p) = record.filter(|p| !p.secrets.is_empty()) {
        let values = node
            .secrets
            .open_pipeline(&p.namespace, &p.name, &p.secrets)
            .unwrap_or_else(|_| p.secrets.clone());
        info.spec_yaml = spec::secrets::redact(&info.spec_yaml, values.values());
    }
    PipelineView { info, next_run_ms }
}

/// Run `id` as `caller` sees it, or 404 (also for another namespace's run).
pub fn run_of(node: &Node, caller: &Caller, id: u64) -> Result<RunInfo, Status> {
    views::run(node, caller, id).ok_or_else(|| Status::not_found(format!("run {id} not found")))
}

/// The `limit` of a listing, or why it is refused.
pub fn list_limit(limit: Option<u32>, settings: &Settings) -> Result<usize, Status> {
    match limit.unwrap_or(DEFAULT_LIST) {
        0 => Err(Status::invalid_argument("limit must be at least 1")),
        n if n > settings.max_list => Err(Status::invalid_argument(format!(
            "limit {n} is over the most one listing returns ({}, --http-max-list); page with \
             ?pipeline= or ?namespace=",
            settings.max_list
        ))),
        n => Ok(n as usize),
    }
}

/// The cluster: Raft members, leader, term, applied index, and the workers.
/// `state_digest` is left empty (hashing the whole state is for `apitapctl cluster status`).
#[utoipa::path(get, path = "/api/cluster", tag = "read",
    responses((status = 200, body = ClusterReply), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cluster(cx: Ctx) -> HttpResponse {
    cx.read("ClusterStatus", |_| {
        Ok(ClusterReply {
            fresh: Freshness::of(&cx.node),
            cluster: views::cluster_status(&cx.node, views::Digest::Skip),
        })
    })
}

/// The workers: slots, leases held, liveness and last heartbeat (the leader's view).
#[utoipa::path(get, path = "/api/workers", tag = "read",
    responses((status = 200, body = WorkersReply), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn workers(cx: Ctx) -> HttpResponse {
    cx.read("ClusterStatus", |_| {
        Ok(WorkersReply {
            fresh: Freshness::of(&cx.node),
            workers: views::workers(&cx.node),
        })
    })
}

/// The pipelines the token covers, with schedule, last run and next scheduled start.
#[utoipa::path(get, path = "/api/pipelines", tag = "read", params(PipelinesQuery),
    responses((status = 200, body = PipelinesReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pipelines(cx: Ctx, q: web::Query<PipelinesQuery>) -> HttpResponse {
    cx.read("ListPipelines", |caller| {
        let ns = q.namespace.as_deref().unwrap_or_default();
        let list = views::pipelines(&cx.node, caller, ns, list_limit(q.limit, &cx.settings)?);
        Ok(PipelinesReply {
            fresh: Freshness::of(&cx.node),
            pipelines: list
                .into_iter()
                .map(|p| pipeline_view(&cx.node, p))
                .collect(),
        })
    })
}

/// One pipeline, its spec included (secret values are never in it: the spec names them).
#[utoipa::path(get, path = "/api/pipelines/{namespace}/{name}", tag = "read",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = PipelineReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn pipeline(cx: Ctx, path: web::Path<(String, String)>) -> HttpResponse {
    cx.read("GetPipeline", |caller| {
        let key = pipeline_key_of(&path.0, &path.1)?;
        let info = views::pipeline(&cx.node, caller, &key)
            .ok_or_else(|| Status::not_found(format!("pipeline {key} not found")))?;
        Ok(PipelineReply {
            fresh: Freshness::of(&cx.node),
            pipeline: pipeline_view(&cx.node, info),
        })
    })
}

/// The newest runs, with their shards.
#[utoipa::path(get, path = "/api/runs", tag = "read", params(RunsQuery),
    responses((status = 200, body = RunsReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn runs(cx: Ctx, q: web::Query<RunsQuery>) -> HttpResponse {
    cx.read("ListRuns", |caller| {
        let filter = RunFilter {
            pipeline: q.pipeline.as_deref().unwrap_or_default(),
            namespace: q.namespace.as_deref().unwrap_or_default(),
            limit: list_limit(q.limit, &cx.settings)?,
        };
        Ok(RunsReply {
            fresh: Freshness::of(&cx.node),
            runs: views::runs(&cx.node, caller, &filter),
        })
    })
}

/// One run: state, error, dead letters, and each shard's state, worker, fence, pages,
/// records, dead letters and the circuit breaker it waits on.
#[utoipa::path(get, path = "/api/runs/{id}", tag = "read", params(("id" = u64, Path)),
    responses((status = 200, body = RunReply), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn run(cx: Ctx, id: web::Path<u64>) -> HttpResponse {
    cx.read("GetRun", |caller| {
        Ok(RunReply {
            fresh: Freshness::of(&cx.node),
            run: run_of(&cx.node, caller, *id)?,
        })
    })
}

/// The rate-limit keys with their budgets and back-offs (usage as the leader counts it),
/// and each key's granted and used rate over the last ten minutes (the leader's samples).
#[utoipa::path(get, path = "/api/ratelimits", tag = "read",
    responses((status = 200, body = RateLimitsReply), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rate_limits(cx: Ctx) -> HttpResponse {
    cx.read("ListRateLimits", |_| {
        Ok(RateLimitsReply {
            fresh: Freshness::of(&cx.node),
            limits: views::rate_limits(&cx.node),
            history: cx.node.history.rates.series(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::{list_limit, pipeline_key_of, DEFAULT_LIST};
    use crate::http::Settings;

    #[test]
    fn a_listing_limit_has_a_default_and_a_bound() {
        let s = Settings {
            mode: crate::auth::Mode::Insecure,
            max_list: 100,
        };
        assert_eq!(list_limit(None, &s).unwrap(), DEFAULT_LIST as usize);
        assert_eq!(list_limit(Some(100), &s).unwrap(), 100);
        let e = list_limit(Some(101), &s).unwrap_err();
        assert!(e.message().contains("--http-max-list"), "{e:?}");
        assert!(list_limit(Some(0), &s).is_err());
    }

    #[test]
    fn pipeline_names_in_paths_are_dns_labels() {
        assert_eq!(pipeline_key_of("shop", "orders").unwrap(), "shop/orders");
        let huge = "x".repeat(10_000);
        for (ns, name) in [("shop", "Orders"), ("a/b", "c"), ("shop", huge.as_str())] {
            let e = pipeline_key_of(ns, name).unwrap_err();
            assert!(
                e.message().len() < 300,
                "the refusal does not echo a huge name"
            );
        }
    }
}
