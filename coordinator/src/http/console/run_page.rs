//! The run page: the run's state and a progress bar per shard, its dead letters and the
//! circuit breakers its shards wait on, kept live by `assets/console.js` from the run's
//! event stream (`/api/runs/{id}/events`, polling `/api/runs/{id}` where it is refused).

use apitap_proto::v1::RunInfo;
use maud::{html, Markup};

use apitap_proto::v1::BreakerInfo;

use super::layout::{state_class, time};

const TERMINAL_RUN: &[&str] = &["succeeded", "failed", "cancelled"];
const TERMINAL_SHARD: &[&str] = &["succeeded", "failed", "cancelled"];

pub fn run(r: &RunInfo, can_act: bool) -> Markup {
    let terminal = TERMINAL_RUN.contains(&r.state.as_str());
    let done = r
        .shards
        .iter()
        .filter(|s| TERMINAL_SHARD.contains(&s.state.as_str()))
        .count();
    let total = r.shards.len();
    let records: u64 = r.shards.iter().map(|s| s.records).sum();
    html! {
        section data-run-id=(r.run_id) data-terminal=(if terminal { "true" } else { "false" }) {
            dl.facts {
                dt { "Pipeline" } dd { (r.namespace) "/" (r.pipeline) " (version " (r.pipeline_version) ")" }
                dt { "State" } dd { span #run-state class=(state_class(&r.state)) { (r.state) } }
                dt { "Shards done" } dd { span #run-done { (done) " of " (total) } }
                dt { "Progress" } dd { progress #run-progress max="1" value=(if total == 0 { 1.0 } else { done as f64 / total as f64 }) {} }
                dt { "Records" } dd { span #run-records { (records) } }
                dt { "Dead letters" } dd { span #run-dead-letters { (r.dead_letters) } }
                dt { "Started" } dd { (time(r.created_at_ms)) }
                dt { "Finished" } dd { (time(r.finished_at_ms)) }
                @if !r.error.is_empty() { dt { "Error" } dd.error { (r.error) } }
            }
            @if can_act {
                p {
                    @if !terminal {
                        form.inline.cancel method="post" action=(format!("/console/runs/{}/cancel", r.run_id)) {
                            button.danger type="submit" { "Cancel run" }
                        }
                    } @else {
                        form.inline.run-now method="post" action=(format!("/console/pipelines/{}/{}/run", r.namespace, r.pipeline)) {
                            button type="submit" { "Run pipeline again" }
                        }
                        @if r.state == "failed" || r.state == "cancelled" {
                            " "
                            form.inline.retry method="post" action=(format!("/console/runs/{}/retry", r.run_id)) {
                                button type="submit" { "Retry its failed and cancelled shards" }
                            }
                        }
                    }
                }
            }
            h2 { "Shards" }
            div.table { table {
                thead { tr { th { "Shard" } th { "Progress" } th { "State" } th { "Worker" } th { "Fence" } th { "Pages" } th { "Records" } th { "Dead letters" } th { "Attempts" } th { "Waiting on" } th { "Error" } } }
                tbody { @for s in &r.shards {
                    @let over = TERMINAL_SHARD.contains(&s.state.as_str());
                    tr data-shard=(s.index) {
                        td { (s.index) @if !s.key.is_empty() { " " small { (s.key) } } }
                        // No total is known before a shard ends: a bar without a value is
                        // the browser's "under way" bar.
                        td { @if over { progress max="1" value="1" {} } @else { progress max="1" {} } }
                        td { span class={"state " (state_class(&s.state))} { (s.state) } }
                        td.worker { @if s.worker.is_empty() { "-" } @else { (s.worker) } }
                        td.num.fence { (s.fence) }
                        td.num.pages { (s.pages) }
                        td.num.records { (s.records) }
                        td.num.dead-letters { (s.dead_letters) }
                        td.num { (s.attempts) }
                        td.breaker { (breaker(s.breaker.as_ref())) }
                        td.error { (s.error) }
                    }
                } }
            } }
            @let dead: Vec<_> = r.shards.iter().flat_map(|s| s.dead_letter_sample.iter().map(move |d| (s.index, d))).collect();
            @if !dead.is_empty() {
                h2 { "Dead letters" }
                p { small { "The newest few of each shard; the sink's " code { "apitap_dead_letters" } " table keeps them all." } }
                div.table { table #dead-letters {
                    thead { tr { th { "Shard" } th { "Page" } th { "Error" } th { "Record" } } }
                    tbody { @for (shard, d) in dead {
                        tr { td.num { (shard) } td.num { (d.page) } td.error { (d.error) } td { code { (d.record) } } }
                    } }
                } }
            }
        }
    }
}

/// What a shard waits on: the open circuit breaker of its upstream host, or nothing. The
/// script writes the same text (see `breakerText` in `assets/console.js`).
pub fn breaker(b: Option<&BreakerInfo>) -> String {
    match b {
        None => "-".into(),
        Some(b) if b.until_ms == 0 => format!("breaker {} {} (probing)", b.host, b.state),
        Some(b) => format!("breaker {} {} until {}", b.host, b.state, time(b.until_ms)),
    }
}
