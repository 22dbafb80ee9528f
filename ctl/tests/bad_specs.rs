//! Every file in `tests/bad_specs/` holds exactly one mistake. `apitapctl validate` and
//! `apitapctl submit` must both reject it locally (exit status 2, nothing sent to the
//! cluster) with a message that says what is wrong and on which line.
//!
//! The expectations live in [`BAD`]: file name, the line the error must point at (`None`
//! for files that have no lines to point at) and a substring of the message.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// (file in tests/bad_specs, expected line, expected part of the message)
const BAD: &[(&str, Option<usize>, &str)] = &[
    // Not a pipeline document at all.
    ("empty.yaml", None, "the file is empty"),
    ("only_comments.yaml", None, "the file holds only comments"),
    (
        "not_yaml.yaml",
        Some(7),
        "not valid YAML: did not find expected ',' or ']', while parsing a flow sequence that starts at line 6 column 11",
    ),
    (
        "yaml_list.yaml",
        Some(2),
        "the document is a list, not a mapping of keys to values",
    ),
    (
        "duplicate_key.yaml",
        Some(10),
        "the key `url` appears twice in spec.source.http",
    ),
    (
        "two_documents.yaml",
        Some(13),
        "the file holds more than one YAML document",
    ),
    (
        "tab_indentation.yaml",
        Some(9),
        "the line is indented with a tab",
    ),
    // Keys and types.
    (
        "unknown_key_top_level.yaml",
        Some(6),
        "unknown field `status`, expected one of `apiVersion`, `kind`, `metadata`, `spec`",
    ),
    (
        "unknown_key_nested.yaml",
        Some(10),
        "spec.source.http: unknown field `method`, expected one of `url`",
    ),
    (
        "missing_required_key.yaml",
        Some(4),
        "metadata: missing field `name`",
    ),
    (
        "wrong_type_string_for_number.yaml",
        Some(11),
        "spec.source.http.retry.max_attempts: invalid type: string \"five\", expected a whole number",
    ),
    (
        "wrong_type_list_for_map.yaml",
        Some(11),
        "spec.source.http.headers: invalid type: sequence, expected a mapping of keys to values",
    ),
    (
        "wrong_type_string_for_map.yaml",
        Some(8),
        "spec.source.http: invalid type: string \"https://api.example.com/v1/users\", expected a mapping of keys to values",
    ),
    (
        "unknown_enum_value.yaml",
        Some(11),
        "spec.source.http.pagination.kind: unknown value `offset`, expected one of `none`, `limit_offset`",
    ),
    (
        "duration_bad.yaml",
        Some(10),
        "spec.source.http.timeout: invalid duration \"fast\"; write it like 500ms, 30s",
    ),
    // Header of the document.
    (
        "wrong_api_version.yaml",
        Some(2),
        "apiVersion: unsupported apiVersion \"apitap/v2\"",
    ),
    (
        "name_uppercase.yaml",
        Some(5),
        "metadata.name: invalid pipeline name \"Users\"",
    ),
    (
        "name_underscore.yaml",
        Some(5),
        "metadata.name: invalid pipeline name \"github_users\"",
    ),
    // The source.
    (
        "url_no_scheme.yaml",
        Some(9),
        "spec.source.http.url: the URL \"api.example.com/v1/users\" has no scheme",
    ),
    (
        "url_ftp_scheme.yaml",
        Some(9),
        "spec.source.http.url: unsupported URL scheme \"ftp\"",
    ),
    (
        "url_garbage.yaml",
        Some(9),
        "spec.source.http.url: invalid URL \"https://api.example.com:http/v1/users\": invalid port number",
    ),
    (
        "template_unknown_var.yaml",
        Some(9),
        "spec.source.http.url: unknown template variable {{ nope }}",
    ),
    (
        "records_bad_json_path.yaml",
        Some(10),
        "spec.source.http.records: JSON path \"$.data.*\": wildcards are not supported",
    ),
    (
        "secret_env_not_set.yaml",
        Some(11),
        "spec.source.http.auth.bearer: environment variable NOT_SET_VAR is not set",
    ),
    (
        "secret_unclosed_reference.yaml",
        Some(11),
        "spec.source.http.headers.X-Api-Key: `${` without a closing `}`",
    ),
    (
        "auth_two_methods.yaml",
        Some(10),
        "spec.source.http.auth: 2 auth methods are set; exactly one is needed",
    ),
    // Pagination.
    (
        "pagination_cursor_without_cursor_path.yaml",
        Some(10),
        "spec.source.http.pagination: pagination kind cursor needs `cursor_path`",
    ),
    (
        "pagination_next_url_without_path.yaml",
        Some(10),
        "spec.source.http.pagination: pagination kind next_url needs `next_url_path`",
    ),
    (
        "pagination_size_zero.yaml",
        Some(12),
        "spec.source.http.pagination.size: page size must be at least 1",
    ),
    (
        "pagination_key_for_other_kind.yaml",
        Some(13),
        "spec.source.http.pagination.page_param: `page_param` does not apply to pagination kind cursor",
    ),
    (
        "pagination_limit_equals_offset.yaml",
        Some(13),
        "spec.source.http.pagination.offset_param: limit_param and offset_param are the same query parameter \"n\"",
    ),
    // Shards.
    (
        "shards_values_and_range.yaml",
        Some(10),
        "spec.shards: set exactly one of `values`, `range` and `window`",
    ),
    // The transform.
    (
        "sql_syntax_error.yaml",
        Some(11),
        "spec.transform.sql: invalid SQL: Expected: an SQL statement, found: SELEC",
    ),
    (
        "sql_delete.yaml",
        Some(11),
        "spec.transform.sql: the transform must be a SELECT query, found DELETE",
    ),
    (
        "sql_other_table.yaml",
        Some(11),
        "spec.transform.sql: the query reads accounts; only the table `source`",
    ),
    (
        "sql_two_statements.yaml",
        Some(11),
        "spec.transform.sql: expected one SQL statement, found 2",
    ),
    // The sink.
    (
        "sink_unknown_mysql.yaml",
        Some(11),
        "spec.sink: unknown field `mysql`, expected `postgres` or `sqlite`",
    ),
    ("sink_missing.yaml", Some(6), "spec: missing field `sink`"),
    (
        "sink_empty.yaml",
        Some(10),
        "spec.sink: 0 sinks are set; exactly one is needed",
    ),
    (
        "sink_two.yaml",
        Some(10),
        "spec.sink: 2 sinks are set; exactly one is needed",
    ),
    (
        "sink_bad_postgres_url.yaml",
        Some(12),
        "spec.sink.postgres.url: not a PostgreSQL connection URL",
    ),
    (
        "merge_without_primary_key.yaml",
        Some(11),
        "spec.sink.sqlite.primary_key: mode merge needs a primary_key",
    ),
];

