//! PostgreSQL's checkpoint and dead-letter statements, created in the default schema (the
//! first of `search_path`). JSON is stored as `jsonb` and bound as text with a cast.

use crate::sink::sql::dialect::{ledger_tables, Statements};

/// The checkpoint and dead-letter tables in this dialect's types.
const TABLES: (&str, &str) = ledger_tables! {
    name: "TEXT", int: "BIGINT", json: "JSONB", text: "TEXT",
    time: "TIMESTAMPTZ", now: "now()", options: "",
};

pub(super) const STATEMENTS: Statements = Statements {
    create_checkpoints: TABLES.0,

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

    create_dead_letters: TABLES.1,

    insert_dead_letters: "INSERT INTO apitap_dead_letters
            (pipeline, run_id, shard, page, ordinal, fence, record, error)
        SELECT $1, $2, $3, $4, x.ordinal, $5, x.value, $6
        FROM jsonb_array_elements($7::jsonb) WITH ORDINALITY AS x(value, ordinal)
        ON CONFLICT DO NOTHING",
};
