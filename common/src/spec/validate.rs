//! Checks that need more than types: consistency between keys, URLs, SQL, identifiers,
//! secrets and template variables. Returns every problem, not just the first.

use std::collections::{BTreeMap, BTreeSet};

use std::ops::ControlFlow;

use sqlparser::ast::{Ident, ObjectName, Query, Statement, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::bounds::bounds;
use super::header_values::header_values;
use super::parse::Problem;
use super::secrets;
use super::template;
use super::types::*;
use crate::cron::Cron;
use crate::jsonpath::JsonPath;
use crate::limits::Limits;

const HTTP: &str = "spec.source.http";
const PAG: &str = "spec.source.http.pagination";

pub(crate) fn validate(
    p: &Pipeline,
    env: Option<&BTreeMap<String, String>>,
    limits: &Limits,
) -> Vec<Problem> {
    let mut out = Vec::new();
    bounds(p, limits, &mut out);
    if p.api_version != API_VERSION {
        out.push(
            Problem::new(
                "apiVersion",
                format!("unsupported apiVersion {:?}", p.api_version),
            )
            .hint(format!("use apiVersion: {API_VERSION}")),
        );
    }
    if p.kind != KIND {
        out.push(
            Problem::new("kind", format!("unsupported kind {:?}", p.kind))
                .hint(format!("use kind: {KIND}")),
        );
    }
    if !is_dns_label(&p.metadata.name) {
        out.push(
            Problem::new("metadata.name", format!("invalid pipeline name {:?}", p.metadata.name))
                .hint("use 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit"),
        );
    }
    if !is_dns_label(&p.metadata.namespace) {
        out.push(Problem::new(
            "metadata.namespace",
            format!("invalid namespace {:?}", p.metadata.namespace),
        ));
    }
    schedule(p, &mut out);
    source(p, env, limits, &mut out);
    super::connector_rules::circuit_breaker(&p.spec.source.http.circuit_breaker, &mut out);
    super::connector_rules::conditional(p, &mut out);
    header_values(p, &mut out);
    pagination(&p.spec.source.http.pagination, &mut out);
    shards(p, &mut out);
    templates(p, &mut out);
    if let Some(rl) = &p.spec.rate_limit {
        if !(rl.requests_per_second > 0.0 && rl.requests_per_second.is_finite()) {
            out.push(
                Problem::new(
                    "spec.rate_limit.requests_per_second",
                    "must be a positive number",
                )
                .hint("for example requests_per_second: 20"),
            );
        }
        if rl.burst == 0 {
            out.push(Problem::new("spec.rate_limit.burst", "must be at least 1"));
        }
        if rl.key.trim().is_empty() {
            out.push(
                Problem::new("spec.rate_limit.key", "must not be empty")
                    .hint("usually the API host"),
            );
        }
    }
    if let Some(inc) = &p.spec.incremental {
        if inc.cursor_field.trim().is_empty() {
            out.push(
                Problem::new("spec.incremental.cursor_field", "must not be empty").hint(
                    "the record field that grows with new data, e.g. cursor_field: updated_at",
                ),
            );
        }
    }
    schema(p, &mut out);
    if let Some(t) = &p.spec.transform {
        if let Err(e) = check_sql(&t.sql) {
            out.push(Problem::new("spec.transform.sql", e).hint(
                "write one SELECT over the table `source`, e.g. SELECT id, name FROM source",
            ));
        }
    }
    sink(p, &mut out);
    super::batch::validate(&p.spec.batch, &mut out);
    if p.spec.policy.max_attempts == 0 || p.spec.policy.max_attempts > 100 {
        out.push(Problem::new(
            "spec.policy.max_attempts",
            "must be between 1 and 100",
        ));
    }
    secrets_present(p, env, &mut out);
    out
}

/// A name valid as `metadata.name` / `metadata.namespace`: a DNS label.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

fn schedule(p: &Pipeline, out: &mut Vec<Problem>) {
    let Some(s) = &p.spec.schedule else { return };
    match (&s.every, &s.cron) {
        (Some(_), Some(_)) => out.push(
            Problem::new("spec.schedule", "both `every` and `cron` are set")
                .hint("keep one of them"),
        ),
        (None, None) => out.push(
            Problem::new("spec.schedule", "a schedule needs `every` or `cron`").hint(
                "for example schedule: { every: 15m }, or remove spec.schedule to run on submit",
            ),
        ),
        (Some(d), None) if d.as_millis() < 1000 => {
            out.push(Problem::new("spec.schedule.every", "must be at least 1s"))
        }
        (None, Some(c)) => match Cron::parse(c) {
            Err(e) => out.push(
                Problem::new("spec.schedule.cron", e)
                    .hint("minute hour day-of-month month day-of-week in UTC, with names (MON-FRI, JAN) or a shortcut (@daily); e.g. cron: \"0 */6 * * *\""),
            ),
            Ok(cron) if !cron.ever_fires() => out.push(
                Problem::new(
                    "spec.schedule.cron",
                    format!("{c:?} never fires: none of the months it allows has a day of month it names"),
                )
                .hint("check the day-of-month and month fields (February has at most 29 days; April, June, September and November 30)"),
            ),
            Ok(_) => {}
        },
        _ => {}
    }
}

/// `text` with secrets taken from `env` where known and placeholders elsewhere; None when an
/// unknown secret decides the URL's shape (it starts the URL).
pub(super) fn probe_url(text: &str, env: Option<&BTreeMap<String, String>>) -> Option<String> {
    let empty = BTreeMap::new();
    let env = env.unwrap_or(&empty);
    if let Some(after) = text.strip_prefix("${") {
        let name = after.split('}').next().unwrap_or_default();
        if !env.contains_key(name) {
            return None;
        }
    }
    let mut probe = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("${") {
        probe.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find('}').unwrap_or(after.len());
        probe.push_str(env.get(&after[..close]).map(String::as_str).unwrap_or("x"));
        rest = after.get(close + 1..).unwrap_or_default();
    }
    probe.push_str(rest);
    Some(probe.replace("{{", "x").replace("}}", "x"))
}

fn source(
    p: &Pipeline,
    env: Option<&BTreeMap<String, String>>,
    limits: &Limits,
    out: &mut Vec<Problem>,
) {
    let h = &p.spec.source.http;
    // Secrets and template variables are only known later; placeholders stand in for them.
    // A URL that a secret of unknown value starts is not checked; the rest of the source is.
    if let Some(probe) = probe_url(&h.url, env) {
        url_rules(h, &probe, out);
    }
    if let Some(r) = &h.records {
        if let Err(e) = JsonPath::parse(r) {
            out.push(Problem::new(format!("{HTTP}.records"), e));
        }
    }
    if let Some(a) = &h.auth {
        let set = [
            a.bearer.is_some(),
            a.basic.is_some(),
            a.api_key.is_some(),
            a.oauth2.is_some(),
        ];
        exactly_one(
            &set,
            &format!("{HTTP}.auth"),
            "auth methods are",
            "use one of bearer, basic, api_key or oauth2",
            out,
        );
        if let Some(o) = &a.oauth2 {
            let probe = probe_url(&o.token_url, env);
            super::connector_rules::oauth2(o, probe, limits, out);
        }
        if let Some(k) = &a.api_key {
            if k.name.trim().is_empty() {
                out.push(Problem::new(
                    format!("{HTTP}.auth.api_key.name"),
                    "must not be empty",
                ));
            }
        }
    }
    for name in h.headers.keys() {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            out.push(Problem::new(
                format!("{HTTP}.headers"),
                format!("invalid header name {name:?}"),
            ));
        }
    }
    let r = &h.retry;
    if r.max_attempts == 0 || r.max_attempts > 100 {
        out.push(Problem::new(
            format!("{HTTP}.retry.max_attempts"),
            "must be between 1 and 100",
        ));
    }
    if r.initial_backoff > r.max_backoff {
        out.push(Problem::new(
            format!("{HTTP}.retry.initial_backoff"),
            "is larger than max_backoff",
        ));
    }
    if h.timeout.is_zero() {
        out.push(Problem::new(
            format!("{HTTP}.timeout"),
            "must be more than 0s",
        ));
    }
}

