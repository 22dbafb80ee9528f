//! The few sqlx calls the shared core makes, over any database it supports.
//!
//! The core is generic over the database, but sqlx's generic API needs a dozen
//! higher-ranked bounds restated at every generic caller. Instead, [`SqlDb`] names the
//! calls the core needs (run a statement, read a fence, read a checkpoint) with plain
//! [`Param`]s, and one macro implements it for each concrete database, where sqlx's
//! bounds hold without being written down.

use std::borrow::Cow;
use std::future::Future;

use serde_json::Value;

use super::table::ValueKind;

/// A statement parameter. The core and the row loaders only ever bind these few types,
/// and every supported database encodes each of them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Cow<'a, str>),
}

impl<'a> Param<'a> {
    pub fn text(s: &'a str) -> Self {
        Param::Text(Cow::Borrowed(s))
    }

    /// A row value for a column written as `kind`: nested values (and anything that is not
    /// a scalar) as their JSON text, numbers as integers where they are whole.
    pub fn from_json(kind: ValueKind, value: Option<&'a Value>) -> Self {
        match (kind, value) {
            (_, None | Some(Value::Null)) => Param::Null,
            (ValueKind::JsonValue, Some(v)) => Param::Text(Cow::Owned(v.to_string())),
            (_, Some(Value::Bool(b))) => Param::Bool(*b),
            (_, Some(Value::Number(n))) => match n.as_i64() {
                Some(i) => Param::Int(i),
                None => n.as_f64().map_or(Param::Null, Param::Float),
            },
            (_, Some(Value::String(s))) => Param::text(s),
            (_, Some(v)) => Param::Text(Cow::Owned(v.to_string())),
        }
    }
}

/// The calls the shared core makes on a connection (usually a transaction's).
pub(crate) trait SqlDb: sqlx::Database {
    /// Runs `sql` with `params` bound in order.
    fn execute(
        conn: &mut Self::Connection,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// The first column (an integer) of the first row, if there is a row.
    fn fetch_int(
        conn: &mut Self::Connection,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Option<i64>, sqlx::Error>> + Send;

    /// An integer and a text column of the first row, if there is a row.
    fn fetch_int_text(
        conn: &mut Self::Connection,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Option<(i64, String)>, sqlx::Error>> + Send;

    /// Every column of every row as text (tests read back what a sink wrote; the query
    /// casts each column to text).
    #[cfg(test)]
    fn fetch_rows(
        conn: &mut Self::Connection,
        sql: &str,
    ) -> impl Future<Output = Result<Vec<Vec<Option<String>>>, sqlx::Error>> + Send;
}

/// Implements [`SqlDb`] for one sqlx database type.
macro_rules! impl_sql_db {
    ($db:ty) => {
        impl SqlDb for $db {
            async fn execute(
                conn: &mut Self::Connection,
                sql: &str,
                params: &[Param<'_>],
            ) -> Result<(), sqlx::Error> {
                let args = arguments::<$db>(params)?;
                sqlx::query_with(sql, args).execute(conn).await?;
                Ok(())
            }

            async fn fetch_int(
                conn: &mut Self::Connection,
                sql: &str,
                params: &[Param<'_>],
            ) -> Result<Option<i64>, sqlx::Error> {
                let args = arguments::<$db>(params)?;
                sqlx::query_scalar_with(sql, args)
                    .fetch_optional(conn)
                    .await
            }

            async fn fetch_int_text(
                conn: &mut Self::Connection,
                sql: &str,
                params: &[Param<'_>],
            ) -> Result<Option<(i64, String)>, sqlx::Error> {
                let args = arguments::<$db>(params)?;
                sqlx::query_as_with(sql, args).fetch_optional(conn).await
            }

            #[cfg(test)]
            async fn fetch_rows(
                conn: &mut Self::Connection,
                sql: &str,
            ) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
                use sqlx::Row;
                let rows = sqlx::query(sql).fetch_all(conn).await?;
                rows.iter()
                    .map(|r| (0..r.len()).map(|i| r.try_get(i)).collect())
                    .collect()
            }
        }
    };
}

/// Binds `params` in order. Generic over the database only in name: it is called with
/// concrete types from [`impl_sql_db`], so the encode bounds are checked there.
fn arguments<'q, DB>(params: &'q [Param<'q>]) -> Result<DB::Arguments<'q>, sqlx::Error>
where
    DB: sqlx::Database,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    use sqlx::Arguments;
    let mut args = DB::Arguments::<'q>::default();
    for p in params {
        match p {
            Param::Null => args.add(None::<&str>),
            Param::Bool(b) => args.add(*b),
            Param::Int(i) => args.add(*i),
            Param::Float(f) => args.add(*f),
            Param::Text(s) => args.add(s.as_ref()),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

impl_sql_db!(sqlx::Postgres);
impl_sql_db!(sqlx::Sqlite);
impl_sql_db!(sqlx::MySql);
