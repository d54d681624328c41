//! The ledger on PostgreSQL: one database that a listener and runs on several hosts share.
//!
//! `tokio-postgres` talks to the server; each connection's protocol is driven by a thread of its
//! own, so the ledger's callers (the writer thread, commands inside the main runtime) wait on a
//! statement as they wait on SQLite: by blocking. TLS is rustls: `sslmode=require` verifies the
//! server's certificate against the system's roots, or the `sslrootcert` file the URL names.
//! The password (from the URL or `PGPASSWORD`) is never part of what is shown: `Target`'s
//! Display is `postgres://user@host:port/db`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{StreamExt, pin_mut};
use tokio_postgres::{Client, Statement};

use super::sql::{Arg, Cell, DbError, DbResult, Mode, Row, describe};

/// Where a PostgreSQL ledger is, as the URL named it.
#[derive(Clone)]
pub(crate) struct Target {
    config: tokio_postgres::Config,
    /// `sslrootcert`: the certificate(s) the server's must chain to, instead of the system's.
    root_cert: Option<String>,
    /// The schema the ledger's tables live in: the rehearsal's (`cosmocast_sandbox`), or the
    /// connection's default (`public`).
    pub(crate) schema: Option<String>,
}

/// The schema a `--sandbox` rehearsal keeps its ledger in, in the workspace's database.
pub(crate) const SANDBOX_SCHEMA: &str = "cosmocast_sandbox";

/// Whether `s` names a PostgreSQL ledger (a URL's scheme is read in any case).
pub(crate) fn is_url(s: &str) -> bool {
    ["postgres://", "postgresql://"].iter().any(|scheme| {
        s.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    })
}

/// Whether `s` is written like a URL (`scheme:/…`) though no PostgreSQL one: a mistyped
/// scheme (`pg://`, `postgres:/`, `postgresql+psycopg2://`), not a file's path.
pub(crate) fn looks_like_a_url(s: &str) -> bool {
    let scheme = s
        .find(":/")
        .map(|end| &s[..end])
        .filter(|sc| !sc.is_empty());
    scheme.is_some_and(|sc| {
        sc.starts_with(|c: char| c.is_ascii_alphabetic())
            && sc
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// `s` with the password of its `user:password@` hidden, for a message.
pub(crate) fn without_password(s: &str) -> String {
    let start = s.find(":/").map_or(0, |i| i + 1);
    let start = start + s[start..].chars().take_while(|&c| c == '/').count();
    let Some(at) = s[start..].find('@').map(|i| start + i) else {
        return s.to_string();
    };
    match s[start..at].find(':') {
        Some(colon) => format!("{}:***{}", &s[..start + colon], &s[at..]),
        None => s.to_string(),
    }
}

impl Target {
    /// Reads a `postgres://` URL. The password may also come from `PGPASSWORD`.
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        let mut parsed = url::Url::parse(url).map_err(|e| {
            format!("the ledger URL is not a URL ({e}): write it as postgres://user@host:5432/db")
        })?;
        // `sslrootcert` is read here (tokio-postgres does not know it); the other parameters
        // are left as written, their escapes too (`%20` is a space to libpq, where re-encoding
        // would write `+`, which it keeps).
        let mut root_cert = None;
        let query = parsed.query().unwrap_or_default().to_string();
        let kept: Vec<&str> = query
            .split('&')
            .filter(|part| !part.is_empty())
            .filter(
                |part| match url::form_urlencoded::parse(part.as_bytes()).next() {
                    Some((k, v)) if k == "sslrootcert" => {
                        root_cert = Some(v.into_owned());
                        false
                    }
                    _ => true,
                },
            )
            .collect();
        parsed.set_query((!kept.is_empty()).then(|| kept.join("&")).as_deref());
        let mut config: tokio_postgres::Config = parsed.as_str().parse().map_err(|e| {
            format!(
                "cannot read the ledger URL {}: {e} (options: sslmode=disable|prefer|require, sslrootcert=FILE)",
                shown(&parsed)
            )
        })?;
        if config.get_password().is_none()
            && let Some(p) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty())
        {
            config.password(p.to_string_lossy().into_owned());
        }
        if config.get_user().is_none() {
            config.user(whoami());
        }
        if config.get_dbname().is_none() {
            let user = config.get_user().unwrap_or("postgres").to_string();
            config.dbname(user);
        }
        // A server that stops answering is noticed within seconds, not at the kernel's two hours.
        config
            .connect_timeout(Duration::from_secs(10))
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(8))
            .application_name("cosmocast");
        let target = Target {
            config,
            root_cert,
            schema: None,
        };
        if let Some(p) = target.password() {
            crate::redact::register(&p);
        }
        Ok(target)
    }

    /// The password, for the redaction set.
    fn password(&self) -> Option<String> {
        self.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// The same database with the rehearsal's schema.
    pub(crate) fn sandbox(&self) -> Target {
        Target {
            schema: Some(SANDBOX_SCHEMA.to_string()),
            ..self.clone()
        }
    }

    fn host(&self) -> String {
        match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        }
    }

    /// A number that names this database's campaign `name` for advisory locks.
    pub(crate) fn lock_key(name: &str) -> i64 {
        let d = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&d.as_ref()[..8]);
        i64::from_be_bytes(b)
    }
}