/// `url`, with `probe` standing for its unknown parts.
fn url_rules(h: &HttpSource, probe: &str, out: &mut Vec<Problem>) {
    match url::Url::parse(probe) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
            if u.host_str().is_none_or(str::is_empty) {
                out.push(Problem::new(format!("{HTTP}.url"), "the URL has no host"));
            }
        }
        Ok(u) => out.push(
            Problem::new(
                format!("{HTTP}.url"),
                format!("unsupported URL scheme {:?}", u.scheme()),
            )
            .hint("use http:// or https://"),
        ),
        Err(url::ParseError::RelativeUrlWithoutBase) => out.push(
            Problem::new(
                format!("{HTTP}.url"),
                format!("the URL {:?} has no scheme", h.url),
            )
            .hint(format!(
                "write it in full, starting with https:// or http://: https://{}",
                h.url.trim_start_matches('/')
            )),
        ),
        Err(e) => out.push(
            Problem::new(
                format!("{HTTP}.url"),
                format!("invalid URL {:?}: {e}", h.url),
            )
            .hint("write a full URL such as https://api.example.com/v1/items"),
        ),
    }
}

fn pagination(pg: &Pagination, out: &mut Vec<Problem>) {
    let kind = pg.kind.as_str();
    let mut not_for = |key: &str, set: bool| {
        if set {
            out.push(
                Problem::new(
                    format!("{PAG}.{key}"),
                    format!("`{key}` does not apply to pagination kind {kind}"),
                )
                .hint("remove it, or change `kind`"),
            );
        }
    };
    use PaginationKind::*;
    // Each key and the kinds it applies to. `next_url` and `link_header` send no size, but
    // one tells what a full page is.
    let applies: [(&str, bool, &[PaginationKind]); 14] = [
        (
            "size",
            pg.size.is_some(),
            &[LimitOffset, PageNumber, Cursor, NextUrl, LinkHeader],
        ),
        ("limit_param", pg.limit_param.is_some(), &[LimitOffset]),
        ("offset_param", pg.offset_param.is_some(), &[LimitOffset]),
        ("page_param", pg.page_param.is_some(), &[PageNumber]),
        ("start_page", pg.start_page.is_some(), &[PageNumber]),
        ("size_param", pg.size_param.is_some(), &[PageNumber, Cursor]),
        ("cursor_param", pg.cursor_param.is_some(), &[Cursor]),
        ("cursor_path", pg.cursor_path.is_some(), &[Cursor]),
        ("cursor_field", pg.cursor_field.is_some(), &[Cursor]),
        (
            "stop_on",
            pg.stop_on != StopOn::Auto,
            &[Cursor, NextUrl, LinkHeader],
        ),
        ("has_more_path", pg.has_more_path.is_some(), &[Cursor]),
        ("next_url_path", pg.next_url_path.is_some(), &[NextUrl]),
        (
            "total_path",
            pg.total_path.is_some(),
            &[LimitOffset, PageNumber],
        ),
        (
            "max_pages",
            pg.max_pages.is_some(),
            &[LimitOffset, PageNumber, Cursor, NextUrl, LinkHeader],
        ),
    ];
    for (key, set, kinds) in applies {
        not_for(key, set && !kinds.contains(&pg.kind));
    }
    if pg.size == Some(0) {
        out.push(Problem::new(
            format!("{PAG}.size"),
            "page size must be at least 1",
        ));
    }
    if pg.max_pages == Some(0) {
        out.push(Problem::new(
            format!("{PAG}.max_pages"),
            "must be at least 1",
        ));
    }
    if pg.kind == LimitOffset && pg.limit_param() == pg.offset_param() {
        out.push(
            Problem::new(
                format!("{PAG}.offset_param"),
                format!(
                    "limit_param and offset_param are the same query parameter {:?}",
                    pg.offset_param()
                ),
            )
            .hint("give them different names (by default limit and offset)"),
        );
    }
    if pg.kind == PageNumber && pg.page_param() == pg.size_param() {
        out.push(
            Problem::new(
                format!("{PAG}.size_param"),
                format!(
                    "page_param and size_param are the same query parameter {:?}",
                    pg.size_param()
                ),
            )
            .hint("give them different names (by default page and per_page)"),
        );
    }
    if pg.kind == Cursor && pg.cursor_path.is_none() && pg.cursor_field.is_none() {
        out.push(
            Problem::new(PAG, "pagination kind cursor needs `cursor_path` or `cursor_field`").hint(
                "the JSON path of the next cursor in the response (cursor_path: $.next_cursor), or the field of the last record that is the next cursor (cursor_field: id)",
            ),
        );
    }
    if pg.cursor_path.is_some() && pg.cursor_field.is_some() {
        out.push(
            Problem::new(
                format!("{PAG}.cursor_field"),
                "give `cursor_path` or `cursor_field`, not both",
            )
            .hint("cursor_field reads the last record; cursor_path reads anywhere in the response"),
        );
    }
    if pg
        .cursor_field
        .as_deref()
        .is_some_and(|f| f.trim().is_empty())
    {
        out.push(Problem::new(
            format!("{PAG}.cursor_field"),
            "the field name is empty",
        ));
    }
    if pg.kind == NextUrl && pg.next_url_path.is_none() {
        out.push(
            Problem::new(PAG, "pagination kind next_url needs `next_url_path`")
                .hint("the JSON path of the next page's URL, e.g. next_url_path: $.next"),
        );
    }
    for (key, path) in pg.paths() {
        if let Some(path) = path {
            if let Err(e) = JsonPath::parse(path) {
                out.push(Problem::new(format!("{PAG}.{key}"), e));
            }
        }
    }
}

