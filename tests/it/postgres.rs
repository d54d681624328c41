//! The PostgreSQL ledger's groundwork: the schema of `src/ledger/postgres/0001.sql` held equal
//! to the SQLite ledger the real binary writes (tables, columns, types, keys, indexes, and the
//! README's queries answering alike), and the test server of `common::postgres` (a database of
//! its own for each test; a cluster that stops, resumes, and goes with its process however
//! that process ends). The tests that stop a server start a cluster of their own from the
//! installed binaries, whatever `COSMOCAST_TEST_POSTGRES` says.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::postgres::{self, Cluster};
use crate::common::*;

/// The PostgreSQL ledger's migrations, in order.
const MIGRATIONS: &[&str] = &[
    include_str!("../../src/ledger/postgres/0001.sql"),
    include_str!("../../src/ledger/postgres/0002.sql"),
    include_str!("../../src/ledger/postgres/0003.sql"),
    include_str!("../../src/ledger/postgres/0004.sql"),
];

/// The SQLite INTEGER columns that hold a flag (0 or 1): BOOLEAN on PostgreSQL.
const FLAGS: &[(&str, &str)] = &[("replies", "opt_out"), ("runs", "joined")];

/// A ledger the real binary wrote: campaign `welcome-2026-12` (the README's queries name it),
/// some contacts sent, some failed, one a duplicate.
fn sqlite_ledger() -> (Fixture, TestServer) {
    let server = TestServer::start(Arc::new(|n, body| match n % 3 {
        1 => (
            400,
            r#"{"status":"error","message":"window closed"}"#.into(),
        ),
        _ => answer_sent(n, body),
    }));
    let f = Fixture::new();
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in 1..=7 {
        csv.push_str(&format!("C{i},Name{i},55119{i:08}\n"));
    }
    csv.push_str("C1,Again,5511900000001\n");
    f.write("contacts.csv", &csv).write(
        "campaign.yaml",
        &campaign_yaml(
            &server.url(),
            "  - type: text\n    text: \"Hi {{ first_name }}\"\n",
            "",
        )
        .replace("name: test-campaign", "name: welcome-2026-12")
        .replace(
            "contacts.csv\n",
            "contacts.csv\n  key: \"{{ customer_id }}\"\n",
        ),
    );
    let out = f.run();
    assert!(f.ledger().exists(), "no ledger: {}", stderr_of(&out));
    assert!(server.count() >= 6, "{}", stderr_of(&out));
    (f, server)
}

/// A fresh database with the migrations applied, as the ledger applies them: each in one
/// transaction that records its number.
fn migrated() -> postgres::Database {
    let db = postgres::database();
    for (i, script) in MIGRATIONS.iter().enumerate() {
        db.execute(&format!(
            "BEGIN;\n{script}\nUPDATE cosmocast_meta SET schema_version = {};\nCOMMIT;",
            i + 1
        ));
    }
    db
}

/// The SQLite ledger's schema as PostgreSQL should read it back: one line per column, primary
/// key and index.
fn expected_schema(ledger: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    let tables = strings(
        &conn,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    );
    let mut lines = Vec::new();
    for t in &tables {
        let columns = rows(
            &conn,
            &format!(
                "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{t}') ORDER BY cid"
            ),
        );
        let pk: Vec<&Vec<Option<String>>> = {
            let mut pk: Vec<_> = columns
                .iter()
                .filter(|c| c[4].as_deref() != Some("0"))
                .collect();
            pk.sort_by_key(|c| c[4].clone().unwrap().parse::<u32>().unwrap());
            pk
        };
        // A single INTEGER PRIMARY KEY is SQLite's rowid: an identity column on PostgreSQL.
        let rowid = match pk.as_slice() {
            [c] if c[1].as_deref() == Some("INTEGER") => c[0].clone(),
            _ => None,
        };
        for c in &columns {
            let name = c[0].clone().unwrap();
            let flag = FLAGS.contains(&(t.as_str(), name.as_str()));
            let ty = match (c[1].as_deref(), flag) {
                (Some("INTEGER"), true) => "boolean",
                (Some("INTEGER"), false) => "bigint",
                (Some("TEXT"), _) => "text collate C",
                (other, _) => panic!("{t}.{name}: no PostgreSQL type for SQLite's {other:?}"),
            };
            let not_null = c[2].as_deref() == Some("1") || c[4].as_deref() != Some("0");
            let default = match (c[3].as_deref(), flag) {
                (None, _) => String::new(),
                (Some("0"), true) => " default false".into(),
                (Some(d), _) => format!(" default {d}"),
            };
            let identity = if rowid.as_ref() == Some(&name) {
                " identity"
            } else {
                ""
            };
            let null = if not_null { " not null" } else { "" };
            lines.push(format!("{t}.{name}: {ty}{null}{default}{identity}"));
        }
        let pk: Vec<String> = pk.iter().map(|c| c[0].clone().unwrap()).collect();
        lines.push(format!("{t} primary key ({})", pk.join(", ")));
        lines.extend(sqlite_indexes(&conn, t));
    }
    lines
}