/// (file in tests/good_specs, pipeline name)
const GOOD: &[(&str, &str)] = &[
    ("users.yaml", "github-issues"),
    ("cursor_postgres.yaml", "crm-contacts"),
];

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// Runs apitapctl in `cwd` (so that messages name the bare file) with a controlled
/// environment: no NOT_SET_VAR, the variables the good specs use, no coordinator setting.
fn apitapctl(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apitapctl"))
        .current_dir(cwd)
        .args(args)
        .env_remove("NOT_SET_VAR")
        .env_remove("APITAP_COORDINATOR")
        .env("GOOD_SPEC_TOKEN", "t0ken")
        .env(
            "GOOD_SPEC_WAREHOUSE_URL",
            "postgres://etl@127.0.0.1:1/warehouse",
        )
        .output()
        .expect("run apitapctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Problems with one run of apitapctl on a bad file; empty when it was rejected properly.
fn check_rejection(
    file: &str,
    line: Option<usize>,
    expected: &str,
    args: &[&str],
    out: &Output,
) -> Vec<String> {
    let stderr = text(&out.stderr);
    let stdout = text(&out.stdout);
    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("exit status {:?}, expected 2", out.status.code()));
    }
    match line {
        Some(line) => {
            let at = format!("{file}:{line}:");
            if !stderr.contains(&at) {
                problems.push(format!("stderr does not point at `{at}`"));
            }
        }
        None => {
            if !stderr.starts_with(&format!("{file}: ")) {
                problems.push(format!("stderr does not start with `{file}: `"));
            }
        }
    }
    if !stderr.contains(expected) {
        problems.push(format!("stderr does not contain {expected:?}"));
    }
    // One mistake per file, so one problem reported: anything else is either a noisy
    // validator or a file that tests more than it says.
    if !stderr.contains("rejected (1 problem); nothing was sent to the cluster") {
        problems.push(
            "stderr does not say `rejected (1 problem); nothing was sent to the cluster`".into(),
        );
    }
    if stdout.contains("is valid") {
        problems.push("stdout claims the pipeline is valid".into());
    }
    problems
        .into_iter()
        .map(|p| {
            format!(
                "apitapctl {}: {p}\n--- stderr:\n{stderr}--- stdout:\n{stdout}",
                args.join(" ")
            )
        })
        .collect()
}

fn reject_all(extra_args: &[&str]) {
    let cwd = dir("bad_specs");
    let mut failures = Vec::new();
    for (file, line, expected) in BAD {
        let mut args = extra_args.to_vec();
        args.insert(1, file);
        let out = apitapctl(&cwd, &args);
        failures.extend(check_rejection(file, *line, expected, &args, &out));
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn validate_rejects_every_bad_spec_with_its_line_and_problem() {
    reject_all(&["validate"]);
}

#[test]
fn submit_rejects_every_bad_spec_without_contacting_the_cluster() {
    // Nothing listens on port 1: a spec that wrongly passed validation would fail with a
    // connection error (exit status 1) instead of the local rejection checked here.
    reject_all(&["submit", "--coordinator", "127.0.0.1:1", "--timeout", "1s"]);
}

#[test]
fn the_table_lists_every_bad_spec_file() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir("bad_specs"))
        .expect("read tests/bad_specs")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    let listed: BTreeSet<String> = BAD.iter().map(|(f, _, _)| f.to_string()).collect();
    assert_eq!(listed.len(), BAD.len(), "a file is listed twice in BAD");
    assert_eq!(
        on_disk, listed,
        "tests/bad_specs and the BAD table disagree"
    );
    assert!(BAD.len() >= 20);
}

#[test]
fn validate_accepts_the_good_specs() {
    let cwd = dir("good_specs");
    for (file, name) in GOOD {
        let out = apitapctl(&cwd, &["validate", file]);
        let stdout = text(&out.stdout);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}\n--- stderr:\n{stderr}--- stdout:\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("{file}: pipeline {name} is valid")),
            "{file}: {stdout}"
        );
        assert!(stderr.is_empty(), "{file}: {stderr}");
    }
}

/// The control for the submit test: a valid spec does get past validation and tries the
/// (absent) cluster, so "nothing was sent" above really means validation stopped it.
#[test]
fn submit_of_a_good_spec_tries_the_cluster() {
    let out = apitapctl(
        &dir("good_specs"),
        &[
            "submit",
            "users.yaml",
            "--coordinator",
            "127.0.0.1:1",
            "--timeout",
            "1s",
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("nothing was sent"), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}
