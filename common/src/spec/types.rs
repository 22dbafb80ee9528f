//! The typed shape of a pipeline document. Every struct denies unknown keys so that a typo
//! is an error, not a silently ignored setting.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

pub const API_VERSION: &str = "apitap/v1";
pub const KIND: &str = "Pipeline";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: PipelineSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    "default".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<Shards>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
    /// Declared shape of the source records; inferred from the data when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Vec<Field>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
    pub sink: Sink,
    /// How many pages one sink transaction covers (`spec.batch`).
    #[serde(default, skip_serializing_if = "super::Batch::is_default")]
    pub batch: super::Batch,
    #[serde(default)]
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub every: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub http: HttpSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// JSON path of the record array in the body; `$` (the body is the array) by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    #[serde(default)]
    pub pagination: Pagination,
    #[serde(default)]
    pub retry: Retry,
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Largest response body in bytes; [`crate::limits::DEFAULT_MAX_BODY_BYTES`] when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Which next links and redirects are followed.
    #[serde(default, skip_serializing_if = "Follow::is_default")]
    pub follow: Follow,
    /// What one shard may fetch before it fails (pages, records, bytes).
    #[serde(default, skip_serializing_if = "ShardLimits::is_default")]
    pub limits: ShardLimits,
    /// Full refresh only: send the last run's `ETag` / `Last-Modified` back
    /// (`If-None-Match` / `If-Modified-Since`) and load nothing on `304 Not Modified`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub conditional: bool,
    /// When this worker stops calling the API's host after repeated failures.
    #[serde(default, skip_serializing_if = "CircuitBreaker::is_default")]
    pub circuit_breaker: CircuitBreaker,
}

/// The per-host circuit breaker (`spec.source.http.circuit_breaker`): after `failures`
/// consecutive failed requests (no response, timeout, 5xx) to a host, a worker sends none
/// for `open_for`, then lets one probe through. Shards wait while it is open, at most
/// `max_wait` in a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    #[serde(default = "default_breaker_failures")]
    pub failures: u32,
    #[serde(default = "default_breaker_open_for", with = "duration")]
    pub open_for: Duration,
    #[serde(default = "default_breaker_max_wait", with = "duration")]
    pub max_wait: Duration,
}

fn default_breaker_failures() -> u32 {
    crate::limits::DEFAULT_BREAKER_FAILURES
}
fn default_breaker_open_for() -> Duration {
    crate::limits::DEFAULT_BREAKER_OPEN_FOR
}
fn default_breaker_max_wait() -> Duration {
    crate::limits::DEFAULT_BREAKER_MAX_WAIT
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            failures: default_breaker_failures(),
            open_for: default_breaker_open_for(),
            max_wait: default_breaker_max_wait(),
        }
    }
}

impl CircuitBreaker {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl HttpSource {
    pub fn max_body_bytes(&self) -> u64 {
        self.max_body_bytes
            .unwrap_or(crate::limits::DEFAULT_MAX_BODY_BYTES)
    }
}

/// Where next links (`next_url`, `link_header`) and redirects may lead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Follow {
    /// Follow next links and redirects to another origin (scheme, host, port) than the
    /// `url`'s. Credentials (auth, api key, custom headers) are never sent to another
    /// origin. Off by default: such a link or redirect is an error.
    #[serde(default)]
    pub cross_origin: bool,
}

impl Follow {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The budget of one shard (`spec.source.http.limits`). An API that never stops paging
/// (a cursor that cycles through fresh values, a `has_more` that stays true) would
/// otherwise keep a worker slot and fill the warehouse forever; over a budget the shard
/// fails as a user error instead. Unlike `pagination.max_pages`, which ends a shard
/// successfully, these are alarms: a healthy shard never reaches them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardLimits {
    /// Pages per shard; [`crate::limits::DEFAULT_SHARD_MAX_PAGES`] when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u64>,
    /// Records per shard; [`crate::limits::DEFAULT_SHARD_MAX_RECORDS`] when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_records: Option<u64>,
    /// Response bytes per lease of a shard; [`crate::limits::DEFAULT_SHARD_MAX_BYTES`] when
    /// unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

impl ShardLimits {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
    pub fn max_pages(&self) -> u64 {
        self.max_pages
            .unwrap_or(crate::limits::DEFAULT_SHARD_MAX_PAGES)
    }
    pub fn max_records(&self) -> u64 {
        self.max_records
            .unwrap_or(crate::limits::DEFAULT_SHARD_MAX_RECORDS)
    }
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
            .unwrap_or(crate::limits::DEFAULT_SHARD_MAX_BYTES)
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Exactly one of the fields is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Auth>,
}

/// OAuth2 client credentials grant (RFC 6749 §4.4): the worker asks `token_url` for an
/// access token and sends it as `Authorization: Bearer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Auth {
    pub token_url: String,
    pub client_id: String,
    /// A `${VAR}` secret reference.
    pub client_secret: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Further form parameters of the token request (e.g. `resource`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// How the client proves itself to the token endpoint.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Largest token response; [`crate::limits::DEFAULT_MAX_TOKEN_RESPONSE_BYTES`] when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
}

impl OAuth2Auth {
    /// Form parameters the user may not set in `params`: the grant's own.
    pub const RESERVED_PARAMS: &'static [&'static str] = &[
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "audience",
    ];

    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_bytes
            .unwrap_or(crate::limits::DEFAULT_MAX_TOKEN_RESPONSE_BYTES)
    }
}

