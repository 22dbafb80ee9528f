//! PostgreSQL's checkpoint and dead-letter statements, created in the default schema (the
//! first of `search_path`). JSON is stored as `jsonb` and bound as text with a cast.

use crate::sink::sql::dialect::Statements;

pub(super) const STATEMENTS: Statements = Statements {
    create_checkpoints: "CREATE TABLE IF NOT EXISTS apitap_checkpoints (
        pipeline   TEXT        NOT NULL,
        run_id     BIGINT      NOT NULL,
        shard      BIGINT      NOT NULL,
        fence      BIGINT      NOT NULL,
        checkpoint JSONB       NOT NULL,
        records    BIGINT      NOT NULL DEFAULT 0,
        pages      BIGINT      NOT NULL DEFAULT 0,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (pipeline, run_id, shard))",

    // The conflicting row stays locked until the transaction ends even when the WHERE is
    // false, so the read that follows is stable.
    claim: "INSERT INTO apitap_checkpoints AS c
            (pipeline, run_id, shard, fence, checkpoint)
        VALUES ($1, $2, $3, $4, $5::jsonb)
        ON CONFLICT (pipeline, run_id, shard) DO UPDATE
            SET fence = EXCLUDED.fence, updated_at = now()
            WHERE c.fence < EXCLUDED.fence",

    read: "SELECT fence, checkpoint::text FROM apitap_checkpoints
        WHERE pipeline = $1 AND run_id = $2 AND shard = $3",

    lock: "SELECT fence FROM apitap_checkpoints
        WHERE pipeline = $1 AND run_id = $2 AND shard = $3 FOR UPDATE",

    update: "UPDATE apitap_checkpoints
        SET checkpoint = $1::jsonb, records = $2, pages = $3, fence = $4, updated_at = now()
        WHERE pipeline = $5 AND run_id = $6 AND shard = $7",

    create_dead_letters: "CREATE TABLE IF NOT EXISTS apitap_dead_letters (
        pipeline   TEXT        NOT NULL,
        run_id     BIGINT      NOT NULL,
        shard      BIGINT      NOT NULL,
        page       BIGINT      NOT NULL,
        ordinal    BIGINT      NOT NULL,
        fence      BIGINT      NOT NULL,
        record     JSONB       NOT NULL,
        error      TEXT        NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (pipeline, run_id, shard, page, ordinal))",

    insert_dead_letters: "INSERT INTO apitap_dead_letters
            (pipeline, run_id, shard, page, ordinal, fence, record, error)
        SELECT $1, $2, $3, $4, x.ordinal, $5, x.value, $6
        FROM jsonb_array_elements($7::jsonb) WITH ORDINALITY AS x(value, ordinal)
        ON CONFLICT DO NOTHING",
};
