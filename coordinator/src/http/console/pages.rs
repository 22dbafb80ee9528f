//! The console's list pages: cluster, workers, pipelines, runs and rate limits. Each takes
//! the views the JSON API returns, so the page and `/api` always agree.

use apitap_proto::v1::{ClusterStatusResponse, RateLimitInfo, RunInfo, WorkerInfo};
use maud::{html, Markup};

use super::chart::rate_chart;
use super::layout::{ago, state_class, time};
use crate::history::RateSeries;
use crate::http::model::PipelineView;

pub fn cluster(c: &ClusterStatusResponse) -> Markup {
    html! {
        dl.facts {
            dt { "This node" } dd { (c.node_id) " (" (c.role) ")" }
            dt { "Leader" } dd #leader {
                @if c.leader_id == 0 { "none known" } @else { "node " (c.leader_id) " at " (c.leader_addr) }
            }
            dt { "Term" } dd #term { (c.term) }
            dt { "Applied index" } dd #applied { (c.applied_index) }
            dt { "Last log index" } dd { (c.last_log_index) }
            dt { "Snapshot index" } dd { (c.snapshot_index) }
            dt { "Pipelines" } dd { (c.pipelines) }
            dt { "Workers" } dd { (c.workers.len()) }
        }
        h2 { "Recent elections" }
        @if c.elections.is_empty() { p { "None observed since this node started." } } @else {
            div.table { table #elections {
                thead { tr { th { "Term" } th { "Leader" } th { "Seen" } } }
                tbody { @for e in &c.elections {
                    tr data-term=(e.term) {
                        td.num { (e.term) }
                        td.leader { @if e.leader_id == 0 { "none" } @else { "node " (e.leader_id) } }
                        td { (time(e.at_ms)) }
                    }
                } }
            } }
        }
        h2 { "Members" }
        div.table { table {
            thead { tr { th { "Node" } th { "Address" } th { "Role" } th { "Voter" } th { "Reachable" } th { "Matched index" } } }
            tbody { @for m in &c.members {
                tr {
                    td { (m.node_id) } td { (m.addr) } td { (m.role) }
                    td { @if m.voter { "yes" } @else { "no" } }
                    td { @if m.reachable { "yes" } @else { span.bad { "no" } } }
                    td.num { (m.matched_index) }
                }
            } }
        } }
    }
}

pub fn workers(workers: &[WorkerInfo], leader: bool) -> Markup {
    html! {
        @if !leader { p.stale { "Heartbeats and liveness are the leader's: open the leader's console for them." } }
        @if workers.is_empty() { p { "No workers registered." } } @else {
            div.table { table {
                thead { tr { th { "Worker" } th { "Address" } th { "Slots" } th { "Leases" } th { "Live" } th { "Draining" } th { "Last heartbeat" } } }
                tbody { @for w in workers {
                    tr data-worker=(w.worker_id) data-draining=(w.draining) {
                        td { (w.worker_id) } td { (w.addr) } td.num { (w.slots) } td.num { (w.leases) }
                        td { @if w.live { span.ok { "live" } } @else { span.bad { "silent" } } }
                        td.draining { @if w.draining { span.off { "draining" } } @else { "no" } }
                        td { @if w.live || w.last_heartbeat_ms_ago > 0 { (ago(w.last_heartbeat_ms_ago)) " ago" } @else { "-" } }
                    }
                } }
            } }
        }
    }
}

pub fn pipelines(list: &[PipelineView], can_act: bool) -> Markup {
    html! {
        @if list.is_empty() { p { "No pipelines; submit one with " code { "apitapctl submit FILE" } "." } } @else {
            div.table { table {
                thead { tr {
                    th { "Pipeline" } th { "Version" } th { "Schedule" } th { "Next run" }
                    th { "Last run" } th { "Sink" } @if can_act { th {} }
                } }
                tbody { @for p in list {
                    @let i = &p.info;
                    tr data-pipeline=(format!("{}/{}", i.namespace, i.name)) {
                        td { (i.namespace) "/" (i.name) }
                        td.num { (i.version) }
                        td { (i.schedule) }
                        td { @match p.next_run_ms { None => "-", Some(0) => "now", Some(ms) => (time(ms)) } }
                        td { @if i.last_run_id == 0 { "-" } @else {
                            a href=(format!("/console/runs/{}", i.last_run_id)) { "#" (i.last_run_id) }
                            " " span class=(state_class(&i.last_run_state)) { (i.last_run_state) }
                        } }
                        td { (i.sink) }
                        @if can_act { td {
                            form.inline.run-now method="post" action=(format!("/console/pipelines/{}/{}/run", i.namespace, i.name)) {
                                button type="submit" { "Run now" }
                            }
                        } }
                    }
                } }
            } }
        }
    }
}

pub fn runs(list: &[RunInfo]) -> Markup {
    html! {
        @if list.is_empty() { p { "No runs yet." } } @else {
            div.table { table {
                thead { tr { th { "Run" } th { "Pipeline" } th { "State" } th { "Shards" } th { "Records" } th { "Started" } th { "Finished" } } }
                tbody { @for r in list {
                    tr data-run=(r.run_id) {
                        td { a href=(format!("/console/runs/{}", r.run_id)) { "#" (r.run_id) } }
                        td { (r.namespace) "/" (r.pipeline) }
                        td { span class=(state_class(&r.state)) { (r.state) } }
                        td.num { (r.shards.len()) }
                        td.num { (r.shards.iter().map(|s| s.records).sum::<u64>()) }
                        td { (time(r.created_at_ms)) }
                        td { (time(r.finished_at_ms)) }
                    }
                } }
            } }
        }
    }
}

pub fn rate_limits(
    limits: &[RateLimitInfo],
    history: &[RateSeries],
    now_ms: u64,
    leader: bool,
) -> Markup {
    html! {
        @if limits.is_empty() { p { "No rate-limit keys." } } @else {
            div.table { table {
                thead { tr { th { "Key" } th { "Rate (rps)" } th { "Burst" } th { "Granted (rps)" } th { "Used last second" } th { "Workers" } th { "Back-off" } } }
                tbody { @for l in limits {
                    tr {
                        td { (l.key) } td.num { (l.rps) } td.num { (l.burst) } td.num { (format!("{:.1}", l.granted_rps)) }
                        td.num { (l.used_last_second) } td.num { (l.workers) }
                        td { @if l.backoff_until_ms > now_ms { span.bad { "until " (time(l.backoff_until_ms)) } } @else { "-" } }
                    }
                } }
            } }
            h2 { "Granted and used" }
            @if !leader {
                p.stale { "Rate use is the leader's: open the leader's console for its history." }
            } @else if history.is_empty() {
                p { "No samples yet: the leader samples every key every few seconds." }
            } @else {
                @for series in history { (rate_chart(series, now_ms)) }
                @if history.len() < limits.len() {
                    p { small { "Charts of the first " (history.len()) " keys by name (" code { "--history-rate-keys" } ")." } }
                }
            }
        }
    }
}