fn shards(p: &Pipeline, out: &mut Vec<Problem>) {
    let Some(s) = &p.spec.shards else { return };
    if !is_identifier(&s.param) {
        out.push(Problem::new(
            "spec.shards.param",
            format!("{:?} is not a valid variable name", s.param),
        ));
    }
    let set = [s.values.is_some(), s.range.is_some(), s.window.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if set != 1 {
        out.push(
            Problem::new("spec.shards", "set exactly one of `values`, `range` and `window`")
                .hint("values: [a, b]  or  range: { start: 1, end: 1000, count: 4 }  or  window: { start: 2026-01-01T00:00:00Z, end: 2026-02-01T00:00:00Z, step: 1d }"),
        );
        return;
    }
    if let Some(values) = &s.values {
        if values.is_empty() {
            out.push(Problem::new("spec.shards.values", "the list is empty"));
        }
        let unique: BTreeSet<_> = values.iter().collect();
        if unique.len() != values.len() {
            out.push(Problem::new(
                "spec.shards.values",
                "values repeat; each shard needs its own value",
            ));
        }
    }
    if let Some(r) = &s.range {
        if r.start > r.end {
            out.push(Problem::new("spec.shards.range", "start is after end"));
        } else if r.count == 0 || (r.count as i128) > (r.end as i128 - r.start as i128 + 1) {
            out.push(Problem::new(
                "spec.shards.range.count",
                "count must be between 1 and the size of the range",
            ));
        }
    }
    if let Some(w) = &s.window {
        match (
            crate::timestamp::parse(&w.start),
            crate::timestamp::parse(&w.end),
        ) {
            (Err(e), _) => out.push(Problem::new("spec.shards.window.start", e)),
            (_, Err(e)) => out.push(Problem::new("spec.shards.window.end", e)),
            (Ok(a), Ok(b)) if a >= b => out.push(Problem::new(
                "spec.shards.window",
                "start is not before end",
            )),
            // How many windows the step makes is checked against max_shards by `bounds`.
            (Ok(_), Ok(_)) if w.step.as_secs() == 0 => out.push(Problem::new(
                "spec.shards.window.step",
                "must be at least 1s",
            )),
            (Ok(_), Ok(_)) => {}
        }
    }
}

/// Template variables the spec may use.
fn known_vars(p: &Pipeline) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    if let Some(s) = &p.spec.shards {
        vars.insert(s.param.clone());
        vars.insert("shard.value".into());
        if s.range.is_some() || s.window.is_some() {
            vars.insert("shard.start".into());
            vars.insert("shard.end".into());
        }
    }
    vars.insert("shard.index".into());
    if p.spec.incremental.is_some() {
        vars.insert("watermark".into());
    }
    vars
}

