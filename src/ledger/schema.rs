//! The ledger's schema as numbered migrations, applied in order when a ledger is opened for
//! writing. `PRAGMA user_version` records how many have been applied, and `PRAGMA
//! application_id` marks the file as a ledger of a released cosmocast: development builds
//! before 0.1.0 numbered their own schemas from 1 to 9, and none of their ledgers is read.

use rusqlite::Connection;

use super::locate::ENV;

/// Each entry is one migration, an SQL script run in the transaction that records its number;
/// never edit one that has shipped, append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the ledger.
    "CREATE TABLE campaigns (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        key_template TEXT,
        endpoint TEXT,
        channel TEXT,
        identity_at TEXT
    );
    -- Every claim and outcome changes `status` and `updated_at`, so no index covers them (it
    -- would be rewritten twice per contact): attribution finds the few rows of one contact id
    -- or phone and orders those, and recovery scans by state once per run. The state's CHECK is
    -- a chain of comparisons: with IN, SQLite builds a temporary table on every write.
    CREATE TABLE contacts (
        campaign TEXT NOT NULL,
        key TEXT NOT NULL,
        row_number INTEGER NOT NULL,
        phone TEXT,
        status TEXT NOT NULL CHECK (status = 'sending' OR status = 'sent' OR status = 'queued'
            OR status = 'failed' OR status = 'unknown' OR status = 'skipped'),
        reason TEXT,
        contact_id TEXT,
        session_id TEXT,
        message_ids TEXT,
        queue_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        http_status INTEGER,
        error TEXT,
        updated_at TEXT NOT NULL,
        message_count INTEGER,
        PRIMARY KEY (campaign, key)
    ) WITHOUT ROWID;
    CREATE INDEX contacts_by_contact_id ON contacts (contact_id) WHERE contact_id IS NOT NULL;
    CREATE INDEX contacts_by_phone ON contacts (phone) WHERE phone IS NOT NULL;
    CREATE TABLE duplicates (
        campaign TEXT NOT NULL,
        row_number INTEGER NOT NULL,
        key TEXT NOT NULL,
        first_row INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (campaign, row_number)
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        campaign TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        stopped TEXT,
        exit_code INTEGER,
        requests INTEGER NOT NULL DEFAULT 0,
        campaign_file TEXT,
        messages TEXT
    );
    CREATE INDEX runs_by_campaign ON runs (campaign, id);
    CREATE TABLE test_sends (
        id INTEGER PRIMARY KEY,
        campaign TEXT NOT NULL,
        row_number INTEGER NOT NULL,
        phone TEXT NOT NULL,
        status TEXT NOT NULL,
        message_ids TEXT,
        http_status INTEGER,
        error TEXT,
        sent_at TEXT NOT NULL
    );
    -- A fingerprint may repeat: a body that names neither the provider's message id nor its
    -- time is a repeat only within minutes of the one stored (see `webhook/store.rs`).
    CREATE TABLE replies (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        campaign TEXT,
        contact_key TEXT,
        contact_id TEXT,
        phone TEXT,
        type TEXT,
        text TEXT,
        payload TEXT,
        raw TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        message_id TEXT,
        provider_time TEXT,
        opt_out INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX replies_by_campaign ON replies (campaign, contact_key);
    CREATE INDEX replies_by_fingerprint ON replies (fingerprint);
    -- The suppression list people edit, and the entries taken off it.
    CREATE TABLE opt_outs (
        phone TEXT PRIMARY KEY,
        added_at TEXT NOT NULL,
        reply_id INTEGER,
        text TEXT,
        source TEXT NOT NULL DEFAULT 'reply',
        campaign TEXT,
        note TEXT
    );
    CREATE TABLE opt_out_history (
        id INTEGER PRIMARY KEY,
        phone TEXT NOT NULL,
        source TEXT NOT NULL,
        added_at TEXT NOT NULL,
        campaign TEXT,
        note TEXT,
        reply_id INTEGER,
        text TEXT,
        removed_at TEXT NOT NULL,
        removed_note TEXT
    );
    CREATE INDEX opt_out_history_by_phone ON opt_out_history (phone);
    -- Every claim takes a slot of its channel's rolling 24-hour budget, the channel known by a
    -- fingerprint of its id (never the id); each campaign's declared limit is kept so that the
    -- smallest applies to all.
    CREATE TABLE channel_slots (
        channel TEXT NOT NULL,
        phone TEXT NOT NULL,
        taken_at TEXT NOT NULL,
        campaign TEXT NOT NULL,
        key TEXT NOT NULL,
        PRIMARY KEY (channel, phone, taken_at)
    ) WITHOUT ROWID;
    CREATE INDEX channel_slots_by_time ON channel_slots (channel, taken_at);
    CREATE INDEX channel_slots_by_key ON channel_slots (campaign, key);
    CREATE TABLE channel_limits (
        channel TEXT NOT NULL,
        campaign TEXT NOT NULL,
        daily_limit INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (channel, campaign)
    ) WITHOUT ROWID;",
    // 2: several workers on one campaign (a PostgreSQL ledger's `run --join`). A run renews
    // its lease while it lives; a claim names the run that made it, so that only the claims
    // of a run whose lease ran out are taken for interrupted.
    "ALTER TABLE runs ADD COLUMN host TEXT;
    ALTER TABLE runs ADD COLUMN lease_until TEXT;
    ALTER TABLE runs ADD COLUMN joined INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE contacts ADD COLUMN run_id INTEGER;",
    // 3: the channel a run sends through (the fingerprint of its id, as `channel_slots` has
    // it). Claims on a channel no campaign limits take no slot; when a limit first appears,
    // the contacts of the channel's runs in the window become its slots (`budget.rs`).
    "ALTER TABLE runs ADD COLUMN channel TEXT;",
];

