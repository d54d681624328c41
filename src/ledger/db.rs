//! One SQL interface over the ledger's two engines, SQLite and PostgreSQL. The ledger's queries
//! are written once, in the SQL both engines read (`?N` placeholders, `ON CONFLICT`,
//! `RETURNING`, `COUNT(*) FILTER`, `CAST(... AS BIGINT)`); only this module and `postgres.rs`
//! know which engine answers. Values cross it as `Arg` (to the engine) and `Row` (back).

use std::fmt;

use super::postgres::Pg;

/// A connection to the ledger's database.
pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Pg>),
}

/// Which engine holds the ledger, where a query must differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", super::postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A value of a type this side does not read, or a query without the row it must return.
    #[error("{0}")]
    Value(String),
}

impl DbError {
    /// The database is gone (its server stopped, the connection broke), as opposed to a
    /// statement it refused.
    pub(crate) fn is_lost(&self) -> bool {
        match self {
            DbError::Postgres(e) => super::postgres::is_lost(e),
            _ => false,
        }
    }

    /// The transaction lost to a concurrent one (a deadlock between two workers' claims) and
    /// was rolled back: running it again is safe.
    pub(crate) fn is_conflict(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            DbError::Postgres(e) => e.code().is_some_and(|c| {
                *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
            }),
            _ => false,
        }
    }
}

pub(crate) type DbResult<T> = Result<T, DbError>;

/// One parameter of a statement.
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    /// A column of values for `unnest` (`text[]`): PostgreSQL only, where one statement settles
    /// or claims a whole batch.
    Texts(Vec<Option<&'a str>>),
    /// The same, `bigint[]`.
    Ints(Vec<Option<i64>>),
}

/// A value that can be a statement's parameter.
pub(crate) trait ToArg {
    fn to_arg(&self) -> Arg<'_>;
}

impl ToArg for str {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}

impl ToArg for std::borrow::Cow<'_, str> {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}

impl ToArg for String {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}

impl ToArg for bool {
    fn to_arg(&self) -> Arg<'_> {
        Arg::Int(i64::from(*self))
    }
}

macro_rules! int_arg {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn to_arg(&self) -> Arg<'_> {
                Arg::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_arg!(i64, i32, u64, u32, u16, usize);

impl<T: ToArg + ?Sized> ToArg for &T {
    fn to_arg(&self) -> Arg<'_> {
        (**self).to_arg()
    }
}

impl<T: ToArg> ToArg for Option<T> {
    fn to_arg(&self) -> Arg<'_> {
        match self {
            Some(v) => v.to_arg(),
            None => Arg::Null,
        }
    }
}

/// A statement's parameters, as `rusqlite::params!` takes them: `args![campaign, key, n]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::ledger::db::ToArg::to_arg(&$a)),*]
    };
}
pub(crate) use args;

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match self {
            Arg::Null => ToSqlOutput::Owned(Value::Null),
            Arg::Int(n) => ToSqlOutput::Owned(Value::Integer(*n)),
            Arg::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Arg::Texts(_) | Arg::Ints(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "an array is a PostgreSQL parameter".into(),
                ));
            }
        })
    }
}

impl tokio_postgres::types::ToSql for Arg<'_> {
    /// An integer fits the parameter's type as PostgreSQL inferred it (`substr`'s length is an
    /// `integer`, a column a `bigint`), as SQLite would take it.
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use tokio_postgres::types::{IsNull, Type};
        match self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Text(s) => s.to_sql(ty, out),
            Arg::Texts(v) => v.to_sql(ty, out),
            Arg::Ints(v) => v.to_sql(ty, out),
            &Arg::Int(n) => match *ty {
                Type::INT2 => i16::try_from(n)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(n)?.to_sql(ty, out),
                Type::BOOL => (n != 0).to_sql(ty, out),
                Type::FLOAT8 => (n as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    n.to_string().as_str().to_sql(ty, out)
                }
                _ => n.to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// One value of a result row, whichever engine read it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Real(f64),
    Text(String),
}

/// A result row.
pub(crate) enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r tokio_postgres::Row),
}

impl<'r> Row<'r> {
    /// The `i`th column, read as `T`.
    pub(crate) fn get<T: Cell>(&self, i: usize) -> DbResult<T> {
        T::from_value(self.value(i)?).map_err(|e| DbError::Value(format!("column {i}: {e}")))
    }

    /// The `i`th column as text without copying it (`None` for NULL).
    pub(crate) fn str(&self, i: usize) -> DbResult<Option<&'r str>> {
        match self {
            Row::Sqlite(r) => r
                .get_ref(i)?
                .as_str_or_null()
                .map_err(|e| DbError::Value(format!("column {i}: {e}"))),
            Row::Postgres(r) => Ok(r.try_get::<_, Option<&'r str>>(i)?),
        }
    }