/// A table's indexes other than its primary key: name, columns, uniqueness and predicate.
fn sqlite_indexes(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let list =
        format!("SELECT name, \"unique\", origin FROM pragma_index_list('{table}') ORDER BY name");
    for index in rows(conn, &list) {
        let name = index[0].clone().unwrap();
        if index[2].as_deref() == Some("pk") {
            continue;
        }
        let columns = strings(
            conn,
            &format!("SELECT name FROM pragma_index_info('{name}') ORDER BY seqno"),
        );
        let sql = strings(
            conn,
            &format!("SELECT sql FROM sqlite_master WHERE name = '{name}'"),
        );
        let predicate = sql[0]
            .split_once(" WHERE ")
            .map(|(_, p)| format!(" where ({p})"))
            .unwrap_or_default();
        let unique = if index[1].as_deref() == Some("1") {
            " unique"
        } else {
            ""
        };
        lines.push(format!(
            "{table} index {name} ({}){unique}{predicate}",
            columns.join(", ")
        ));
    }
    lines
}

/// The same lines, read from PostgreSQL's catalogue.
fn actual_schema(db: &postgres::Database) -> Vec<String> {
    let tables = db.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()
         AND table_type = 'BASE TABLE' AND table_name <> 'cosmocast_meta' ORDER BY table_name",
    );
    let mut lines = Vec::new();
    for t in tables.iter().map(|r| &r[0]) {
        for c in db.query(&format!(
            "SELECT column_name, data_type, collation_name, is_nullable, column_default, is_identity
             FROM information_schema.columns WHERE table_schema = current_schema()
             AND table_name = '{t}' ORDER BY ordinal_position"
        )) {
            let collate = if c[2].is_empty() {
                String::new()
            } else {
                format!(" collate {}", c[2])
            };
            let null = if c[3] == "NO" { " not null" } else { "" };
            // PostgreSQL writes a text default with its type: 'reply'::text.
            let default = match c[4].trim_end_matches("::text") {
                "" => String::new(),
                d => format!(" default {d}"),
            };
            let identity = if c[5] == "YES" { " identity" } else { "" };
            lines.push(format!(
                "{t}.{}: {}{collate}{null}{default}{identity}",
                c[0], c[1]
            ));
        }
        let pk = db.query(&format!(
            "SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) ON TRUE
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = '{t}'::regclass AND i.indisprimary ORDER BY k.n"
        ));
        let pk: Vec<&str> = pk.iter().map(|r| r[0].as_str()).collect();
        lines.push(format!("{t} primary key ({})", pk.join(", ")));
        lines.extend(db.query(&format!(
            "SELECT '{t} index ' || c.relname || ' (' || (SELECT string_agg(a.attname, ', ' ORDER BY k.n)
                 FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) || ')'
             || CASE WHEN i.indisunique THEN ' unique' ELSE '' END
             || coalesce(' where ' || pg_get_expr(i.indpred, i.indrelid), '')
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE i.indrelid = '{t}'::regclass AND NOT i.indisprimary ORDER BY c.relname"
        ))
        .into_iter()
        .map(|r| r[0].clone()));
    }
    lines
}

fn rows(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut stmt = conn.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => None,
                rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                rusqlite::types::ValueRef::Blob(_) => panic!("a blob in {sql}"),
            })
            .collect())
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn strings(conn: &rusqlite::Connection, sql: &str) -> Vec<String> {
    rows(conn, sql)
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect()
}