fn templates(p: &Pipeline, out: &mut Vec<Problem>) {
    let known = known_vars(p);
    let h = &p.spec.source.http;
    let mut check = |path: String, text: &str| match template::variables(text) {
        Ok(vars) => {
            for v in vars.into_iter().filter(|v| !known.contains(v)) {
                let list: Vec<_> = known.iter().cloned().collect();
                let more = if p.spec.shards.is_none() {
                    "; spec.shards binds more ({{ shard.value }} and its `param`)"
                } else {
                    ""
                };
                out.push(
                    Problem::new(
                        path.clone(),
                        format!("unknown template variable {{{{ {v} }}}}"),
                    )
                    .hint(format!("known here: {}{more}", list.join(", "))),
                );
            }
        }
        Err(e) => out.push(Problem::new(path.clone(), e)),
    };
    check(format!("{HTTP}.url"), &h.url);
    for (k, v) in &h.query {
        check(format!("{HTTP}.query.{k}"), v);
    }
    for (k, v) in &h.headers {
        check(format!("{HTTP}.headers.{k}"), v);
    }
}

fn schema(p: &Pipeline, out: &mut Vec<Problem>) {
    let Some(fields) = &p.spec.schema else { return };
    if fields.is_empty() {
        out.push(
            Problem::new("spec.schema", "the field list is empty")
                .hint("remove spec.schema to infer it"),
        );
    }
    let mut seen = BTreeSet::new();
    for f in fields {
        if f.name.is_empty() {
            out.push(Problem::new("spec.schema", "a field has an empty name"));
        } else if !seen.insert(f.name.clone()) {
            out.push(Problem::new(
                "spec.schema",
                format!("field {:?} is declared twice", f.name),
            ));
        }
    }
}

