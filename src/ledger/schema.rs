//! The ledger's schema as numbered migrations, applied in order when a ledger is opened for
//! writing. `PRAGMA user_version` records how many have been applied.

use rusqlite::{Connection, Transaction};

/// One migration: SQL, or code for what SQL alone cannot do.
enum Migration {
    Sql(&'static str),
    Code(fn(&Transaction<'_>) -> rusqlite::Result<()>),
}

use Migration::{Code, Sql};

/// Each entry is one migration; never edit one that has shipped, append a new one.
const MIGRATIONS: &[Migration] = &[
    // 1: campaigns, one state per contact per campaign, duplicate rows, test sends.
    Sql("CREATE TABLE campaigns (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL
    );
    CREATE TABLE contacts (
        campaign TEXT NOT NULL,
        key TEXT NOT NULL,
        row_number INTEGER NOT NULL,
        phone TEXT,
        status TEXT NOT NULL CHECK (status IN ('sending','sent','queued','failed','unknown','skipped')),
        reason TEXT,
        contact_id TEXT,
        session_id TEXT,
        message_ids TEXT,
        queue_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        http_status INTEGER,
        error TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (campaign, key)
    ) WITHOUT ROWID;
    CREATE INDEX contacts_by_status ON contacts (campaign, status);
    CREATE TABLE duplicates (
        campaign TEXT NOT NULL,
        row_number INTEGER NOT NULL,
        key TEXT NOT NULL,
        first_row INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (campaign, row_number)
    ) WITHOUT ROWID;
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
    );"),
    // 2: replies received by `listen`, the opt-out list, and lookups for attribution.
    Sql("CREATE TABLE replies (
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
        fingerprint TEXT NOT NULL UNIQUE
    );
    CREATE INDEX replies_by_campaign ON replies (campaign, contact_key);
    CREATE TABLE opt_outs (
        phone TEXT PRIMARY KEY,
        added_at TEXT NOT NULL,
        reply_id INTEGER,
        text TEXT
    );
    CREATE INDEX contacts_by_contact_id ON contacts (contact_id, updated_at);
    CREATE INDEX contacts_by_phone ON contacts (phone, updated_at);"),
    // 3: cheaper writes, the same rows. Every claim and outcome changes `status` and
    // `updated_at`, so indexes over them were rewritten twice per contact: attribution now finds
    // the few rows of one contact id or phone and orders those. Only recovery looks up by state,
    // once per run: a scan (a fraction of a second for a million contacts) costs less than an
    // index entry written and deleted for every message. The state's CHECK with IN made SQLite
    // build a temporary table on every write: it becomes a chain of comparisons, which takes
    // rebuilding the table.
    Sql("CREATE TABLE contacts_v3 (
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
        PRIMARY KEY (campaign, key)
    ) WITHOUT ROWID;
    INSERT INTO contacts_v3 SELECT campaign, key, row_number, phone, status, reason, contact_id,
        session_id, message_ids, queue_id, attempts, http_status, error, updated_at FROM contacts;
    DROP TABLE contacts;
    ALTER TABLE contacts_v3 RENAME TO contacts;
    CREATE INDEX contacts_by_contact_id ON contacts (contact_id) WHERE contact_id IS NOT NULL;
    CREATE INDEX contacts_by_phone ON contacts (phone) WHERE phone IS NOT NULL;"),
    // 4: a journal of each commit's changes as one binary row, folded into `contacts` later
    // (dropped by 5; `legacy.rs` reads what a killed run left in it).
    Sql("CREATE TABLE journal (
        seq INTEGER PRIMARY KEY,
        campaign TEXT NOT NULL,
        ts TEXT NOT NULL,
        ops BLOB NOT NULL
    );"),
    // 5: the plain ledger: what the journal holds goes into `contacts`, and every commit writes
    // there directly from now on.
    Code(drop_journal),
    // 6: each campaign's identity (what a later run must not change silently: the key template,
    // the endpoint, the channel type), and the runs.
    Sql("ALTER TABLE campaigns ADD COLUMN key_template TEXT;
    ALTER TABLE campaigns ADD COLUMN endpoint TEXT;
    ALTER TABLE campaigns ADD COLUMN channel TEXT;
    ALTER TABLE campaigns ADD COLUMN identity_at TEXT;
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        campaign TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        stopped TEXT,
        exit_code INTEGER,
        requests INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_by_campaign ON runs (campaign, id);"),
    // 7: a reply's fingerprint is no longer unique: a body that names neither the provider's
    // message id nor its time is a repeat only within minutes of the one stored (see
    // `ledger/replies.rs`), so the same "ok" sent again later is stored again. SQLite cannot drop
    // a UNIQUE constraint: the table is rebuilt, ids kept (`opt_outs.reply_id` points at them).
    Sql("CREATE TABLE replies_v7 (
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
        provider_time TEXT
    );
    INSERT INTO replies_v7 (id, received_at, campaign, contact_key, contact_id, phone, type, text,
        payload, raw, fingerprint)
        SELECT id, received_at, campaign, contact_key, contact_id, phone, type, text, payload, raw,
            fingerprint FROM replies;
    DROP TABLE replies;
    ALTER TABLE replies_v7 RENAME TO replies;
    CREATE INDEX replies_by_campaign ON replies (campaign, contact_key);
    CREATE INDEX replies_by_fingerprint ON replies (fingerprint);"),
    // 8: the workspace. The opt-out list becomes a suppression list people edit (where each
    // entry came from, the campaign a reply answered, a note) with the history of removals; a
    // run records the campaign file it came from; every claim takes a slot of its channel's
    // rolling 24-hour budget, the channel known by a fingerprint of its id (never the id), and
    // each campaign's declared limit is kept so that the smallest applies to all.
    Sql("ALTER TABLE opt_outs ADD COLUMN source TEXT NOT NULL DEFAULT 'reply';
    ALTER TABLE opt_outs ADD COLUMN campaign TEXT;
    ALTER TABLE opt_outs ADD COLUMN note TEXT;
    UPDATE opt_outs SET campaign = (SELECT r.campaign FROM replies r WHERE r.id = opt_outs.reply_id);
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
    ALTER TABLE runs ADD COLUMN campaign_file TEXT;
    ALTER TABLE runs ADD COLUMN messages TEXT;
    ALTER TABLE replies ADD COLUMN opt_out INTEGER NOT NULL DEFAULT 0;
    UPDATE replies SET opt_out = 1 WHERE id IN (SELECT reply_id FROM opt_outs);
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
    DELETE FROM contacts WHERE status = 'skipped' AND reason = 'invalid';
    CREATE TABLE channel_limits (
        channel TEXT NOT NULL,
        campaign TEXT NOT NULL,
        daily_limit INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (channel, campaign)
    ) WITHOUT ROWID;"),
    // 9: how many message ids the API's answer held; `message_ids` keeps the first 100 of them
    // (an answer may list any number, and a contact's row stays small).
    Sql("ALTER TABLE contacts ADD COLUMN message_count INTEGER;"),
];

fn drop_journal(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    super::legacy::apply_journal(tx)?;
    tx.execute_batch("DROP TABLE IF EXISTS journal;")
}

/// The schema version this cosmocast writes.
pub(crate) const VERSION: usize = MIGRATIONS.len();

pub(crate) fn version(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the schema up to date inside one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_to(conn, VERSION)
}

/// Applies the migrations up to `target` (tests build older ledgers with it).
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
    for m in MIGRATIONS.get(found..target).unwrap_or_default() {
        match m {
            Sql(sql) => tx.execute_batch(sql)?,
            Code(f) => f(&tx)?,
        }
    }
    tx.pragma_update(None, "user_version", target.max(found))?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_2_ledger_keeps_its_contacts() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 2).unwrap();
        conn.execute_batch(
            "INSERT INTO contacts (campaign, key, row_number, phone, status, contact_id, attempts, updated_at)
             VALUES ('c', 'k1', 2, '5511', 'sent', 'ct-1', 1, 't'), ('c', 'k2', 3, NULL, 'sending', NULL, 1, 't')",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows: Vec<(String, String, Option<String>)> = conn
            .prepare("SELECT key, status, contact_id FROM contacts ORDER BY key")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("k1".into(), "sent".into(), Some("ct-1".into())),
                ("k2".into(), "sending".into(), None)
            ]
        );
        let bad = conn.execute(
            "INSERT INTO contacts (campaign, key, row_number, status, updated_at) VALUES ('c', 'k3', 4, 'lost', 't')",
            [],
        );
        assert!(bad.is_err(), "the state is still checked");
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT key FROM contacts WHERE phone = '5511'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("contacts_by_phone"), "{plan}");
        assert_eq!(version(&conn).unwrap(), VERSION);
    }

    #[test]
    fn replies_keep_their_rows_and_ids_and_may_repeat_a_fingerprint() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, VERSION - 1).unwrap();
        conn.execute_batch(
            "INSERT INTO replies (id, received_at, campaign, contact_key, phone, text, raw, fingerprint)
             VALUES (7, 't1', 'c', 'k1', '5511', 'Stop', '{}', 'f1'), (9, 't2', NULL, NULL, NULL, 'hi', '{\"a\":1}', 'f2');
             INSERT INTO opt_outs (phone, added_at, reply_id, text) VALUES ('5511', 't1', 7, 'Stop');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows: Vec<(i64, String, Option<String>, String)> = conn
            .prepare("SELECT id, received_at, campaign, fingerprint FROM replies ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                (7, "t1".into(), Some("c".into()), "f1".into()),
                (9, "t2".into(), None, "f2".into())
            ]
        );
        let opted: String = conn
            .query_row(
                "SELECT r.text FROM opt_outs o JOIN replies r ON r.id = o.reply_id",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(opted, "Stop");
        conn.execute(
            "INSERT INTO replies (received_at, raw, fingerprint) VALUES ('t3', '{}', 'f1')",
            [],
        )
        .expect("a fingerprint may repeat");
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