#[test]
fn the_migrations_give_the_tables_columns_keys_and_indexes_of_the_sqlite_ledger() {
    let (f, _server) = sqlite_ledger();
    let db = migrated();
    let expected = expected_schema(&f.ledger());
    assert!(
        expected.len() > 60,
        "the SQLite ledger has its tables: {expected:#?}"
    );
    let actual = actual_schema(&db);
    let lacking: Vec<&String> = expected.iter().filter(|l| !actual.contains(l)).collect();
    let extra: Vec<&String> = actual.iter().filter(|l| !expected.contains(l)).collect();
    assert!(
        lacking.is_empty() && extra.is_empty(),
        "PostgreSQL lacks {lacking:#?}\nand has instead {extra:#?}"
    );
    assert_eq!(actual, expected, "the columns come in the same order");

    // Each engine numbers its own migrations: PostgreSQL's third adds a function alone.
    assert_eq!(f.sql("PRAGMA user_version"), [["3"]]);
    let version = db.query("SELECT schema_version FROM cosmocast_meta");
    assert_eq!(
        version,
        [[MIGRATIONS.len().to_string()]],
        "the database records the migrations applied"
    );
    let second = db.try_query("INSERT INTO cosmocast_meta (schema_version) VALUES (2)");
    assert!(
        second.unwrap_err().starts_with("23505"),
        "the version is one row"
    );

    let lost = db.try_query(
        "INSERT INTO contacts (campaign, key, row_number, status, updated_at) VALUES ('c', 'k', 1, 'lost', 't')",
    );
    assert!(
        lost.unwrap_err().starts_with("23514"),
        "a contact's state is checked"
    );
}

/// How often `contacts` was read whole, once every other session of the database has ended
/// (a session's counts reach the statistics as it ends).
fn contacts_scans(db: &postgres::Database) -> u64 {
    wait_until("the runs' sessions to end", Duration::from_secs(10), || {
        db.query(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )[0][0]
            == "0"
    });
    db.query(
        "SELECT pg_stat_clear_snapshot(), seq_scan FROM pg_stat_user_tables WHERE relname = 'contacts'",
    )[0][1]
        .parse()
        .unwrap()
}

/// A run finds the contacts it writes by their keys however small `contacts` was when it
/// planned its statements. After a first campaign of a few rows, analysed as autovacuum would,
/// a generic plan scanned the whole table for each contact of the next, larger campaign.
#[test]
fn a_run_after_a_small_analysed_campaign_finds_contacts_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = crate::common::sandbox::Sandbox::start(dir.path(), &[]);
    let f = crate::common::sandbox::fixture(&sandbox.url, 60, "").on(Backend::Postgres);
    let out = f.run();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let db = f.pg.as_ref().unwrap();
    db.execute("VACUUM ANALYZE contacts");
    let before = contacts_scans(db);

    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in 1..=1500 {
        csv.push_str(&format!("K{i},Name{i},55119{:08}\n", 50_000_000 + i));
    }
    let yaml = std::fs::read_to_string(f.campaign()).unwrap();
    f.write("contacts.csv", &csv).write(
        "campaign.yaml",
        &yaml.replace("name: test-campaign", "name: the-larger-one"),
    );
    let out = f.run();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        f.sql(
            "SELECT COUNT(*) FROM contacts WHERE campaign = 'the-larger-one' AND status = 'sent'"
        ),
        [["1500"]]
    );
    let scans = contacts_scans(db) - before;
    assert!(
        scans < 50,
        "1,500 contacts cost {scans} reads of the whole table"
    );
}