/// Parses `sql` and checks it is one query that reads only `source`.
pub fn check_sql(sql: &str) -> Result<(), String> {
    let statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| {
        let e = e.to_string();
        let e = e.strip_prefix("sql parser error: ").unwrap_or(&e);
        format!(
            "invalid SQL: {}",
            e.replace("found: EOF", "found the end of the query")
        )
    })?;
    let statement = match statements.as_slice() {
        [statement] => statement,
        [] => return Err("the SQL is empty".into()),
        _ => {
            return Err(format!(
                "expected one SQL statement, found {} (separated by `;`)",
                statements.len()
            ))
        }
    };
    if !matches!(statement, Statement::Query(_)) {
        let text = statement.to_string();
        let verb = text.split_whitespace().next().unwrap_or("other");
        return Err(format!(
            "the transform must be a SELECT query, found {}",
            verb.to_ascii_uppercase()
        ));
    }
    let mut tables = Tables::default();
    let _ = statement.visit(&mut tables);
    let others: Vec<_> = tables
        .read
        .iter()
        .filter(|(name, _)| name.as_str() != "source" && !tables.ctes.contains(*name))
        .map(|(_, shown)| shown.clone())
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "the query reads {}; only the table `source` (the fetched records) exists",
            others.join(", ")
        ));
    }
    Ok(())
}

/// Tables a query reads (normalized name → as written) and the names its `WITH` clauses
/// define, which are not tables.
#[derive(Default)]
struct Tables {
    read: BTreeMap<String, String>,
    ctes: BTreeSet<String>,
}

/// Identifiers as the worker's DataFusion sees them: it runs with identifier normalization
/// off (so camelCase columns work unquoted), which makes table names case-sensitive too.
fn normalized(ident: &Ident) -> String {
    ident.value.clone()
}

