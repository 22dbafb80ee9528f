//! The dead-letter table, `apitap_dead_letters`: the raw JSON of records a shard could not
//! transform or load, with the error. Written under the same fence check as a commit, and
//! keyed by (pipeline, run, shard, page, ordinal) so that a retried page is kept once.

/// PostgreSQL statements.
pub(crate) mod pg {
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS apitap_dead_letters (
        pipeline   TEXT        NOT NULL,
        run_id     BIGINT      NOT NULL,
        shard      BIGINT      NOT NULL,
        page       BIGINT      NOT NULL,
        ordinal    BIGINT      NOT NULL,
        fence      BIGINT      NOT NULL,
        record     JSONB       NOT NULL,
        error      TEXT        NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (pipeline, run_id, shard, page, ordinal))";

    /// Parameters: pipeline, run_id, shard, page, fence, error, records as a JSON array.
    pub const INSERT: &str = "INSERT INTO apitap_dead_letters
            (pipeline, run_id, shard, page, ordinal, fence, record, error)
        SELECT $1, $2, $3, $4, x.ordinal, $5, x.value, $6
        FROM jsonb_array_elements($7::jsonb) WITH ORDINALITY AS x(value, ordinal)
        ON CONFLICT DO NOTHING";
}

/// SQLite statements.
pub(crate) mod sqlite {
    pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS apitap_dead_letters (
        pipeline   TEXT    NOT NULL,
        run_id     INTEGER NOT NULL,
        shard      INTEGER NOT NULL,
        page       INTEGER NOT NULL,
        ordinal    INTEGER NOT NULL,
        fence      INTEGER NOT NULL,
        record     TEXT    NOT NULL,
        error      TEXT    NOT NULL,
        created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (pipeline, run_id, shard, page, ordinal))";

    /// Parameters: pipeline, run_id, shard, page, fence, error, records as a JSON array.
    pub const INSERT: &str = "INSERT OR IGNORE INTO apitap_dead_letters
            (pipeline, run_id, shard, page, ordinal, fence, record, error)
        SELECT ?1, ?2, ?3, ?4, CAST(j.key AS INTEGER) + 1, ?5, j.value, ?6
        FROM json_each(?7) AS j";
}
