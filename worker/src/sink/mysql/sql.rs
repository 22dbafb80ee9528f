//! MySQL's checkpoint and dead-letter statements (InnoDB, `utf8mb4`). Only positional `?`
//! placeholders exist, so each statement names its parameters in the order the core binds
//! them. The pipeline name is a `VARCHAR` because a key cannot hold unbounded text.

use crate::sink::sql::dialect::Statements;

pub(super) const STATEMENTS: Statements = Statements {
    create_checkpoints: "CREATE TABLE IF NOT EXISTS apitap_checkpoints (
        pipeline   VARCHAR(512) NOT NULL,
        run_id     BIGINT       NOT NULL,
        shard      BIGINT       NOT NULL,
        fence      BIGINT       NOT NULL,
        checkpoint JSON         NOT NULL,
        records    BIGINT       NOT NULL DEFAULT 0,
        pages      BIGINT       NOT NULL DEFAULT 0,
        updated_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        PRIMARY KEY (pipeline, run_id, shard)) ENGINE = InnoDB",

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

    create_dead_letters: "CREATE TABLE IF NOT EXISTS apitap_dead_letters (
        pipeline   VARCHAR(512) NOT NULL,
        run_id     BIGINT       NOT NULL,
        shard      BIGINT       NOT NULL,
        page       BIGINT       NOT NULL,
        ordinal    BIGINT       NOT NULL,
        fence      BIGINT       NOT NULL,
        record     JSON         NOT NULL,
        error      LONGTEXT     NOT NULL,
        created_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        PRIMARY KEY (pipeline, run_id, shard, page, ordinal)) ENGINE = InnoDB",

    insert_dead_letters: "INSERT IGNORE INTO apitap_dead_letters
            (pipeline, run_id, shard, page, ordinal, fence, record, error)
        SELECT ?, ?, ?, ?, j.ordinal, ?, j.record, ?
        FROM JSON_TABLE(?, '$[*]' COLUMNS (ordinal FOR ORDINALITY, record JSON PATH '$')) AS j",
};