/// A database that holds another application's `contacts` is left as it is, and the message
/// says what to do; nothing is sent.
/// A role that may only read the ledger: the commands that read it work, and one that writes
/// is refused naming the database, the role and what to do (not the server's bare words).
#[test]
fn a_read_only_role_is_refused_writing_naming_the_database_and_role() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = crate::common::sandbox::Sandbox::start(dir.path(), &[]);
    let f = crate::common::sandbox::fixture(&sandbox.url, 3, "").on(Backend::Postgres);
    assert_eq!(f.run().status.code(), Some(0));
    let db = f.pg.as_ref().unwrap();
    let role = format!("reader_{}", &db.name[..db.name.len().min(40)]);
    db.execute(&format!(
        "CREATE ROLE \"{role}\" LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{role}\""
    ));
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();
    let as_reader = |args: &[&str]| {
        f.cmd()
            .env("COSMOCAST_LEDGER", url.as_str())
            .args(args)
            .output()
            .unwrap()
    };
    let status = as_reader(&["status", "campaign.yaml"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr_of(&status));
    let add = as_reader(&["optouts", "add", "+5511987654321"]);
    let err = stderr_of(&add);
    assert_eq!(add.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("refused the role `{role}`"))
            && err.contains(&db.name)
            && err.contains("permission denied for table opt_outs")
            && err.contains("may create and write its tables"),
        "{err}"
    );
    // A listener with that role is refused at start, rather than answering every post 500.
    let listen = as_reader_listen(&f, url.as_str());
    let err = stderr_of(&listen);
    assert_eq!(listen.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot store a reply") && err.contains(&format!("refused the role `{role}`")),
        "{err}"
    );
    db.execute(&format!(
        "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM \"{role}\"; DROP ROLE \"{role}\""
    ));
}

/// `listen` on the ledger at `url`, which must stop on its own.
fn as_reader_listen(f: &Fixture, url: &str) -> std::process::Output {
    f.cmd()
        .env("COSMOCAST_LEDGER", url)
        .env("COSMOCAST_WEBHOOK_SECRET", crate::common::server::SECRET)
        .args(["listen", "--addr", "127.0.0.1:0"])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap()
}

#[test]
fn a_database_with_tables_of_the_same_names_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = crate::common::sandbox::Sandbox::start(dir.path(), &[]);
    let f = crate::common::sandbox::fixture(&sandbox.url, 3, "").on(Backend::Postgres);
    let db = f.pg.as_ref().unwrap();
    db.execute("CREATE TABLE contacts (id INT PRIMARY KEY, name TEXT); INSERT INTO contacts VALUES (1, 'theirs')");
    let out = f.run();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("tables cosmocast did not create")
            && err.contains("(contacts)")
            && err.contains("a database of its own")
            && err.contains(db.url.rsplit('/').next().unwrap()),
        "{err}"
    );
    assert!(crate::common::sandbox::accepted(dir.path()).is_empty());
    // status says so too, rather than that the campaign has not run yet.
    let status = f.cmd().args(["status", "campaign.yaml"]).output().unwrap();
    let err = stderr_of(&status);
    assert_eq!(status.status.code(), Some(1), "{err}");
    assert!(err.contains("tables cosmocast did not create"), "{err}");
    assert_eq!(
        db.query("SELECT to_regclass('cosmocast_meta') IS NULL, (SELECT name FROM contacts)"),
        [["t", "theirs"]]
    );
}

#[test]
fn reading_a_rehearsal_that_never_ran_creates_nothing() {
    let f = crate::common::sandbox::fixture("http://127.0.0.1:9/messages/v1/send", 2, "")
        .on(Backend::Postgres);
    let db = f.pg.as_ref().unwrap();
    let sandbox_schema = "SELECT count(*) FROM pg_namespace WHERE nspname = 'cosmocast_sandbox'";
    for command in ["status", "export"] {
        let out = f
            .cmd()
            .args([command, "campaign.yaml", "--sandbox"])
            .output()
            .unwrap();
        assert!(
            stderr_of(&out).contains("no ledger") || stdout_of(&out).contains("not run yet"),
            "{command}: {}{}",
            stdout_of(&out),
            stderr_of(&out)
        );
        assert_eq!(db.query(sandbox_schema), [["0"]], "{command} created it");
    }
    // A rehearsal's run creates it.
    f.cmd()
        .args(["run", "campaign.yaml", "--sandbox", "--progress", "none"])
        .assert()
        .code(0);
    assert_eq!(db.query(sandbox_schema), [["1"]]);
}

