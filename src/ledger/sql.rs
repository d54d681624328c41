//! The values that cross the ledger's SQL interface (`db.rs`), whichever engine answers:
//! statement parameters (`Arg`), result rows (`Row`, read as `Cell`s) and errors (`DbError`).
//! Reading a PostgreSQL value or error lives here too, so that the engines' modules depend on
//! this one and never on each other.

use tokio_postgres::types::Type;

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", describe(.0))]
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
            DbError::Postgres(e) => is_lost(e),
            _ => false,
        }
    }

    /// The transaction lost to a concurrent one (a deadlock between two workers' claims) and
    /// was rolled back: running it again is safe.
    /// The disk that holds the database is full.
    pub(crate) fn is_disk_full(&self) -> bool {
        match self {
            DbError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            DbError::Postgres(e) => e
                .code()
                .is_some_and(|c| *c == tokio_postgres::error::SqlState::DISK_FULL),
            DbError::Value(_) => false,
        }
    }

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

/// The tables migration scripts create (their `CREATE TABLE name` lines), on either engine.
pub(crate) fn created_tables<'a>(scripts: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    scripts
        .into_iter()
        .flat_map(str::lines)
        .filter_map(|line| line.trim_start().strip_prefix("CREATE TABLE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect()
}

/// Why a ledger is not set up where tables of its names already stand that it did not create
/// (another application's `contacts`), and what to do instead (`remedy`).
pub(crate) fn strangers_found(tables: &[String], remedy: &str) -> String {
    format!(
        "it holds tables cosmocast did not create, with the names of its own ({}); nothing was changed — {remedy}",
        tables.join(", ")
    )
}

/// A statement's parameters, as `rusqlite::params!` takes them: `args![campaign, key, n]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::ledger::sql::ToArg::to_arg(&$a)),*]
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

/// Text as PostgreSQL can hold it: its `text` refuses U+0000, which an API's answer, a webhook
/// body or a contact file may carry. Each becomes U+FFFD (as SQLite keeps it, the rest is the
/// same), so that one NUL does not stop a run or lose a reply.
fn pg_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        std::borrow::Cow::Borrowed(s)
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
            Arg::Text(s) => pg_text(s).as_ref().to_sql(ty, out),
            Arg::Texts(v) => {
                let held: Vec<Option<std::borrow::Cow<'_, str>>> =
                    v.iter().map(|s| s.map(pg_text)).collect();
                let texts: Vec<Option<&str>> = held.iter().map(Option::as_deref).collect();
                texts.to_sql(ty, out)
            }
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
            Row::Postgres(r) => pg_value(r, i),
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

/// How a transaction waits for others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Takes the write lock up front (SQLite's IMMEDIATE): a read that later writes could
    /// otherwise fail at once when another process wrote in between.
    Write,
    /// One consistent view of the ledger for a reader (a report's figures all from one moment).
    Snapshot,
}

/// One column of a PostgreSQL row as a `Value`.
pub(crate) fn pg_value(r: &tokio_postgres::Row, i: usize) -> DbResult<Option<Value>> {
    let ty = r
        .columns()
        .get(i)
        .map(|c| c.type_().clone())
        .ok_or_else(|| DbError::Value(format!("no column {i}")))?;
    Ok(match ty {
        Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Type::INT4 => r
            .try_get::<_, Option<i32>>(i)?
            .map(|n| Value::Int(n.into())),
        Type::INT2 => r
            .try_get::<_, Option<i16>>(i)?
            .map(|n| Value::Int(n.into())),
        Type::BOOL => r
            .try_get::<_, Option<bool>>(i)?
            .map(|b| Value::Int(b.into())),
        Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Real),
        Type::FLOAT4 => r
            .try_get::<_, Option<f32>>(i)?
            .map(|x| Value::Real(x.into())),
        _ => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
    })
}

/// A PostgreSQL error as people read it: the server's message and detail, or what happened to
/// the connection.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        },
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// The PostgreSQL connection is gone: closed, broken, or the server shutting down.
pub(crate) fn is_lost(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(c) => {
            *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        }
        None => e.as_db_error().is_none(),
    }
}