    fn value(&self, i: usize) -> DbResult<Option<Value>> {
        match self {
            Row::Sqlite(r) => {
                use rusqlite::types::ValueRef;
                Ok(match r.get_ref(i)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(n) => Some(Value::Int(n)),
                    ValueRef::Real(x) => Some(Value::Real(x)),
                    ValueRef::Text(t) => Some(Value::Text(String::from_utf8_lossy(t).into())),
                    ValueRef::Blob(_) => {
                        return Err(DbError::Value(format!("column {i} holds a blob")));
                    }
                })
            }
            Row::Postgres(r) => super::postgres::value(r, i),
        }
    }
}

/// A type a column can be read as.
pub(crate) trait Cell: Sized {
    fn from_value(v: Option<Value>) -> Result<Self, String>;
}

impl<T: Cell> Cell for Option<T> {
    fn from_value(v: Option<Value>) -> Result<Self, String> {
        v.map(|v| T::from_value(Some(v))).transpose()
    }
}

impl Cell for String {
    fn from_value(v: Option<Value>) -> Result<Self, String> {
        match v {
            Some(Value::Text(s)) => Ok(s),
            Some(Value::Int(n)) => Ok(n.to_string()),
            Some(Value::Real(x)) => Ok(x.to_string()),
            None => Err("NULL where text was expected".into()),
        }
    }
}

impl Cell for i64 {
    fn from_value(v: Option<Value>) -> Result<Self, String> {
        match v {
            Some(Value::Int(n)) => Ok(n),
            Some(Value::Real(x)) if x.fract() == 0.0 => Ok(x as i64),
            Some(other) => Err(format!("{other:?} where an integer was expected")),
            None => Err("NULL where an integer was expected".into()),
        }
    }
}

impl Cell for bool {
    fn from_value(v: Option<Value>) -> Result<Self, String> {
        i64::from_value(v).map(|n| n != 0)
    }
}

macro_rules! int_cell {
    ($($t:ty),*) => {$(
        impl Cell for $t {
            fn from_value(v: Option<Value>) -> Result<Self, String> {
                let n = i64::from_value(v)?;
                <$t>::try_from(n).map_err(|_| format!("{n} is out of range"))
            }
        }
    )*};
}
int_cell!(u64, u32, u16, i32, usize);

/// What runs statements: a connection, or a transaction on one.
pub(crate) trait Sql {
    fn engine(&self) -> Engine;

    /// Runs a statement; returns how many rows it changed.
    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> DbResult<u64>;