/// The schema version this cosmocast writes.
pub(crate) const VERSION: usize = MIGRATIONS.len();

/// `PRAGMA application_id` of a ledger: "cosm" in ASCII. Development builds before 0.1.0 left
/// it 0.
const APPLICATION_ID: i32 = 0x636f_736d;

/// What a file's header says about its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Written by this cosmocast or an earlier release (0: an empty file): the migrations from
    /// there on apply.
    Known(usize),
    /// Written by a later cosmocast: readable as far as this one knows the tables, never written.
    Newer(usize),
    /// Numbered without the mark of a release: a development build before 0.1.0 wrote it, in a
    /// schema of its own, so it is neither read nor written.
    Development(usize),
}

/// Reads the schema version and the mark of the file (any SQLite file answers; one that is no
/// SQLite file fails here).
pub(crate) fn found(conn: &Connection) -> rusqlite::Result<Found> {
    let version = version(conn)?;
    let id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    Ok(if version > 0 && id != APPLICATION_ID {
        Found::Development(version)
    } else if version > VERSION {
        Found::Newer(version)
    } else {
        Found::Known(version)
    })
}

/// What to do with a ledger a development build wrote, in words.
pub(crate) fn development_build(version: usize) -> String {
    format!(
        "it was written by a development build of cosmocast before 0.1.0 (schema {version}), whose ledgers this cosmocast neither reads nor writes — start a new ledger: move this file aside, or point {ENV} (or --ledger) at another file"
    )
}

fn version(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Why a ledger's schema was not brought up to date.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MigrateError {
    #[error("{}", development_build(*.0))]
    Development(usize),
    #[error(
        "this ledger has schema version {0}, newer than this cosmocast knows ({VERSION}); upgrade cosmocast"
    )]
    Newer(usize),
    #[error(
        "{}",
        super::sql::strangers_found(.0, &format!("start a new ledger: point {ENV} (or --ledger) at another file"))
    )]
    Strangers(Vec<String>),
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
}

/// The tables the migrations create, as they name them.
fn ledger_tables() -> Vec<&'static str> {
    super::sql::created_tables(MIGRATIONS.iter().copied())
}

