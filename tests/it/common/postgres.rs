//! A PostgreSQL server for the tests, and a fresh database on it for each test.
//!
//! `cargo test` needs no server set up beforehand: the first test that asks for a database
//! starts a throwaway cluster from Debian's `postgresql` binaries (the highest version under
//! /usr/lib/postgresql), `initdb` and `pg_ctl` in a temporary folder, listening on a free port
//! of 127.0.0.1 only, its socket in that folder, trusting whoever connects there. Run as root,
//! the server runs as the `postgres` user, since PostgreSQL refuses root. With
//! `COSMOCAST_TEST_POSTGRES=URL` the tests use that server instead, and drop their databases
//! when they end.
//!
//! The cluster outlives no test process, however it ends: a watchdog (`sh`, in a process group
//! of its own so that Ctrl-C reaches the tests and not it) reads a pipe whose only writer is the
//! test process. When that process is gone, by a normal exit, a panic or `kill -9`, the pipe
//! closes; the watchdog then stops the server (`pg_ctl stop -m immediate`) and removes the
//! folder. A cluster a test owns (`Cluster::start`, for tests that stop the server) goes the
//! same way when it is dropped.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A server to use instead of a throwaway cluster: `postgres://USER[:PASSWORD]@HOST:PORT/DB`,
/// a database the user may connect to, on a server where it may create databases.
pub const ENV: &str = "COSMOCAST_TEST_POSTGRES";

/// The superuser of a throwaway cluster.
const SUPERUSER: &str = "postgres";

/// How long `initdb`, a start or a stop may take, and an admin statement.
const LIMIT: Duration = Duration::from_secs(60);

/// What to do when PostgreSQL is not there.
const INSTALL: &str = "install Debian's `postgresql` package (`apt-get install postgresql`), or set COSMOCAST_TEST_POSTGRES=postgres://USER@HOST:PORT/DB to use a running server";

/// The server every test of this process shares: started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| match std::env::var(ENV) {
        Ok(url) => Ok(Server::Given(url)),
        Err(_) => Cluster::try_start().map(Server::Local),
    });
    match server {
        Ok(server) => server,
        Err(why) => panic!("{why}"),
    }
}

/// A new, empty database of its own for the calling test.
pub fn database() -> Database {
    server().database()
}

/// The server the tests use.
pub enum Server {
    /// A throwaway cluster this process started.
    Local(Cluster),
    /// `COSMOCAST_TEST_POSTGRES`.
    Given(String),
}

impl Server {
    /// A URL of the maintenance database, for `CREATE DATABASE`.
    pub fn admin_url(&self) -> String {
        match self {
            Server::Local(cluster) => cluster.admin_url(),
            Server::Given(url) => url.clone(),
        }
    }

    /// A new database on this server.
    pub fn database(&self) -> Database {
        create_database(self.admin_url(), matches!(self, Server::Given(_)))
    }
}

/// A new database, named after the calling test so that a server's list says whose it is;
/// `drop`: dropped when the test ends.
fn create_database(admin: String, drop: bool) -> Database {
    let name = unique_name();
    admin_sql(&admin, &format!("CREATE DATABASE \"{name}\""))
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    let mut url =
        url::Url::parse(&admin).unwrap_or_else(|e| panic!("{ENV} is no postgres:// URL: {e}"));
    url.set_path(&format!("/{name}"));
    Database {
        url: url.to_string(),
        name,
        admin,
        drop,
    }
}

/// One test's database; dropped with the test on a given server (a throwaway cluster goes
/// whole).
pub struct Database {
    /// `postgres://USER@HOST:PORT/NAME`, for `COSMOCAST_LEDGER`.
    pub url: String,
    pub name: String,
    admin: String,
    drop: bool,
}

impl Database {
    /// Runs statements separated by `;`, failing the test on an error.
    pub fn execute(&self, sql: &str) {
        self.query(sql);
    }

    /// The rows of the last statement, each value as PostgreSQL writes it as text (NULL as an
    /// empty string, as `common::sql` reads SQLite).
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        self.try_query(sql)
            .unwrap_or_else(|e| panic!("on database {}: {e}\n{sql}", self.name))
    }

    /// The same, the error returned.
    pub fn try_query(&self, sql: &str) -> Result<Vec<Vec<String>>, String> {
        admin_sql(&self.url, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if self.drop {
            let _ = admin_sql(
                &self.admin,
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
            );
        }
    }
}

/// `ct_<counter>_<random>_<test name>`, at most 63 bytes (PostgreSQL's limit on names).
fn unique_name() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let test = std::thread::current().name().unwrap_or("test").to_string();
    let mut name = format!("ct_{n}_{:06x}_{test}", fastrand::u32(..0x100_0000));
    name = name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    name.truncate(63);
    name
}

