//! SQLite's checkpoint and dead-letter statements. JSON is stored as text; timestamps as
//! ISO-8601 text in UTC. There is no row lock: `BEGIN IMMEDIATE` takes the database's
//! write lock up front, which plays the part of PostgreSQL's `FOR UPDATE`.

use crate::sink::sql::dialect::{ledger_tables, Statements};

/// The checkpoint and dead-letter tables in this dialect's types.
const TABLES: (&str, &str) = ledger_tables! {
    name: "TEXT", int: "INTEGER", json: "TEXT", text: "TEXT",
    time: "TEXT", now: "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))", options: "",
};

pub(super) const STATEMENTS: Statements = Statements {
    create_checkpoints: TABLES.0,

    claim: "INSERT INTO apitap_checkpoints
            (pipeline, run_id, shard, fence, checkpoint)
        VALUES (?1, ?2, ?3, ?4, ?5)
        ON CONFLICT (pipeline, run_id, shard) DO UPDATE
            SET fence = excluded.fence,
                updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
            WHERE apitap_checkpoints.fence < excluded.fence",

    read: "SELECT fence, checkpoint FROM apitap_checkpoints
        WHERE pipeline = ?1 AND run_id = ?2 AND shard = ?3",

    // The transaction already holds the write lock (`BEGIN IMMEDIATE`).
    lock: "SELECT fence FROM apitap_checkpoints
        WHERE pipeline = ?1 AND run_id = ?2 AND shard = ?3",

    update: "UPDATE apitap_checkpoints
        SET checkpoint = ?1, records = ?2, pages = ?3, fence = ?4,
            updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
        WHERE pipeline = ?5 AND run_id = ?6 AND shard = ?7",

    create_dead_letters: TABLES.1,

    // `->` returns each element as JSON text; `j.value` would be its SQL value (a string
    // unquoted, `true` as 1, `null` as NULL, which `OR IGNORE` would silently drop).
    insert_dead_letters: "INSERT OR IGNORE INTO apitap_dead_letters
            (pipeline, run_id, shard, page, ordinal, fence, record, error)
        SELECT ?1, ?2, ?3, ?4, CAST(j.key AS INTEGER) + 1, ?5, ?7 -> j.fullkey, ?6
        FROM json_each(?7) AS j",
};