/// Copies every row of the SQLite ledger into the PostgreSQL one, each value as a literal that
/// PostgreSQL types by its column (so a flag's 0 or 1 becomes a boolean).
fn copy_rows(ledger: &std::path::Path, db: &postgres::Database) -> usize {
    let conn = rusqlite::Connection::open(ledger).unwrap();
    let tables = strings(
        &conn,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    );
    let mut copied = 0;
    for t in tables {
        for row in rows(&conn, &format!("SELECT * FROM {t}")) {
            let values: Vec<String> = row
                .iter()
                .map(|v| match v {
                    None => "NULL".into(),
                    Some(v) => format!("'{}'", v.replace('\'', "''")),
                })
                .collect();
            db.execute(&format!("INSERT INTO {t} VALUES ({})", values.join(", ")));
            copied += 1;
        }
    }
    copied
}

/// The statements of the README's "Three queries" block.
fn readme_queries() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let block = readme
        .split_once("Three queries:\n\n```sql\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("README.md has its three example queries")
        .0;
    let sql: String = block
        .lines()
        .filter(|l| !l.starts_with("--"))
        .map(|l| format!("{l}\n"))
        .collect();
    sql.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn the_readmes_queries_answer_alike_on_both_ledgers() {
    let (f, _server) = sqlite_ledger();
    let db = migrated();
    assert!(copy_rows(&f.ledger(), &db) >= 8, "the ledger holds the run");
    let queries = readme_queries();
    assert_eq!(queries.len(), 3, "{queries:#?}");
    for query in &queries {
        let mut on_sqlite = f.sql(query);
        let mut on_postgres = db.query(query);
        assert!(!on_sqlite.is_empty(), "{query} answers something");
        // Rows grouped without an ORDER BY come in either order.
        on_sqlite.sort();
        on_postgres.sort();
        assert_eq!(on_postgres, on_sqlite, "{query}");
    }
    let states = db.query("SELECT DISTINCT status FROM contacts ORDER BY 1");
    assert_eq!(states, [["failed"], ["sent"]]);
    assert_eq!(
        db.query("SELECT key, first_row FROM duplicates"),
        [["C1", "1"]]
    );
}

#[test]
fn each_test_gets_a_database_of_its_own() {
    let (a, b) = (postgres::database(), postgres::database());
    assert_ne!(a.name, b.name);
    a.execute("CREATE TABLE mine (v TEXT); INSERT INTO mine VALUES ('a')");
    assert_eq!(
        a.query("SELECT current_database(), v FROM mine"),
        [[a.name.clone(), "a".into()]]
    );
    let other = b.try_query("SELECT v FROM mine").unwrap_err();
    assert!(other.starts_with("42P01"), "{other}");
    assert_eq!(b.query("SELECT current_database()"), [[b.name.clone()]]);
    let url = url::Url::parse(&a.url).unwrap();
    assert_eq!(
        url.path(),
        format!("/{}", a.name),
        "the URL names the database"
    );
    if let postgres::Server::Local(cluster) = postgres::server() {
        let at = format!("postgres://postgres@127.0.0.1:{}/{}", cluster.port, a.name);
        assert_eq!(a.url, at);
        assert_eq!(a.query("SELECT host(inet_server_addr())"), [["127.0.0.1"]]);
        let listen = a.query("SHOW listen_addresses");
        assert_eq!(listen, [["127.0.0.1"]], "loopback only");
    }
}

#[test]
fn a_cluster_of_a_tests_own_stops_resumes_and_goes_with_it() {
    let cluster = Cluster::start();
    let db = cluster.database();
    db.execute("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('committed')");
    cluster.stop();
    let refused = db.try_query("SELECT 1").unwrap_err();
    assert!(refused.contains("cannot connect"), "{refused}");
    cluster.resume();
    assert_eq!(db.query("SELECT v FROM t"), [["committed"]]);
    let (dir, port) = (cluster.dir.clone(), cluster.port);
    drop(cluster);
    assert!(!dir.exists(), "{} is gone", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server stopped"
    );
}

/// Set in a copy of this test binary that starts the shared cluster and then ends as this
/// variable says: `kill` (waits to be killed) or `panic`.
const CHILD: &str = "COSMOCAST_TEST_POSTGRES_CHILD";

#[test]
fn the_shared_cluster_goes_with_the_test_process_however_it_ends() {
    if let Ok(how) = std::env::var(CHILD) {
        return start_then_end(&how);
    }
    for how in ["kill", "panic"] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "postgres::the_shared_cluster_goes_with_the_test_process_however_it_ends",
            ])
            .args(["--nocapture", "--test-threads", "1"])
            .env(CHILD, how)
            .env_remove(postgres::ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let line = cluster_line(child.stdout.take().unwrap());
        let (dir, port) = line.rsplit_once(' ').unwrap();
        let (dir, port) = (PathBuf::from(dir), port.parse::<u16>().unwrap());
        assert!(dir.join("data").exists(), "{line}");
        if how == "kill" {
            child.kill().unwrap();
        }
        let status = sandbox::wait_with_timeout(&mut child, Duration::from_secs(60));
        assert!(!status.success(), "{how}: {status}");
        wait_until(
            &format!("{} to go ({how})", dir.display()),
            Duration::from_secs(60),
            || !dir.exists(),
        );
        let refused = std::net::TcpStream::connect(("127.0.0.1", port)).is_err();
        assert!(refused, "{how}: the server on port {port} stopped");
    }
}