    /// Calls `f` with each row of a query, as the engine streams them.
    fn for_each(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: &mut dyn FnMut(&Row<'_>) -> DbResult<()>,
    ) -> DbResult<()>;

    /// Every row of a query, each read by `f`.
    fn rows<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut f: impl FnMut(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Vec<T>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.for_each(sql, args, &mut |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of a query, if there is one.
    fn row<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut f: impl FnMut(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Option<T>>
    where
        Self: Sized,
    {
        let mut out = None;
        self.for_each(sql, args, &mut |r| {
            if out.is_none() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs one statement once per set of arguments, in order; returns whether each returned a
    /// row (`RETURNING`). PostgreSQL sends them all before reading an answer.
    fn each(&self, sql: &str, sets: &[Vec<Arg<'_>>]) -> DbResult<Vec<bool>>
    where
        Self: Sized,
    {
        sets.iter()
            .map(|args| Ok(self.row(sql, args, |_| Ok(()))?.is_some()))
            .collect()
    }

    /// The one value of a query that always returns a row (`SELECT COUNT(*) ...`).
    fn value<T: Cell>(&self, sql: &str, args: &[Arg<'_>]) -> DbResult<T>
    where
        Self: Sized,
    {
        self.row(sql, args, |r| r.get(0))?
            .ok_or_else(|| DbError::Value(format!("no row from: {sql}")))
    }
}

fn sqlite_execute(conn: &rusqlite::Connection, sql: &str, args: &[Arg<'_>]) -> DbResult<u64> {
    let mut stmt = conn.prepare_cached(sql)?;
    Ok(stmt.execute(rusqlite::params_from_iter(args.iter()))? as u64)
}

fn sqlite_for_each(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
    f: &mut dyn FnMut(&Row<'_>) -> DbResult<()>,
) -> DbResult<()> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
    while let Some(r) = rows.next()? {
        f(&Row::Sqlite(r))?;
    }
    Ok(())
}

impl Sql for Db {
    fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> DbResult<u64> {
        match self {
            Db::Sqlite(c) => sqlite_execute(c, sql, args),
            Db::Postgres(pg) => pg.execute(sql, args),
        }
    }

    fn for_each(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: &mut dyn FnMut(&Row<'_>) -> DbResult<()>,
    ) -> DbResult<()> {
        match self {
            Db::Sqlite(c) => sqlite_for_each(c, sql, args, f),
            Db::Postgres(pg) => pg.for_each(sql, args, f),
        }
    }
}

impl Sql for Pg {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> DbResult<u64> {
        Pg::execute(self, sql, args)
    }

    fn for_each(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: &mut dyn FnMut(&Row<'_>) -> DbResult<()>,
    ) -> DbResult<()> {
        Pg::for_each(self, sql, args, f)
    }
}

/// How a transaction waits for others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Takes the write lock up front (SQLite's IMMEDIATE): a read that later writes could
    /// otherwise fail at once when another process wrote in between.
    Write,
    /// One consistent view of the ledger for a reader (a report's figures all from one moment).
    Snapshot,
}

/// A transaction: committed by `commit`, rolled back when dropped without it.
pub(crate) enum Tx<'a> {
    Sqlite(rusqlite::Transaction<'a>),
    Postgres(super::postgres::PgTx<'a>),
}

impl Db {
    pub(crate) fn transaction(&self, mode: Mode) -> DbResult<Tx<'_>> {
        match self {
            Db::Sqlite(c) => {
                let tx = match mode {
                    Mode::Write => rusqlite::Transaction::new_unchecked(
                        c,
                        rusqlite::TransactionBehavior::Immediate,
                    )?,
                    Mode::Snapshot => c.unchecked_transaction()?,
                };
                Ok(Tx::Sqlite(tx))
            }
            Db::Postgres(pg) => Ok(Tx::Postgres(pg.begin(mode)?)),
        }
    }
}

impl Tx<'_> {
    pub(crate) fn commit(self) -> DbResult<()> {
        match self {
            Tx::Sqlite(tx) => Ok(tx.commit()?),
            Tx::Postgres(tx) => tx.commit(),
        }
    }
}

impl Sql for Tx<'_> {
    fn engine(&self) -> Engine {
        match self {
            Tx::Sqlite(_) => Engine::Sqlite,
            Tx::Postgres(_) => Engine::Postgres,
        }
    }

    fn each(&self, sql: &str, sets: &[Vec<Arg<'_>>]) -> DbResult<Vec<bool>> {
        match self {
            Tx::Sqlite(tx) => {
                let mut stmt = tx.prepare_cached(sql)?;
                sets.iter()
                    .map(|args| {
                        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
                        Ok(rows.next()?.is_some())
                    })
                    .collect()
            }
            Tx::Postgres(tx) => tx.pg().each_pipelined(sql, sets),
        }
    }

    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> DbResult<u64> {
        match self {
            Tx::Sqlite(tx) => sqlite_execute(tx, sql, args),
            Tx::Postgres(tx) => tx.pg().execute(sql, args),
        }
    }

    fn for_each(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: &mut dyn FnMut(&Row<'_>) -> DbResult<()>,
    ) -> DbResult<()> {
        match self {
            Tx::Sqlite(tx) => sqlite_for_each(tx, sql, args, f),
            Tx::Postgres(tx) => tx.pg().for_each(sql, args, f),
        }
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Db::Sqlite(_) => f.write_str("Db::Sqlite"),
            Db::Postgres(pg) => write!(f, "Db::Postgres({})", pg.place()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_reads_and_writes_through_one_interface() {
        let db = Db::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        db.execute("CREATE TABLE t (a TEXT, b INTEGER)", &[])
            .unwrap();
        let none: Option<u64> = None;
        assert_eq!(
            db.execute("INSERT INTO t VALUES (?1, ?2)", args!["x", 7u64])
                .unwrap(),
            1
        );
        db.execute("INSERT INTO t VALUES (?1, ?2)", args!["y", none])
            .unwrap();
        let rows = db
            .rows("SELECT a, b FROM t ORDER BY a", &[], |r| {
                Ok((r.get::<String>(0)?, r.get::<Option<u64>>(1)?))
            })
            .unwrap();
        assert_eq!(rows, [("x".to_string(), Some(7)), ("y".to_string(), None)]);
        assert_eq!(db.value::<i64>("SELECT COUNT(*) FROM t", &[]).unwrap(), 2);
        let tx = db.transaction(Mode::Write).unwrap();
        tx.execute("DELETE FROM t", &[]).unwrap();
        drop(tx);
        assert_eq!(
            db.value::<i64>("SELECT COUNT(*) FROM t", &[]).unwrap(),
            2,
            "rolled back"
        );
        let err = db.value::<u64>("SELECT a FROM t", &[]).unwrap_err();
        assert!(err.to_string().contains("integer"), "{err}");
    }
}