/// Where the client id and secret go in a token request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`), which RFC 6749 requires servers to accept.
    #[default]
    Basic,
    /// Form fields `client_id` and `client_secret` (`client_secret_post`).
    Post,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyAuth {
    /// Header or query parameter name.
    pub name: String,
    pub value: String,
    #[serde(default, rename = "in")]
    pub location: ApiKeyLocation,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyLocation {
    #[default]
    Header,
    Query,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaginationKind {
    #[default]
    None,
    LimitOffset,
    PageNumber,
    Cursor,
    NextUrl,
    LinkHeader,
}

impl PaginationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PaginationKind::None => "none",
            PaginationKind::LimitOffset => "limit_offset",
            PaginationKind::PageNumber => "page_number",
            PaginationKind::Cursor => "cursor",
            PaginationKind::NextUrl => "next_url",
            PaginationKind::LinkHeader => "link_header",
        }
    }
}

/// One flat struct for every pagination kind: which keys apply to which kind is checked by
/// validation, which gives clearer errors than a tagged enum would.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pagination {
    #[serde(default)]
    pub kind: PaginationKind,
    /// Page size sent with `limit_offset`, `page_number` and `cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_param: Option<String>,
    /// JSON path of the next cursor in the body (`cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_path: Option<String>,
    /// The cursor is this field of the page's last record (`cursor`), as APIs such as
    /// Stripe's `starting_after=<last id>` expect; instead of `cursor_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_field: Option<String>,
    /// JSON path of a boolean "more pages" flag (`cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more_path: Option<String>,
    /// JSON path of the next page's URL in the body (`next_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_url_path: Option<String>,
    /// JSON path of the total record count; fetching stops once it is reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u64>,
    /// What ends a `cursor`, `next_url` or `link_header` shard when a page is full but
    /// carries no next pointer.
    #[serde(default)]
    pub stop_on: StopOn,
}

/// When a paginator that follows pointers may stop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopOn {
    /// A short page (fewer records than the page size) or an explicit end (`has_more:
    /// false`, no pointer on a short page). A full page without a next pointer is an error:
    /// the pointer's path is probably wrong, and stopping would load part of the data.
    #[default]
    Auto,
    /// A missing next pointer ends the shard whatever the page's size (an API whose last
    /// page may be full).
    NoNext,
}

impl Pagination {
    /// The JSON paths this pagination reads, by key, whether set or not.
    pub fn paths(&self) -> [(&'static str, &Option<String>); 4] {
        [
            ("cursor_path", &self.cursor_path),
            ("has_more_path", &self.has_more_path),
            ("next_url_path", &self.next_url_path),
            ("total_path", &self.total_path),
        ]
    }

    pub const DEFAULT_SIZE: u64 = 100;

    pub fn size(&self) -> u64 {
        self.size.unwrap_or(Self::DEFAULT_SIZE)
    }
    pub fn limit_param(&self) -> &str {
        self.limit_param.as_deref().unwrap_or("limit")
    }
    pub fn offset_param(&self) -> &str {
        self.offset_param.as_deref().unwrap_or("offset")
    }
    pub fn page_param(&self) -> &str {
        self.page_param.as_deref().unwrap_or("page")
    }
    pub fn size_param(&self) -> &str {
        self.size_param.as_deref().unwrap_or(match self.kind {
            PaginationKind::Cursor => "limit",
            _ => "per_page",
        })
    }
    pub fn start_page(&self) -> u64 {
        self.start_page.unwrap_or(1)
    }
    pub fn cursor_param(&self) -> &str {
        self.cursor_param.as_deref().unwrap_or("cursor")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_initial_backoff", with = "duration")]
    pub initial_backoff: Duration,
    #[serde(default = "default_max_backoff", with = "duration")]
    pub max_backoff: Duration,
    /// Longest `Retry-After` this pipeline obeys, both for its own wait and for the
    /// cluster-wide back-off of its `rate_limit` key; at most
    /// [`crate::limits::MAX_RETRY_AFTER_CEILING`], which is also the default.
    #[serde(default = "default_max_retry_after", with = "duration")]
    pub max_retry_after: Duration,
}

fn default_max_attempts() -> u32 {
    5
}
fn default_initial_backoff() -> Duration {
    Duration::from_millis(200)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(30)
}
fn default_max_retry_after() -> Duration {
    crate::limits::MAX_RETRY_AFTER_CEILING
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            max_retry_after: default_max_retry_after(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub key: String,
    pub requests_per_second: f64,
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    1
}

/// Exactly one of `values`, `range` and `window`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shards {
    /// Template variable the shard binds (`{{ repo }}`, besides `{{ shard.value }}`).
    pub param: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<ShardRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<ShardWindow>,
}

/// Time `start..end` (RFC 3339) cut into windows of `step`; the last one may be shorter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardWindow {
    pub start: String,
    pub end: String,
    #[serde(with = "duration")]
    pub step: Duration,
}

/// Integers `start..=end` cut into `count` contiguous shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRange {
    pub start: i64,
    pub end: i64,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// Record field whose largest committed value becomes the next run's `{{ watermark }}`.
    pub cursor_field: String,
    /// `{{ watermark }}` of the first run.
    #[serde(default)]
    pub initial: String,
    /// How cursor values are read and compared (see [`crate::watermark`]).
    #[serde(default)]
    pub cursor_type: CursorType,
    /// A time cursor later than now plus this does not move the watermark: one record
    /// dated 9999-12-31 would otherwise make every later run ask for nothing.
    #[serde(
        default = "default_max_future_skew",
        with = "duration",
        skip_serializing_if = "is_default_skew"
    )]
    pub max_future_skew: Duration,
}