/// Runs `sql` (statements separated by `;`) on `url` in a runtime of its own, on a thread of its
/// own so that a test inside a runtime may call it too; the rows of the last statement.
pub fn admin_sql(url: &str, sql: &str) -> Result<Vec<Vec<String>>, String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            tokio::time::timeout(LIMIT, simple_query(&url, &sql))
                .await
                .map_err(|_| format!("no answer within {LIMIT:?}"))?
        })
    })
    .join()
    .map_err(|_| "the SQL thread panicked".to_string())?
}

async fn simple_query(url: &str, sql: &str) -> Result<Vec<Vec<String>>, String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    // libpq reads PGPASSWORD, tokio-postgres does not.
    if let (None, Ok(password)) = (config.get_password(), std::env::var("PGPASSWORD")) {
        config.password(password);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    tokio::spawn(connection);
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        })?;
    let (mut rows, mut last) = (Vec::new(), Vec::new());
    for message in messages {
        match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => rows.push(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or_default().to_string())
                    .collect(),
            ),
            tokio_postgres::SimpleQueryMessage::CommandComplete(_) => {
                last = std::mem::take(&mut rows);
            }
            _ => {}
        }
    }
    Ok(last)
}

/// A throwaway cluster: its folder holds `data/`, the socket, `server.log` and `commands.log`.
pub struct Cluster {
    bin: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    /// The server's user and group when the tests run as root.
    owner: Option<(u32, u32)>,
    /// Holds the only writer of the pipe the watchdog reads.
    watchdog: Option<Child>,
}

impl Cluster {
    /// A cluster of the calling test's own, for a test that stops and starts the server.
    pub fn start() -> Cluster {
        Cluster::try_start().unwrap_or_else(|why| panic!("{why}"))
    }

