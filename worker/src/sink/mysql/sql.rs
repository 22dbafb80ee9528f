//! MySQL's checkpoint and dead-letter statements (InnoDB, `utf8mb4`). Only positional `?`
//! placeholders exist, so each statement names its parameters in the order the core binds
//! them. The pipeline name is a `VARCHAR` because a key cannot hold unbounded text.

use crate::sink::sql::dialect::{ledger_tables, Statements};

/// The checkpoint and dead-letter tables in this dialect's types.
const TABLES: (&str, &str) = ledger_tables! {
    name: "VARCHAR(512)", int: "BIGINT", json: "JSON", text: "LONGTEXT",
    time: "DATETIME(6)", now: "CURRENT_TIMESTAMP(6)", options: " ENGINE = InnoDB",
};

pub(super) const STATEMENTS: Statements = Statements {
    create_checkpoints: TABLES.0,

    // Assignments apply left to right: `updated_at` still sees the old fence. The row
    // stays locked until the transaction ends.
    claim: "INSERT INTO apitap_checkpoints (pipeline, run_id, shard, fence, checkpoint)
        VALUES (?, ?, ?, ?, ?)
        ON DUPLICATE KEY UPDATE
            updated_at = IF(fence < VALUES(fence), CURRENT_TIMESTAMP(6), updated_at),
            fence = GREATEST(fence, VALUES(fence))",

    // A locking read, so that it reads the latest committed row and not the snapshot.
    // The cast: a `JSON` (`LONGTEXT`) column reaches the client as a BLOB.
    read: "SELECT fence, CAST(checkpoint AS CHAR) FROM apitap_checkpoints
        WHERE pipeline = ? AND run_id = ? AND shard = ? FOR UPDATE",

    lock: "SELECT fence FROM apitap_checkpoints
        WHERE pipeline = ? AND run_id = ? AND shard = ? FOR UPDATE",

    update: "UPDATE apitap_checkpoints
        SET checkpoint = ?, records = ?, pages = ?, fence = ?,
            updated_at = CURRENT_TIMESTAMP(6)
        WHERE pipeline = ? AND run_id = ? AND shard = ?",

    create_dead_letters: TABLES.1,

    insert_dead_letters: "INSERT IGNORE INTO apitap_dead_letters
            (pipeline, run_id, shard, page, ordinal, fence, record, error)
        SELECT ?, ?, ?, ?, j.ordinal, ?, j.record, ?
        FROM JSON_TABLE(?, '$[*]' COLUMNS (ordinal FOR ORDINALITY, record JSON PATH '$')) AS j",
};