fn default_max_future_skew() -> Duration {
    crate::limits::DEFAULT_MAX_FUTURE_SKEW
}

fn is_default_skew(d: &Duration) -> bool {
    *d == default_max_future_skew()
}

impl Incremental {
    /// What the stored watermarks mean: the cursor field and the URL as written (secrets
    /// unresolved). A pipeline version with another basis starts again from `initial`,
    /// since a watermark of one field or API says nothing about another.
    pub fn basis(&self, url: &str) -> String {
        format!("{}\n{url}", self.cursor_field)
    }
}

/// The type of `incremental.cursor_field`'s values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CursorType {
    /// RFC 3339 timestamps and `YYYY-MM-DD` dates are times, numbers are numbers, anything
    /// else is text.
    #[default]
    Auto,
    /// RFC 3339 timestamps or `YYYY-MM-DD` dates; other values are ignored.
    Timestamp,
    /// Unix seconds (numbers or numeric strings).
    UnixSeconds,
    /// Unix milliseconds (numbers or numeric strings).
    UnixMillis,
    /// Numbers (or numeric strings), not times: never checked against the clock.
    Number,
    /// Text compared byte by byte, never checked against the clock.
    Text,
}

impl CursorType {
    pub fn as_str(self) -> &'static str {
        match self {
            CursorType::Auto => "auto",
            CursorType::Timestamp => "timestamp",
            CursorType::UnixSeconds => "unix_seconds",
            CursorType::UnixMillis => "unix_millis",
            CursorType::Number => "number",
            CursorType::Text => "text",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: FieldType,
    #[serde(default = "default_true")]
    pub nullable: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Int64,
    Float64,
    Boolean,
    /// Kept as JSON text (objects, arrays, anything).
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transform {
    /// DataFusion SQL over the table `source`.
    pub sql: String,
}

/// Exactly one of the fields is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sink {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteSink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql: Option<MysqlSink>,
    /// Part files in a folder or an S3-compatible bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<super::files::FilesSink>,
    /// One message per row on a RabbitMQ broker, at least once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq: Option<super::rabbitmq::RabbitmqSink>,
}

/// A SQL sink's struct: the fields given, then the table and how it is loaded, which every
/// SQL sink shares (one definition, so a new table option reaches every SQL sink).
macro_rules! sql_sink {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            pub table: String,
            #[serde(default)]
            pub mode: LoadMode,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub primary_key: Vec<String>,
            /// Most columns the table may have; [`crate::limits::DEFAULT_MAX_TABLE_COLUMNS`].
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub max_columns: Option<usize>,
            /// Most columns one batch may add; [`crate::limits::DEFAULT_MAX_NEW_COLUMNS`].
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub max_new_columns: Option<usize>,
        }
    };
}

sql_sink! {
    /// PostgreSQL (`postgres://user:password@host:5432/database`).
    PostgresSink {
        pub url: String,
    }
}

sql_sink! {
    /// A SQLite file on the worker's disk.
    SqliteSink {
        #[serde(default = "default_sqlite_path")]
        pub path: String,
    }
}

sql_sink! {
    /// MySQL or MariaDB (`mysql://user:password@host:3306/database`; the table's schema, if
    /// any, is another database on the same server).
    MysqlSink {
        pub url: String,
    }
}

fn default_sqlite_path() -> String {
    "apitap.db".to_string()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    #[default]
    Append,
    Merge,
}

/// How a run treats failing shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Attempts per shard before the run fails.
    #[serde(default = "default_shard_attempts")]
    pub max_attempts: u32,
}

fn default_shard_attempts() -> u32 {
    3
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_attempts: default_shard_attempts(),
        }
    }
}

impl Pipeline {
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// The source records' JSON path (`$` when unset).
    pub fn records_path(&self) -> &str {
        self.spec.source.http.records.as_deref().unwrap_or("$")
    }

    pub fn sql(&self) -> &str {
        self.spec
            .transform
            .as_ref()
            .map(|t| t.sql.as_str())
            .unwrap_or("SELECT * FROM source")
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_default()
    }
}