    fn try_start() -> Result<Cluster, String> {
        let bin = binaries()?;
        let owner = owner()?;
        let dir = tempfile::Builder::new()
            .prefix("cosmocast-pg-")
            .tempdir()
            .map_err(|e| format!("cannot make a folder for PostgreSQL: {e}"))?
            .keep();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("cannot give {} to postgres: {e}", dir.display()))?;
        }
        let watchdog = watchdog(&bin, &dir, owner)?;
        let mut cluster = Cluster {
            bin,
            dir,
            port: 0,
            owner,
            watchdog: Some(watchdog),
        };
        cluster.initdb()?;
        cluster.start_on_a_free_port()?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", self.port)
    }

    /// A new database on this cluster.
    pub fn database(&self) -> Database {
        create_database(self.admin_url(), false)
    }

    /// Stops the server as an administrator would (`-m fast`: sessions are ended, what was
    /// committed stays); `resume` starts it again on the same port.
    pub fn stop(&self) {
        self.pg_ctl("stopping PostgreSQL", &["-m", "fast", "stop"])
            .unwrap_or_else(|why| panic!("{why}"));
    }

    /// Starts a stopped server again on its port.
    pub fn resume(&self) {
        self.pg_start().unwrap_or_else(|why| panic!("{why}"));
    }

    /// Serves TLS with this certificate and key (PEM) from now on, and refuses connections over
    /// TCP without it (`hostnossl ... reject`); the unix socket stays open to the tests.
    pub fn require_tls(&self, cert: &str, key: &str) {
        let data = self.dir.join("data");
        let write = |name: &str, text: &str| {
            let path = data.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
            }
        };
        write("server.crt", cert);
        write("server.key", key);
        write(
            "pg_hba.conf",
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        );
        let conf = data.join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"\nssl = on\n"))
            .unwrap();
        self.pg_ctl("reloading PostgreSQL with TLS", &["reload"])
            .unwrap_or_else(|why| panic!("{why}"));
        // A reload is asynchronous: wait until the server refuses a connection without TLS.
        let start = Instant::now();
        while admin_sql(&self.admin_url(), "SELECT 1").is_ok() {
            assert!(start.elapsed() < LIMIT, "the server never required TLS");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn initdb(&self) -> Result<(), String> {
        let mut cmd = Command::new(self.bin.join("initdb"));
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale"])
            .arg("--no-sync");
        self.run("initdb", cmd)?;
        // Loopback only; the socket in the folder, not in /run/postgresql. No fsync: a
        // throwaway cluster need not outlive its machine, and a killed server still loses no
        // commit (the WAL is written before a commit returns).
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\nmax_connections = 300\n",
            self.dir.display()
        );
        let path = self.dir.join("data/postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, conf.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Starts the server on a port free a moment ago; another port when some other process
    /// took that one in between.
    fn start_on_a_free_port(&mut self) -> Result<(), String> {
        for _ in 0..3 {
            self.port = super::free_port()?;
            match self.pg_start() {
                Ok(()) => return Ok(()),
                Err(_) if std::net::TcpListener::bind(("127.0.0.1", self.port)).is_err() => {}
                Err(why) => return Err(why),
            }
        }
        Err(format!(
            "PostgreSQL found no free port on 127.0.0.1 in three tries; see {}",
            self.dir.join("server.log").display()
        ))
    }

    fn pg_start(&self) -> Result<(), String> {
        let log = self.dir.join("server.log");
        let port = format!("-p {}", self.port);
        let log_arg = log.to_string_lossy().into_owned();
        self.pg_ctl(
            "starting PostgreSQL",
            &["-l", log_arg.as_str(), "-o", port.as_str(), "start"],
        )
    }

    /// `pg_ctl -D data -w -t 60 ARGS`.
    fn pg_ctl(&self, what: &str, args: &[&str]) -> Result<(), String> {
        let mut cmd = Command::new(self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-w", "-t", &LIMIT.as_secs().to_string()])
            .args(args);
        self.run(what, cmd)
    }

    /// Runs one of PostgreSQL's programs as the server's user, its output appended to
    /// `commands.log`, for at most `LIMIT` (the `-t` of pg_ctl bounds it first).
    fn run(&self, what: &str, mut cmd: Command) -> Result<(), String> {
        let log = self.dir.join("commands.log");
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{what}: cannot start {cmd:?}: {e}"))?;
        let start = Instant::now();
        loop {
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(status) if status.success() => return Ok(()),
                Some(status) => return Err(self.failure(what, &format!("failed ({status})"))),
                None if start.elapsed() > LIMIT + Duration::from_secs(5) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.failure(what, &format!("took more than {LIMIT:?}")));
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// What went wrong, with what the programs and the server wrote.
    fn failure(&self, what: &str, how: &str) -> String {
        let read = |name: &str| {
            std::fs::read_to_string(self.dir.join(name))
                .unwrap_or_else(|e| format!("(cannot read {name}: {e})"))
        };
        format!(
            "{what} in {} {how}.\n--- commands.log ---\n{}\n--- server.log ---\n{}",
            self.dir.display(),
            read("commands.log"),
            read("server.log")
        )
    }
}

impl Drop for Cluster {
    /// Closes the watchdog's pipe and waits while it stops the server and removes the folder.
    fn drop(&mut self) {
        let Some(mut watchdog) = self.watchdog.take() else {
            return;
        };
        drop(watchdog.stdin.take());
        let start = Instant::now();
        while start.elapsed() < LIMIT {
            if !matches!(watchdog.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The highest version's `bin/` under /usr/lib/postgresql that has `initdb` and `pg_ctl`.
fn binaries() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Vec<u32> = name
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "the PostgreSQL tests need PostgreSQL's server programs (initdb, pg_ctl), and {}/*/bin has none: {INSTALL}",
            root.display()
        )
    })
}

/// None when the tests are not root; else the `postgres` user's ids, for PostgreSQL refuses
/// to run as root.
fn owner() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid cannot fail; getpwnam's result is read before any other call to it.
    unsafe {
        if libc::geteuid() != 0 {
            return Ok(None);
        }
        let pw = libc::getpwnam(c"postgres".as_ptr());
        if pw.is_null() {
            return Err(format!(
                "the tests run as root, which PostgreSQL refuses, and there is no `postgres` user to run it as: {INSTALL}"
            ));
        }
        Ok(Some(((*pw).pw_uid, (*pw).pw_gid)))
    }
}

/// Starts the watchdog of the cluster in `dir`: it waits for its standard input to close, then
/// stops the server and removes the folder. Its stdin is the only writer of that pipe (the
/// standard library opens every descriptor close-on-exec), so it closes when this process ends.
fn watchdog(bin: &Path, dir: &Path, owner: Option<(u32, u32)>) -> Result<Child, String> {
    const SCRIPT: &str = r#"trap '' INT HUP QUIT
cat >/dev/null
"$0/pg_ctl" -D "$1/data" -m immediate -w -t 30 stop >/dev/null 2>&1
rm -rf "$1""#;
    let mut cmd = Command::new("sh");
    cmd.args(["-c", SCRIPT])
        .arg(bin)
        .arg(dir)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid);
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start the watchdog of the PostgreSQL cluster: {e}"))
}
