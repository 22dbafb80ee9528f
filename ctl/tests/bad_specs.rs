//! Every file in `tests/bad_specs/` holds exactly one mistake. `apitapctl validate` and
//! `apitapctl submit` must both reject it locally (exit status 2, nothing sent to the
//! cluster) with a message that says what is wrong and on which line.
//!
//! The expectations live in [`BAD`]: file name, the line the error must point at (`None`
//! for files that have no lines to point at) and a substring of the message. Beside that,
//! the whole of what apitapctl prints on stderr is compared with a golden file,
//! `tests/bad_specs/<name>.expected` (`tests/bad_specs/generated/<name>.expected` for the
//! specs written at test time), so a change to any message shows in review as a diff of
//! those files. `APITAP_BLESS=1 cargo test -p apitap-ctl --test bad_specs` rewrites them
//! from the `validate` runs; read the diff before committing it.

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
        "not valid YAML: illegal placement of ':' indicator, inside the flow sequence that starts at line 6 column 11",
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
    (
        "bad_indentation.yaml",
        Some(12),
        "not valid YAML: while parsing a block mapping, did not find expected key, inside the block mapping that starts at line 7 column 3",
    ),
    (
        "alias_without_anchor.yaml",
        Some(10),
        "the alias `*common` refers to no anchor: no `&common` comes before it",
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
        "number_out_of_range.yaml",
        Some(10),
        "spec.source.http.retry.max_attempts: invalid value: integer `99999999999`, expected a whole number from 0 to 4294967295",
    ),
    (
        "value_missing.yaml",
        Some(12),
        "spec.sink.sqlite.table: invalid type: null (no value), expected a string",
    ),
    (
        "bool_yes.yaml",
        Some(10),
        "spec.source.http.follow.cross_origin: invalid type: string \"yes\", expected true or false",
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
    (
        "batch_wait_too_long.yaml",
        Some(13),
        "spec.batch.max_wait: must be at most 60s",
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
    // Hostile input: each crosses a limit of apitap_common::limits and must be rejected
    // quickly, with the limit named, never by a crash (exit 101) or a stall.
    (
        "hostile_alias_bomb.yaml",
        Some(13),
        "the document holds more than 50000 YAML nodes once its aliases (*name) are expanded, over the limit max_yaml_nodes of 50000 nodes",
    ),
    (
        "hostile_deep_nesting.yaml",
        Some(11),
        "mappings and lists are nested 33 deep here, over the limit max_nesting_depth of 32 levels",
    ),
    (
        "hostile_shards_range_4e9.yaml",
        Some(14),
        "spec.shards.range.count: the range makes 4000000000 shards, over the limit max_shards of 10000 shards",
    ),
    (
        "hostile_window_step_wraps.yaml",
        Some(16),
        "spec.shards.window.step: the duration \"10000000000000000000s\" is 115740740740741 days, over the limit max_duration of 3650 days; use at most 3650d",
    ),
    (
        "hostile_every_wraps.yaml",
        Some(8),
        "spec.schedule.every: the duration \"18446744073709551s 616ms\" is 213503982335 days, over the limit max_duration of 3650 days",
    ),
    (
        "hostile_cron_never_fires.yaml",
        Some(8),
        "spec.schedule.cron: \"0 0 30 2 *\" never fires",
    ),
    (
        "hostile_cron_non_ascii.yaml",
        Some(8),
        "spec.schedule.cron: the cron schedule contains the non-ASCII character 'М'",
    ),
    (
        "cron_name_in_wrong_field.yaml",
        Some(8),
        "spec.schedule.cron: month: \"MON\" is not a month name",
    ),
    (
        "hostile_timestamp_non_ascii.yaml",
        Some(13),
        "spec.shards.window.start: \"202é-01-01T00:00:00Z\" is not an RFC 3339 timestamp: it contains the non-ASCII character 'é'",
    ),
    // The sink.
    (
        "sink_unknown_bigquery.yaml",
        Some(11),
        "spec.sink: unknown field `bigquery`, expected one of `postgres`, `sqlite`, `mysql`",
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
        "files_relative_folder.yaml",
        Some(11),
        "spec.sink.files.url: \"./exports/../../etc\" is neither an s3:// URL nor an absolute folder",
    ),
    (
        "files_s3_keys_in_clear.yaml",
        Some(14),
        "spec.sink.files.s3.secret_access_key: must be a secret reference, not the key itself",
    ),
    (
        "files_s3_http_endpoint.yaml",
        Some(14),
        "spec.sink.files.s3.endpoint: an http:// endpoint sends the keys in clear",
    ),
    (
        "files_table_with_slash.yaml",
        Some(11),
        "spec.sink.files.table: invalid folder name \"users/2026\"",
    ),
    (
        "files_s3_without_keys.yaml",
        Some(11),
        "spec.sink.files.s3: an s3:// URL needs the store's keys",
    ),
    (
        "files_s3_on_a_folder.yaml",
        Some(11),
        "spec.sink.files.s3: S3 settings with a URL that is not s3://",
    ),
    (
        "files_unknown_format.yaml",
        Some(11),
        "spec.sink.files.format: unknown value `avro`",
    ),
    (
        "rabbitmq_password_in_clear.yaml",
        Some(12),
        "spec.sink.rabbitmq.url: the password must be a secret reference, not the password itself",
    ),
    (
        "rabbitmq_not_amqp.yaml",
        Some(12),
        "spec.sink.rabbitmq.url: not an AMQP URL",
    ),
    (
        "rabbitmq_default_exchange_other_queue.yaml",
        Some(14),
        "spec.sink.rabbitmq.queue: the default exchange cannot route the key \"users\" to the queue \"apitap-users\"",
    ),
    (
        "rabbitmq_confirm_timeout_too_long.yaml",
        Some(15),
        "spec.sink.rabbitmq.confirm_timeout: 3600s is out of range",
    ),
    (
        "rabbitmq_message_too_large.yaml",
        Some(15),
        "spec.sink.rabbitmq.max_message_bytes: 1073741824 is out of range",
    ),
    (
        "rabbitmq_no_routing_key.yaml",
        Some(11),
        "spec.sink.rabbitmq: missing field `routing_key`",
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
    ("rabbitmq_orders.yaml", "shop-orders"),
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
        .env("RABBITMQ_PASSWORD", "s3cret")
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

/// Set (to anything but `0`) to rewrite the golden files instead of comparing with them.
const BLESS: &str = "APITAP_BLESS";

fn blessing() -> bool {
    std::env::var_os(BLESS).is_some_and(|v| v != "0")
}

/// `stderr` with the directory the spec was read from replaced by `$DIR`, so that a golden
/// file does not depend on where the checkout or the target directory lives.
fn normalise(stderr: &str, cwd: &Path) -> String {
    stderr.replace(&format!("{}/", cwd.display()), "$DIR/")
}

/// The golden file of `file` (a spec name such as `empty.yaml`) in `dir`.
fn golden_path(dir: &Path, file: &str) -> PathBuf {
    dir.join(Path::new(file).with_extension("expected"))
}

/// Compares `stderr` with the golden file; with [`BLESS`] set and `write` true, rewrites it.
/// Returns the problem, if any.
fn check_golden(golden: &Path, stderr: &str, write: bool) -> Option<String> {
    if blessing() {
        if write {
            std::fs::write(golden, stderr).expect("write a golden file");
        }
        return None;
    }
    match std::fs::read_to_string(golden) {
        Ok(expected) if expected == stderr => None,
        Ok(expected) => Some(format!(
            "stderr differs from {} (rerun with {BLESS}=1 to accept the new text, then review the diff)\n--- expected:\n{expected}--- actual:\n{stderr}",
            golden.display()
        )),
        Err(e) => Some(format!(
            "cannot read the golden file {}: {e} (run with {BLESS}=1 to write it)",
            golden.display()
        )),
    }
}

/// Where one run's stderr is compared: the golden file and the directory the spec was read
/// from (normalised away).
struct Golden<'a> {
    file: PathBuf,
    cwd: &'a Path,
}

/// Problems with one run of apitapctl on a bad file; empty when it was rejected properly.
fn check_rejection(
    file: &str,
    line: Option<usize>,
    expected: &str,
    args: &[&str],
    out: &Output,
    golden: &Golden,
) -> Vec<String> {
    let stderr = text(&out.stderr);
    let stdout = text(&out.stdout);
    let mut problems = Vec::new();
    // Only the `validate` runs write golden files; `submit` must print the same rejection.
    let write = args.first() == Some(&"validate");
    problems.extend(check_golden(
        &golden.file,
        &normalise(&stderr, golden.cwd),
        write,
    ));
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
        let golden = Golden {
            file: golden_path(&cwd, file),
            cwd: &cwd,
        };
        failures.extend(check_rejection(file, *line, expected, &args, &out, &golden));
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The head of a pipeline whose `spec.shards.values` follow.
const HEAD: &str = "apiVersion: apitap/v1\nkind: Pipeline\nmetadata:\n  name: users\nspec:\n  source:\n    http:\n      url: \"https://api.example.com/v1/orgs/{{ org }}/users\"\n  sink:\n    sqlite: { path: ./out.db, table: users }\n  shards:\n    param: org\n";

/// Hostile files too large to keep in git, written at test time:
/// (file, expected line, expected part of the message, text).
fn generated() -> Vec<(&'static str, Option<usize>, String, String)> {
    // 30,000 values of 10 bytes each: over 256 KiB.
    let values: Vec<String> = (0..30_000).map(|i| format!("org-{i:05}")).collect();
    let huge = format!("{HEAD}    values: [{}]\n", values.join(", "));
    // The shape reported in issue 12: one anchor of 20,000 items aliased 20,000 times
    // (about 140 KB of text, 400 million values once expanded).
    let items = vec!["a"; 20_000].join(", ");
    let aliases = vec!["*x"; 20_000].join(", ");
    let wide = format!("x-items: &x [{items}]\nx-bomb: [{aliases}]\n{HEAD}    values: [a]\n");
    assert!(wide.len() < 256 * 1024);
    // A 5,000-byte string aliased 300 times: 1.5 MB of text from 7 KB, under the node limit.
    let long = format!(
        "x-long: &s {}\nx-many: [{}]\n{HEAD}    values: [a]\n",
        "x".repeat(5_000),
        vec!["*s"; 300].join(", ")
    );
    vec![
        (
            "hostile_huge_document.yaml",
            None,
            format!(
                "the document is {} bytes, over the limit max_document_bytes of 262144 bytes",
                huge.len()
            ),
            huge,
        ),
        (
            "hostile_alias_bomb_wide.yaml",
            Some(2),
            "over the limit max_yaml_nodes of 50000 nodes".to_string(),
            wide,
        ),
        (
            "hostile_alias_long_strings.yaml",
            Some(2),
            "over the limit max_yaml_scalar_bytes of 1048576 bytes".to_string(),
            long,
        ),
    ]
}

fn reject_generated(extra_args: &[&str]) {
    let cwd = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile_specs");
    std::fs::create_dir_all(&cwd).expect("create the directory for generated specs");
    let mut failures = Vec::new();
    for (file, line, expected, text) in generated() {
        std::fs::write(cwd.join(file), text).expect("write a generated spec");
        let mut args = extra_args.to_vec();
        args.insert(1, file);
        let out = apitapctl(&cwd, &args);
        let golden = Golden {
            file: golden_path(&dir("bad_specs").join("generated"), file),
            cwd: &cwd,
        };
        failures.extend(check_rejection(file, line, &expected, &args, &out, &golden));
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Nothing listens on port 1: a spec that wrongly passed validation would fail with a
/// connection error (exit status 1) instead of the local rejection checked here.
const SUBMIT: &[&str] = &["submit", "--coordinator", "127.0.0.1:1", "--timeout", "1s"];

#[test]
fn validate_rejects_every_bad_spec_with_its_line_and_problem() {
    reject_all(&["validate"]);
}

#[test]
fn submit_rejects_every_bad_spec_without_contacting_the_cluster() {
    reject_all(SUBMIT);
}

#[test]
fn validate_and_submit_reject_the_generated_hostile_specs() {
    reject_generated(&["validate"]);
    reject_generated(SUBMIT);
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
    // Every golden file belongs to a spec, so none is left behind when a spec goes.
    let golden = |d: &Path| -> BTreeSet<String> {
        std::fs::read_dir(d)
            .expect("read a golden directory")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n.ends_with(".expected"))
            .collect()
    };
    let expected: BTreeSet<String> = listed
        .iter()
        .map(|f| f.replace(".yaml", ".expected"))
        .collect();
    assert_eq!(
        golden(&dir("bad_specs")),
        expected,
        "stray or missing golden files"
    );
    let generated: BTreeSet<String> = generated()
        .iter()
        .map(|(f, ..)| f.replace(".yaml", ".expected"))
        .collect();
    assert_eq!(
        golden(&dir("bad_specs").join("generated")),
        generated,
        "stray or missing golden files in bad_specs/generated"
    );
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