/// The tables of a file without a ledger (schema 0) that have the names of the ledger's own:
/// another application's, which a migration would fail on, halfway.
fn strangers(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let ours = ledger_tables();
    let mut stmt =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for name in names {
        let name = name?;
        if ours.contains(&name.as_str()) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Brings the schema up to date inside one transaction; refuses a ledger of a later cosmocast
/// or of a development build.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    match found(conn)? {
        Found::Development(v) => return Err(MigrateError::Development(v)),
        Found::Newer(v) => return Err(MigrateError::Newer(v)),
        Found::Known(v) if v >= VERSION => return Ok(()),
        Found::Known(_) => {}
    }
    // Another process (a run and `listen`) may be migrating the same file: take the write lock,
    // then read the version again.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    if found == 0 {
        let strangers = strangers(&tx)?;
        if !strangers.is_empty() {
            return Err(MigrateError::Strangers(strangers));
        }
    }
    for sql in MIGRATIONS.get(found..VERSION).unwrap_or_default() {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", VERSION.max(found))?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    Ok(tx.commit()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_tables_of_the_ledgers_names_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE contacts (id INTEGER PRIMARY KEY); CREATE TABLE notes (t TEXT)",
        )
        .unwrap();
        let e = migrate(&mut conn).unwrap_err();
        assert!(
            matches!(&e, MigrateError::Strangers(t) if t == &["contacts"]),
            "{e}"
        );
        assert!(
            e.to_string().contains("(contacts); nothing was changed"),
            "{e}"
        );
        assert_eq!(found(&conn).unwrap(), Found::Known(0));
        assert!(ledger_tables().contains(&"channel_limits"));
    }

    #[test]
    fn a_new_ledger_is_current_and_marked() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(found(&conn).unwrap(), Found::Known(0));
        migrate(&mut conn).unwrap();
        assert_eq!(found(&conn).unwrap(), Found::Known(VERSION));
        migrate(&mut conn).expect("a current ledger is left as it is");
    }

    #[test]
    fn contacts_keep_their_state_checked_and_are_found_by_phone() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO contacts (campaign, key, row_number, phone, status, updated_at)
             VALUES ('c', 'k1', 2, '5511', 'sent', 't')",
            [],
        )
        .unwrap();
        let bad = conn.execute(
            "INSERT INTO contacts (campaign, key, row_number, status, updated_at) VALUES ('c', 'k3', 4, 'lost', 't')",
            [],
        );
        assert!(bad.is_err(), "the state is checked");
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT key FROM contacts WHERE phone = '5511'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("contacts_by_phone"), "{plan}");
    }

    #[test]
    fn a_reply_may_repeat_a_fingerprint_found_by_its_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        for at in ["t1", "t2"] {
            conn.execute(
                "INSERT INTO replies (received_at, raw, fingerprint) VALUES (?1, '{}', 'f1')",
                [at],
            )
            .expect("a fingerprint may repeat");
        }
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT 1 FROM replies WHERE fingerprint = 'f1'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("replies_by_fingerprint"), "{plan}");
    }

    #[test]
    fn a_development_or_newer_ledger_is_refused_untouched() {
        for (version, id, expect) in [
            (9, 0, "development build"),
            (VERSION + 1, APPLICATION_ID, "upgrade cosmocast"),
        ] {
            let mut conn = Connection::open_in_memory().unwrap();
            conn.execute_batch("CREATE TABLE contacts (key TEXT);")
                .unwrap();
            conn.pragma_update(None, "user_version", version).unwrap();
            conn.pragma_update(None, "application_id", id).unwrap();
            let err = migrate(&mut conn).unwrap_err().to_string();
            assert!(err.contains(expect), "{err}");
            assert_eq!(super::version(&conn).unwrap(), version);
            let tables: i64 = conn
                .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
                .unwrap();
            assert_eq!(tables, 1, "nothing was created");
        }
    }
}
