//! Connection pools shared by every shard of this worker that loads into the same database.
//!
//! A worker with 1,000 slots would otherwise open a pool per shard, thousands of connections
//! to one server (PostgreSQL allows 100 by default, MariaDB 151): the shards past the
//! server's limit then fail to connect and retry until their attempts run out. Instead each
//! database (its URL, or a SQLite file's path) gets one pool of at most
//! `--sink-connections` connections, and a shard holds a connection only while it claims,
//! commits or keeps a dead letter. A commit waits for a free connection, in turn, up to
//! [`ACQUIRE_TIMEOUT`] (then it fails as transient and is retried): with many shards per
//! connection the wait is the normal case, not a fault.
//!
//! At most [`MAX_SHARED_POOLS`] databases are remembered; past that, a pool without a
//! connection in use is forgotten (its sinks keep it), and if none is, the new sink gets a
//! pool of its own, as before pools were shared.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use sqlx::{Database, Pool};
use tokio::sync::OnceCell;

use super::super::SinkError;

/// Default of `--sink-connections`: the most connections a worker keeps to one database.
pub const DEFAULT_SINK_CONNECTIONS: u32 = 16;
/// Bounds of `--sink-connections`: a commit in flight and a spare, up to what a large
/// server allows one client.
pub const MIN_SINK_CONNECTIONS: u32 = 2;
pub const MAX_SINK_CONNECTIONS: u32 = 1_000;
/// How long a claim, commit or dead letter waits for one of its database's connections.
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// The most databases whose pools one worker remembers.
pub const MAX_SHARED_POOLS: usize = 64;

/// One registry per kind of database.
#[derive(Debug)]
pub struct Registry<DB: Database> {
    pools: Mutex<HashMap<String, Arc<OnceCell<Pool<DB>>>>>,
}

impl<DB: Database> Default for Registry<DB> {
    fn default() -> Self {
        Self {
            pools: Mutex::default(),
        }
    }
}

impl<DB: Database> Registry<DB> {
    /// The pool of the database `key`, connected by `connect` the first time (concurrent
    /// callers for one key wait for that first connect instead of each opening a pool). A
    /// failed connect is not remembered: the next caller tries again.
    pub async fn get<F, Fut>(&self, key: &str, connect: F) -> Result<Pool<DB>, SinkError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Pool<DB>, SinkError>>,
    {
        let Some(cell) = self.cell(key) else {
            tracing::warn!(
                limit = MAX_SHARED_POOLS,
                "more sink databases than the worker shares pools for: this sink gets a pool of its own"
            );
            return connect().await;
        };
        cell.get_or_try_init(connect).await.cloned()
    }

    /// The cell of `key`, made room for if needed; `None` when every remembered pool is in use.
    fn cell(&self, key: &str) -> Option<Arc<OnceCell<Pool<DB>>>> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cell) = pools.get(key) {
            return Some(cell.clone());
        }
        if pools.len() >= MAX_SHARED_POOLS {
            // Forget pools with no connection in use (and cells whose connect failed).
            pools.retain(|_, cell| {
                cell.get()
                    .is_some_and(|pool| pool.size() as usize > pool.num_idle())
            });
            if pools.len() >= MAX_SHARED_POOLS {
                return None;
            }
        }
        let cell = Arc::new(OnceCell::new());
        pools.insert(key.to_owned(), cell.clone());
        Some(cell)
    }

    /// How many databases have a remembered pool.
    pub fn len(&self) -> usize {
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The worker's shared sink pools, one registry per database kind.
#[derive(Debug)]
pub struct SinkPools {
    /// Most connections of one database's pool (`--sink-connections`).
    pub max_connections: u32,
    pub postgres: Registry<sqlx::Postgres>,
    pub mysql: Registry<sqlx::MySql>,
    pub sqlite: Registry<sqlx::Sqlite>,
}

impl SinkPools {
    pub fn new(max_connections: u32) -> Self {
        Self {
            max_connections: max_connections.clamp(MIN_SINK_CONNECTIONS, MAX_SINK_CONNECTIONS),
            postgres: Registry::default(),
            mysql: Registry::default(),
            sqlite: Registry::default(),
        }
    }
}

impl Default for SinkPools {
    fn default() -> Self {
        Self::new(DEFAULT_SINK_CONNECTIONS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    async fn memory_pool() -> Result<Pool<sqlx::Sqlite>, SinkError> {
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::new().in_memory(true))
            .await
            .map_err(|e| SinkError::Transient(e.to_string()))
    }

    #[tokio::test]
    async fn one_database_gets_one_pool_and_a_failed_connect_is_tried_again() {
        let r: Registry<sqlx::Sqlite> = Registry::default();
        let a = r.get("db-a", memory_pool).await.unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&a)
            .await
            .unwrap();
        // The same key: the same pool (the table is there); no second connect.
        let again = r
            .get("db-a", || async {
                Err(SinkError::Transient("not called".into()))
            })
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&again)
            .await
            .unwrap();
        let failed = r
            .get("db-b", || async {
                Err(SinkError::Transient("refused".into()))
            })
            .await;
        assert_eq!(failed.unwrap_err(), SinkError::Transient("refused".into()));
        let b = r.get("db-b", memory_pool).await.unwrap();
        assert!(sqlx::query("SELECT * FROM t").execute(&b).await.is_err());
        assert_eq!(r.len(), 2);
    }

    #[tokio::test]
    async fn past_the_bound_idle_pools_are_forgotten_and_busy_ones_kept() {
        let r: Registry<sqlx::Sqlite> = Registry::default();
        let busy = r.get("busy", memory_pool).await.unwrap();
        let _held = busy.acquire().await.unwrap();
        for i in 1..MAX_SHARED_POOLS {
            r.get(&format!("idle-{i}"), memory_pool).await.unwrap();
        }
        assert_eq!(r.len(), MAX_SHARED_POOLS);
        // A new database: the idle pools are forgotten, the busy one stays.
        r.get("new", memory_pool).await.unwrap();
        assert_eq!(r.len(), 2);
        let kept = r
            .get("busy", || async {
                Err(SinkError::Transient("reconnected".into()))
            })
            .await;
        assert!(kept.is_ok(), "the busy pool is still shared");
    }

    #[test]
    fn the_connection_bound_is_kept() {
        assert_eq!(SinkPools::new(0).max_connections, MIN_SINK_CONNECTIONS);
        assert_eq!(
            SinkPools::new(1_000_000).max_connections,
            MAX_SINK_CONNECTIONS
        );
    }
}