/// The URL without its password or options.
fn shown(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or("localhost");
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    let user = match u.username() {
        "" => String::new(),
        user => format!("{user}@"),
    };
    format!("postgres://{user}{host}{port}{}", u.path())
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.config.get_user().unwrap_or("postgres"),
            self.host(),
            self.config.get_ports().first().copied().unwrap_or(5432),
            self.config.get_dbname().unwrap_or("")
        )?;
        if let Some(s) = &self.schema {
            write!(f, " (schema {s})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn whoami() -> String {
    std::env::var("PGUSER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "postgres".into())
}

/// The rustls configuration `sslmode=require` verifies the server with.
fn tls(target: &Target) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &target.root_cert {
        Some(file) => {
            let pem =
                std::fs::read(file).map_err(|e| format!("cannot read sslrootcert {file}: {e}"))?;
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert: rustls::pki_types::CertificateDer<'static> =
                    cert.map_err(|e| format!("sslrootcert {file} is no PEM certificate: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {file}: {e}"))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A connection to the PostgreSQL ledger.
pub(crate) struct Pg {
    client: Client,
    target: Target,
    /// Statements prepared on this connection, by their SQL as the ledger writes it.
    statements: Mutex<HashMap<String, Statement>>,
}

impl Pg {
    /// Connects, with a thread that drives the connection until the client is dropped.
    pub(crate) fn connect(target: &Target) -> Result<Pg, String> {
        let tls = tls(target)?;
        let config = target.config.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match config.connect(tls).await {
                        Ok((client, connection)) => {
                            let _ = tx.send(Ok(client));
                            let _ = connection.await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(describe(&e)));
                        }
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        let client = rx
            .recv()
            .map_err(|_| "the connection thread stopped".to_string())?
            .map_err(|e| format!("cannot connect to the ledger {target}: {e}"))?;
        let pg = Pg {
            client,
            target: target.clone(),
            statements: Mutex::new(HashMap::new()),
        };
        // The schema is created by `migrate`, a writer's: a reader finds it or not, and a
        // role that may only read can read.
        if let Some(schema) = &target.schema {
            pg.batch(&format!("SET search_path TO {schema}"))
                .map_err(|e| format!("cannot use the schema {schema} of {target}: {e}"))?;
        }
        Ok(pg)
    }

    pub(crate) fn place(&self) -> &Target {
        &self.target
    }

    fn statement(&self, sql: &str) -> DbResult<Statement> {
        let mut cache = self.statements.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(sql) {
            return Ok(s.clone());
        }
        let s = futures_executor::block_on(self.client.prepare(&placeholders(sql)))?;
        cache.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// A refusal for want of a privilege, told with the ledger it came from and what to do:
    /// the server's words alone ("permission denied for table campaigns") name neither.
    fn named<T>(&self, result: DbResult<T>) -> DbResult<T> {
        match result {
            Err(DbError::Postgres(e))
                if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                let role = self.target.config.get_user().unwrap_or("postgres");
                Err(DbError::Value(format!(
                    "the ledger's database {} refused the role `{role}`: {} — this command writes the ledger: use a role that may create and write its tables (the one that created them, or one granted ALL on them and on their schema)",
                    self.target,
                    describe(&e)
                )))
            }
            other => other,
        }
    }

    pub(crate) fn execute(&self, sql: &str, args: &[Arg<'_>]) -> DbResult<u64> {
        let stmt = self.statement(sql)?;
        self.named(
            futures_executor::block_on(self.client.execute_raw(&stmt, args.iter()))
                .map_err(DbError::from),
        )
    }

    pub(crate) fn for_each(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        f: &mut dyn FnMut(&Row<'_>) -> DbResult<()>,
    ) -> DbResult<()> {
        let stmt = self.statement(sql)?;
        self.named(futures_executor::block_on(async {
            let rows = self.client.query_raw(&stmt, args.iter()).await?;
            pin_mut!(rows);
            while let Some(row) = rows.next().await {
                f(&Row::Postgres(&row?))?;
            }
            Ok(())
        }))
    }

    /// The first column of a query's first row.
    fn first<T: Cell>(&self, sql: &str) -> DbResult<Option<T>> {
        let mut out = None;
        self.for_each(sql, &[], &mut |r| {
            if out.is_none() {
                out = Some(r.get(0)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Runs one statement once per set of arguments, pipelined: every request is sent before
    /// the first answer is read, so the lot costs one round trip, run in order. Returns whether
    /// each found a row: a query returned one, a change changed one.
    pub(crate) fn each_pipelined(&self, sql: &str, sets: &[Vec<Arg<'_>>]) -> DbResult<Vec<bool>> {
        let stmt = self.statement(sql)?;
        let query = !stmt.columns().is_empty();
        self.named(self.pipelined(&stmt, query, sets))
    }

    fn pipelined(
        &self,
        stmt: &Statement,
        query: bool,
        sets: &[Vec<Arg<'_>>],
    ) -> DbResult<Vec<bool>> {
        futures_executor::block_on(futures_util::future::try_join_all(sets.iter().map(
            |args| async move {
                if !query {
                    return Ok(self.client.execute_raw(stmt, args.iter()).await? > 0);
                }
                let rows = self.client.query_raw(stmt, args.iter()).await?;
                pin_mut!(rows);
                let mut any = false;
                while let Some(row) = rows.next().await {
                    row?;
                    any = true;
                }
                Ok::<bool, DbError>(any)
            },
        )))
    }

    pub(crate) fn batch(&self, sql: &str) -> DbResult<()> {
        self.named(
            futures_executor::block_on(self.client.batch_execute(sql)).map_err(DbError::from),
        )
    }

    pub(crate) fn begin(&self, mode: Mode) -> DbResult<PgTx<'_>> {
        self.batch(match mode {
            Mode::Write => "BEGIN",
            Mode::Snapshot => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        Ok(PgTx {
            pg: self,
            done: false,
        })
    }
}

/// A transaction on a `Pg`, rolled back when dropped uncommitted.
pub(crate) struct PgTx<'a> {
    pg: &'a Pg,
    done: bool,
}

impl PgTx<'_> {
    pub(crate) fn pg(&self) -> &Pg {
        self.pg
    }

    pub(crate) fn commit(mut self) -> DbResult<()> {
        self.done = true;
        self.pg.batch("COMMIT")
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.pg.batch("ROLLBACK");
        }
    }
}

/// The numbered migrations, applied in order; never edit one that has shipped, append one.
const MIGRATIONS: &[&str] = &[
    include_str!("postgres/0001.sql"),
    include_str!("postgres/0002.sql"),
    include_str!("postgres/0003.sql"),
    include_str!("postgres/0004.sql"),
];

/// The schema version this cosmocast writes.
pub(crate) const VERSION: usize = MIGRATIONS.len();

/// An advisory lock every migration takes, so that workers starting together migrate once.
const MIGRATION_LOCK: i64 = 0x636f_736d_0000_0001;

/// The ledger's schema version in the connection's schema; `None` when it holds no ledger.
pub(crate) fn schema_version(pg: &Pg) -> DbResult<Option<usize>> {
    if pg.first::<bool>("SELECT to_regclass('cosmocast_meta') IS NOT NULL")? != Some(true) {
        return Ok(None);
    }
    let version: Option<usize> = pg.first("SELECT schema_version FROM cosmocast_meta")?;
    Ok(Some(version.unwrap_or(0)))
}

/// The tables the migrations create, as they name them.
fn ledger_tables() -> Vec<&'static str> {
    super::sql::created_tables(MIGRATIONS.iter().copied())
}

/// Refuses to set a ledger up beside tables of the same names that it did not create (another
/// application's `contacts`, say): its migration would fail halfway through a statement, with
/// PostgreSQL's bare "already exists".
pub(crate) fn refuse_strangers(pg: &Pg) -> DbResult<()> {
    let mut taken = Vec::new();
    pg.for_each(
        "SELECT table_name FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_name = ANY(?1::text[])
         ORDER BY table_name",
        &[Arg::Texts(ledger_tables().into_iter().map(Some).collect())],
        &mut |r| {
            taken.push(r.get::<String>(0)?);
            Ok(())
        },
    )?;
    if taken.is_empty() {
        return Ok(());
    }
    Err(DbError::Value(super::sql::strangers_found(
        &taken,
        "give cosmocast a database of its own (CREATE DATABASE cosmocast), or point COSMOCAST_LEDGER (or --ledger) at one",
    )))
}

/// Brings the schema up to date, each migration in the transaction that records its number.
pub(crate) fn migrate(pg: &Pg) -> DbResult<()> {
    if let Some(schema) = &pg.target.schema {
        pg.batch(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))?;
    }
    pg.execute("SELECT pg_advisory_lock(?1)", &[Arg::Int(MIGRATION_LOCK)])?;
    let result = (|| {
        let found = match schema_version(pg)? {
            Some(found) => found,
            None => {
                refuse_strangers(pg)?;
                0
            }
        };
        if found > VERSION {
            return Err(DbError::Value(format!(
                "this ledger has schema version {found}, newer than this cosmocast knows ({VERSION}); upgrade cosmocast"
            )));
        }
        for (i, script) in MIGRATIONS.iter().enumerate().skip(found) {
            let tx = pg.begin(Mode::Write)?;
            pg.batch(script)?;
            pg.execute(
                "UPDATE cosmocast_meta SET schema_version = ?1",
                &[Arg::Int(i as i64 + 1)],
            )?;
            tx.commit()?;
        }
        Ok(())
    })();
    // A failed migration's cause comes first, even when the unlock fails too.
    let unlocked = pg.execute("SELECT pg_advisory_unlock(?1)", &[Arg::Int(MIGRATION_LOCK)]);
    result.and(unlocked.map(drop))
}

/// SQL as the ledger writes it (`?1`) in PostgreSQL's placeholders (`$1`); quoted text is left.
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheme_in_any_case_is_postgresql_and_a_mistyped_one_is_refused_without_its_password() {
        assert!(is_url("Postgres://a:b@h/db") && is_url("POSTGRESQL://a@h/db"));
        assert!(!is_url("postgres:/a:b@h/db") && !is_url("ledger.sqlite"));
        for typo in [
            "pg://a:b@h/db",
            "postgres:/a:b@h/db",
            "postgresql+psycopg2://a:b@h/db",
        ] {
            assert!(looks_like_a_url(typo), "{typo}");
        }
        for path in [
            "ledger.sqlite",
            "/srv/ledger.sqlite",
            "./a:b/c",
            ":/x",
            "1x:/y",
        ] {
            assert!(!looks_like_a_url(path), "{path}");
        }
        assert_eq!(
            without_password("pg://ana:s3cret@h:1/db"),
            "pg://ana:***@h:1/db"
        );
        assert_eq!(
            without_password("postgres:/ana:s3cret@h/db"),
            "postgres:/ana:***@h/db"
        );
        assert_eq!(without_password("pg://ana@h/db"), "pg://ana@h/db");
        assert_eq!(without_password("pg://h/db"), "pg://h/db");
    }

    #[test]
    fn the_ledgers_tables_are_read_from_the_migrations() {
        let tables = ledger_tables();
        assert_eq!(tables.first(), Some(&"cosmocast_meta"));
        for t in ["contacts", "runs", "replies", "opt_outs", "channel_slots"] {
            assert!(tables.contains(&t), "{t} in {tables:?}");
        }
        assert!(
            tables
                .iter()
                .all(|t| t.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            placeholders("SELECT '?' , x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?' , x FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn the_password_is_never_shown() {
        let t =
            Target::parse("postgres://ana:s3cret@db.example:6543/ledger?sslmode=disable").unwrap();
        let shown = format!("{t} {t:?} {}", t.sandbox());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(t.to_string(), "postgres://ana@db.example:6543/ledger");
        assert_eq!(t.password().as_deref(), Some("s3cret"));
        let err = Target::parse("postgres://ana:s3cret@db.example/ledger?sslmode=bogus")
            .err()
            .unwrap();
        assert!(!err.contains("s3cret") && err.contains("sslmode"), "{err}");
    }

    #[test]
    fn escaped_parameters_reach_the_driver_as_written() {
        let t = Target::parse(
            "postgres://ana@db/ledger?options=-c%20statement_timeout%3D5000&sslrootcert=/etc/ca.pem&password=a%20b",
        )
        .unwrap();
        assert_eq!(t.config.get_options(), Some("-c statement_timeout=5000"));
        assert_eq!(t.config.get_password(), Some(&b"a b"[..]));
        assert_eq!(t.root_cert.as_deref(), Some("/etc/ca.pem"));
    }
}
