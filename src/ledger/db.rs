//! One SQL interface over the ledger's two engines, SQLite and PostgreSQL. The ledger's queries
//! are written once, in the SQL both engines read (`?N` placeholders, `ON CONFLICT`,
//! `RETURNING`, `COUNT(*) FILTER`, `CAST(... AS BIGINT)`); only this module and `postgres.rs`
//! know which engine answers. Values cross it as `Arg` (to the engine) and `Row` (back).

use std::fmt;

use super::postgres::Pg;
pub(crate) use super::sql::{Arg, Cell, DbError, DbResult, Mode, Row, args};

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

impl Tx<'_> {
    /// Runs one statement once per set of arguments, in order; returns whether each found a
    /// row: a query returned one, a change changed one. PostgreSQL sends them all before
    /// reading an answer.
    pub(crate) fn each(&self, sql: &str, sets: &[Vec<Arg<'_>>]) -> DbResult<Vec<bool>> {
        match self {
            Tx::Sqlite(tx) => {
                let mut stmt = tx.prepare_cached(sql)?;
                let query = stmt.column_count() > 0;
                sets.iter()
                    .map(|args| {
                        let args = rusqlite::params_from_iter(args.iter());
                        if query {
                            Ok(stmt.query(args)?.next()?.is_some())
                        } else {
                            Ok(stmt.execute(args)? > 0)
                        }
                    })
                    .collect()
            }
            Tx::Postgres(tx) => tx.pg().each_pipelined(sql, sets),
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
