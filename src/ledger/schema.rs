//! The ledger's schema as numbered migrations, applied in order when a ledger is opened for
//! writing. `PRAGMA user_version` records how many have been applied.

use rusqlite::Connection;

/// One migration: an SQL script, run in the transaction that records its number.
struct Migration(&'static str);

/// Each entry is one migration; never edit one that has shipped, append a new one.
const MIGRATIONS: &[Migration] = &[
    // 1: the ledger.
    Migration(
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
    -- time is a repeat only within minutes of the one stored (see `ledger/replies.rs`).
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
    ),
];

/// The schema version this cosmocast writes.
pub(crate) const VERSION: usize = MIGRATIONS.len();

pub(crate) fn version(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the schema up to date inside one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_to(conn, VERSION)
}

/// Applies the migrations up to `target`.
pub(crate) fn migrate_to(conn: &mut Connection, target: usize) -> rusqlite::Result<()> {
    let found = version(conn)?;
    if found > VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "this ledger has schema version {found}, newer than this cosmocast knows ({VERSION}); upgrade cosmocast"
            )),
        ));
    }
    if found >= target {
        return Ok(());
    }
    // Another process (a run and `listen`) may be migrating the same file: take the write lock,
    // then read the version again.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    for Migration(sql) in MIGRATIONS.get(found..target).unwrap_or_default() {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", target.max(found))?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_ledger_is_current() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(version(&conn).unwrap(), 0);
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), VERSION);
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
}
