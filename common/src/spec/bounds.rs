//! Checks of a typed spec against [`Limits`]: lengths of strings, sizes of maps and the
//! number of shards. Document size is checked on the text before it is parsed, YAML nodes,
//! scalar text and nesting by the parser's budget ([`super::guard`]); durations while they
//! are parsed ([`super::duration`]).

use super::parse::Problem;
use super::types::Pipeline;
use crate::limits::{
    check_bytes, check_count, LimitError, Limits, MAX_BODY_BYTES_CEILING, MAX_RETRY_AFTER_CEILING,
    MAX_TABLE_COLUMNS_CEILING,
};
use crate::shard::{self, ExpandError};

const HTTP: &str = "spec.source.http";
const PAG: &str = "spec.source.http.pagination";

impl Problem {
    fn limit(path: impl Into<String>, e: LimitError) -> Self {
        Problem::new(path, e.message()).hint(e.fix)
    }
}

pub(crate) fn bounds(p: &Pipeline, limits: &Limits, out: &mut Vec<Problem>) {
    let mut push = |path: String, r: Result<(), LimitError>| {
        if let Err(e) = r {
            out.push(Problem::limit(path, e));
        }
    };
    let value = |path: &str, text: &str| {
        let fix = "shorten the value; long data belongs in the API, not in the spec";
        (
            path.to_string(),
            check_bytes(
                "max_value_bytes",
                "the value",
                text.len(),
                limits.max_value_bytes,
                fix,
            ),
        )
    };
    let h = &p.spec.source.http;
    push(
        format!("{HTTP}.url"),
        check_bytes(
            "max_url_bytes",
            "the URL",
            h.url.len(),
            limits.max_url_bytes,
            "shorten the URL; put long parameters in spec.source.http.query",
        ),
    );
    push(
        format!("{HTTP}.headers"),
        check_count(
            "max_headers",
            "headers",
            h.headers.len(),
            limits.max_headers,
            "send fewer headers",
        ),
    );
    push(
        format!("{HTTP}.query"),
        check_count(
            "max_query_params",
            "query parameters",
            h.query.len(),
            limits.max_query_params,
            "send fewer query parameters",
        ),
    );
    let mut values: Vec<(String, &str)> = Vec::new();
    for (k, v) in &h.headers {
        values.push((format!("{HTTP}.headers.{k}"), v.as_str()));
    }
    for (k, v) in &h.query {
        values.push((format!("{HTTP}.query.{k}"), v.as_str()));
    }
    if let Some(r) = &h.records {
        values.push((format!("{HTTP}.records"), r.as_str()));
    }
    let pg = &h.pagination;
    for (key, path) in pg.paths() {
        if let Some(path) = path {
            values.push((format!("{PAG}.{key}"), path.as_str()));
        }
    }
    if let Some(cron) = p.spec.schedule.as_ref().and_then(|s| s.cron.as_ref()) {
        values.push(("spec.schedule.cron".into(), cron.as_str()));
    }
    if let Some(s) = &p.spec.shards {
        for v in s.values.iter().flatten() {
            values.push(("spec.shards.values".into(), v.as_str()));
        }
    }
    for (path, text) in values {
        let (path, r) = value(&path, text);
        push(path, r);
    }
    if let Some(t) = &p.spec.transform {
        push(
            "spec.transform.sql".into(),
            check_bytes(
                "max_sql_bytes",
                "the SQL",
                t.sql.len(),
                limits.max_sql_bytes,
                "shorten the query; move logic into views of the warehouse",
            ),
        );
    }
    upstream_knobs(p, out);
    if let Some(s) = &p.spec.shards {
        match shard::check_count(s, limits.max_shards) {
            Ok(_) => {}
            Err(ExpandError::TooMany { path, error }) => out.push(Problem::limit(path, error)),
            // Bad window bounds are reported by the shard checks of validate.
            Err(ExpandError::Invalid { .. }) => {}
        }
    }
}

/// The per-pipeline upstream limits must be usable values below their ceilings.
fn upstream_knobs(p: &Pipeline, out: &mut Vec<Problem>) {
    let retry_after = p.spec.source.http.retry.max_retry_after;
    if retry_after > MAX_RETRY_AFTER_CEILING {
        out.push(
            Problem::new(
                format!("{HTTP}.retry.max_retry_after"),
                format!(
                    "{}s is above the ceiling of {}s, the cluster's own clamp on Retry-After",
                    retry_after.as_secs(),
                    MAX_RETRY_AFTER_CEILING.as_secs()
                ),
            )
            .hint("leave it out for the ceiling, or choose a smaller value such as 10m"),
        );
    }
    let mut range = |path: String, value: Option<u64>, max: u64, unit: &str| match value {
        Some(0) => {
            out.push(Problem::new(path, "must be at least 1").hint("leave it out for the default"))
        }
        Some(v) if v > max => out.push(
            Problem::new(
                path,
                format!("{v} {unit} is above the ceiling of {max} {unit}"),
            )
            .hint("leave it out for the default, or choose a smaller value"),
        ),
        _ => {}
    };
    range(
        format!("{HTTP}.max_body_bytes"),
        p.spec.source.http.max_body_bytes,
        MAX_BODY_BYTES_CEILING,
        "bytes",
    );
    let budget = &p.spec.source.http.limits;
    for (key, value, unit) in [
        ("max_pages", budget.max_pages, "pages"),
        ("max_records", budget.max_records, "records"),
        ("max_bytes", budget.max_bytes, "bytes"),
    ] {
        range(format!("{HTTP}.limits.{key}"), value, u64::MAX, unit);
    }
    let s = &p.spec.sink;
    let sink = match (&s.postgres, &s.sqlite, &s.mysql) {
        (Some(s), _, _) => Some(("postgres", s.max_columns, s.max_new_columns)),
        (None, Some(s), _) => Some(("sqlite", s.max_columns, s.max_new_columns)),
        (None, None, Some(s)) => Some(("mysql", s.max_columns, s.max_new_columns)),
        _ => None,
    };
    if let Some((kind, max_columns, max_new)) = sink {
        let ceiling = MAX_TABLE_COLUMNS_CEILING as u64;
        range(
            format!("spec.sink.{kind}.max_columns"),
            max_columns.map(|v| v as u64),
            ceiling,
            "columns",
        );
        // 0 is a policy, not a mistake: no new columns once the table exists.
        range(
            format!("spec.sink.{kind}.max_new_columns"),
            max_new.filter(|v| *v > 0).map(|v| v as u64),
            ceiling,
            "columns",
        );
    }
}