impl Visitor for Tables {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(normalized(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        let name = match relation.0.as_slice() {
            [part] => part
                .as_ident()
                .map(normalized)
                .unwrap_or_else(|| relation.to_string()),
            _ => relation.to_string(),
        };
        self.read.insert(name, relation.to_string());
        ControlFlow::Continue(())
    }
}

/// A problem at `path` unless exactly one of `set` is true ("2 {what} set; exactly one is
/// needed").
fn exactly_one(set: &[bool], path: &str, what: &str, hint: &str, out: &mut Vec<Problem>) {
    let count = set.iter().filter(|x| **x).count();
    if count != 1 {
        out.push(
            Problem::new(path, format!("{count} {what} set; exactly one is needed")).hint(hint),
        );
    }
}

fn sink(p: &Pipeline, out: &mut Vec<Problem>) {
    let s = &p.spec.sink;
    let set = [
        s.postgres.is_some(),
        s.sqlite.is_some(),
        s.mysql.is_some(),
        s.files.is_some(),
        s.rabbitmq.is_some(),
    ];
    exactly_one(
        &set,
        "spec.sink",
        "sinks are",
        "use `postgres: {url, table}`, `mysql: {url, table}`, `sqlite: {path, table}`, `files: {url, table}` or `rabbitmq: {url, routing_key}`",
        out,
    );
    fn table_rules(out: &mut Vec<Problem>, path: &str, table: &str, mode: LoadMode, pk: &[String]) {
        if !table.split('.').all(is_identifier) || table.split('.').count() > 2 {
            out.push(
                Problem::new(
                    format!("{path}.table"),
                    format!("invalid table name {table:?}"),
                )
                .hint("letters, digits and _, optionally schema-qualified (analytics.users)"),
            );
        }
        if mode == LoadMode::Merge && pk.is_empty() {
            out.push(
                Problem::new(
                    format!("{path}.primary_key"),
                    "mode merge needs a primary_key",
                )
                .hint("for example primary_key: [id]"),
            );
        }
        for k in pk {
            if !is_identifier(k) {
                out.push(Problem::new(
                    format!("{path}.primary_key"),
                    format!("invalid column name {k:?}"),
                ));
            }
        }
    }
    if let Some(pg) = &s.postgres {
        table_rules(
            out,
            "spec.sink.postgres",
            &pg.table,
            pg.mode,
            &pg.primary_key,
        );
        let probe = pg.url.replace("${", "x").replace('}', "x");
        let ok = pg.url.starts_with("${")
            || ((probe.starts_with("postgres://") || probe.starts_with("postgresql://"))
                && url::Url::parse(&probe).is_ok());
        if !ok {
            out.push(
                Problem::new("spec.sink.postgres.url", "not a PostgreSQL connection URL")
                    .hint("postgres://user:password@host:5432/database, usually from a secret: url: \"${WAREHOUSE_URL}\""),
            );
        }
    }
    if let Some(my) = &s.mysql {
        table_rules(out, "spec.sink.mysql", &my.table, my.mode, &my.primary_key);
        let probe = my.url.replace("${", "x").replace('}', "x");
        let ok = my.url.starts_with("${")
            || (probe.starts_with("mysql://") && url::Url::parse(&probe).is_ok());
        if !ok {
            out.push(
                Problem::new("spec.sink.mysql.url", "not a MySQL connection URL")
                    .hint("mysql://user:password@host:3306/database, usually from a secret: url: \"${WAREHOUSE_URL}\""),
            );
        }
    }
    if let Some(files) = &s.files {
        super::files::rules(files, out);
    }
    if let Some(rabbitmq) = &s.rabbitmq {
        super::rabbitmq::rules(rabbitmq, out);
    }
    if let Some(sq) = &s.sqlite {
        table_rules(out, "spec.sink.sqlite", &sq.table, sq.mode, &sq.primary_key);
        if sq.path.trim().is_empty() {
            out.push(Problem::new("spec.sink.sqlite.path", "must not be empty"));
        }
    }
}

fn secrets_present(p: &Pipeline, env: Option<&BTreeMap<String, String>>, out: &mut Vec<Problem>) {
    for (path, names) in secrets::referenced_vars(p) {
        let path = path.replace("api_version", "apiVersion");
        match names {
            Err(e) => out.push(
                Problem::new(path, e)
                    .hint("write a secret as ${NAME}, for example \"${API_TOKEN}\""),
            ),
            Ok(names) => {
                let Some(env) = env else { continue };
                for name in names.into_iter().filter(|n| !env.contains_key(n)) {
                    out.push(
                        Problem::new(
                            path.clone(),
                            format!("environment variable {name} is not set"),
                        )
                        .hint(format!("export {name}=... before apitapctl submit")),
                    );
                }
            }
        }
    }
}