/// The `DIR PORT` after the child's `cluster ` (libtest writes the test's name before it on the
/// same line); the rest of its output is read to its end.
fn cluster_line(stdout: std::process::ChildStdout) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the child names its cluster within 60 s");
        if let Some((_, found)) = line.split_once("cluster ") {
            return found.to_string();
        }
    }
}

/// The child's part: a database on the shared cluster, the cluster named, then the end.
fn start_then_end(how: &str) {
    let db = postgres::database();
    assert_eq!(db.query("SELECT 1"), [["1"]]);
    let postgres::Server::Local(cluster) = postgres::server() else {
        panic!("{} is set in the child", postgres::ENV);
    };
    println!("cluster {} {}", cluster.dir.display(), cluster.port);
    if how == "panic" {
        panic!("a failing test ends its process");
    }
    // Killed by the parent long before this.
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_listener_outlives_a_restart_of_the_database() {
    let cluster = Cluster::start();
    let db = cluster.database();
    let dir = tempfile::tempdir().unwrap();
    let mut listener = crate::common::server::Server::start_with(
        &["listen", "--addr", "127.0.0.1:0"],
        dir.path(),
        &[("COSMOCAST_LEDGER", std::ffi::OsStr::new(&db.url))],
    );
    let reply = |text: &str| {
        serde_json::json!({
            "contact": {"mobile_phone": "5511987654321"},
            "message": [{"type": "text", "data": {"text": text}}],
        })
        .to_string()
    };
    assert_eq!(post_status(&listener.webhook(), &reply("oi")), 200);
    cluster.stop();
    // While the database is down the delivery is refused, and nothing is lost with it: the
    // sender delivers it again.
    assert_eq!(post_status(&listener.webhook(), &reply("ainda aí?")), 500);
    cluster.resume();
    assert_eq!(post_status(&listener.webhook(), &reply("PARAR")), 200);
    assert_eq!(db.query("SELECT COUNT(*) FROM replies"), [["2"]]);
    assert_eq!(db.query("SELECT phone FROM opt_outs"), [["5511987654321"]]);
    assert_eq!(listener.stop(), Some(0));
    let log = listener.lines().join("\n");
    assert!(log.contains("cannot reach the ledger's database"), "{log}");
    // Its last line does not say every reply was stored.
    assert!(
        log.contains("stopped; 1 delivery answered 500 and not stored")
            && !log.contains("every reply received was stored"),
        "{log}"
    );
}

#[test]
fn a_nul_in_a_reply_is_stored_on_postgres() {
    let db = postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let mut listener = crate::common::server::Server::start_with(
        &["listen", "--addr", "127.0.0.1:0", "--create"],
        dir.path(),
        &[("COSMOCAST_LEDGER", std::ffi::OsStr::new(&db.url))],
    );
    let body = serde_json::json!({
        "contact": {"mobile_phone": "5511987654321"},
        "message": [{"type": "text", "data": {"text": "hello\u{0}world"}}],
    });
    // PostgreSQL's text holds no U+0000: it is kept as U+FFFD rather than refusing the reply.
    assert_eq!(post_status(&listener.webhook(), &body.to_string()), 200);
    assert_eq!(
        db.query("SELECT text FROM replies"),
        [["hello\u{fffd}world"]]
    );
    assert_eq!(listener.stop(), Some(0));
}
