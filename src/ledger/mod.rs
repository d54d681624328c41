//! The SQLite ledger: one state per contact per campaign, the source of truth for resume.
//! Reads happen here; every state change goes through the single writer in `writer.rs`.

pub mod journal;
pub mod keys;
pub mod lock;
pub mod replies;
pub mod schema;
pub mod writer;

pub use keys::{KeyId, Known, KnownMap, key_id};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// Contract §3: the states a contact can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Sending,
    Sent,
    Queued,
    Failed,
    Unknown,
    Skipped,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Sending,
        Status::Sent,
        Status::Queued,
        Status::Failed,
        Status::Unknown,
        Status::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Queued => "queued",
            Status::Failed => "failed",
            Status::Unknown => "unknown",
            Status::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// UTC now as `2026-11-26T09:41:47.123Z`.
pub fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(d.as_secs() as i64, d.subsec_millis())
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp (civil-from-days, proleptic Gregorian).
pub fn format_utc(secs: i64, millis: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Opens a connection with the settings every ledger connection uses.
pub fn connect(path: &Path) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the ledger's folder {}", dir.display()))?;
    }
    let mut conn = Connection::open(path)
        .with_context(|| format!("cannot open the ledger {}", path.display()))?;
    // WAL with synchronous=FULL fsyncs the log on every commit: a committed `sending` survives
    // power loss, which is what makes "never sent twice" hold.
    conn.pragma_update(None, "journal_mode", "WAL")
        .and_then(|_| conn.pragma_update(None, "synchronous", "FULL"))
        .and_then(|_| conn.busy_timeout(std::time::Duration::from_secs(10)))
        .with_context(|| format!("cannot configure the ledger {}", path.display()))?;
    schema::migrate(&mut conn)
        .with_context(|| format!("cannot prepare the ledger {}", path.display()))?;
    fold(&mut conn).with_context(|| {
        format!(
            "cannot bring the ledger {} up to date from its journal",
            path.display()
        )
    })?;
    Ok(conn)
}

/// Writes what the journal holds into `contacts` (see `journal`), if it holds anything.
pub fn fold(conn: &mut Connection) -> rusqlite::Result<()> {
    // A plain read first: most opens find nothing to fold and need no write lock.
    if !journal::pending(conn)? {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    journal::fold(&tx, journal::Open::Write)?;
    tx.commit()
}

/// One exported line: contract §2 `export` columns.
#[derive(Debug, Clone, Serialize)]
pub struct ExportRow {
    pub key: String,
    pub row_number: u64,
    pub status: String,
    pub reason: Option<String>,
    pub contact_id: Option<String>,
    pub session_id: Option<String>,
    pub message_ids: Vec<String>,
    pub attempts: u32,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub updated_at: String,
    pub replied_at: Option<String>,
    pub last_reply: Option<String>,
    /// Button payloads the contact clicked, space-separated.
    pub clicked: Option<String>,
}

/// A read handle on the ledger.
pub struct Ledger {
    pub path: PathBuf,
    pub conn: Connection,
}

impl Ledger {
    pub fn open(path: &Path) -> anyhow::Result<Ledger> {
        Ok(Ledger {
            path: path.to_path_buf(),
            conn: connect(path)?,
        })
    }

    /// Registers the campaign (idempotent).
    pub fn ensure_campaign(&self, name: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO campaigns (name, created_at) VALUES (?1, ?2)",
            params![name, now()],
        )?;
        Ok(())
    }

    /// Contacts a killed run left `sending` may have been sent: they become `unknown`.
    pub fn recover_sending(&self, campaign: &str) -> anyhow::Result<usize> {
        Ok(self.conn.execute(
            "UPDATE contacts SET status = 'unknown', reason = 'interrupted',
                error = 'the run stopped while this request may have been on its way', updated_at = ?2
             WHERE campaign = ?1 AND status = 'sending'",
            params![campaign, now()],
        )?)
    }

    /// Every key the ledger holds for a campaign, with its state.
    /// `keys` is how many keys the map should hold without growing (the file's rows, when known).
    pub fn known(&self, campaign: &str, keys: usize) -> anyhow::Result<KnownMap> {
        let count: usize = self.conn.query_row(
            "SELECT COUNT(*) FROM contacts WHERE campaign = ?1",
            [campaign],
            |r| r.get(0),
        )?;
        let mut stmt = self
            .conn
            .prepare("SELECT key, status FROM contacts WHERE campaign = ?1")?;
        let mut rows = stmt.query([campaign])?;
        let mut out = KnownMap::with_capacity(count.max(keys));
        while let Some(r) = rows.next()? {
            let key = r.get_ref(0)?.as_str()?;
            let status = Status::parse(r.get_ref(1)?.as_str()?).unwrap_or(Status::Unknown);
            out.insert(
                key_id(key),
                Known {
                    status: Some(status),
                    first_row: 0,
                },
            );
        }
        Ok(out)
    }

    /// Counts by state, duplicates included as `skipped`.
    pub fn counts(&self, campaign: &str) -> anyhow::Result<HashMap<Status, u64>> {
        // One pass with a counter per state: `GROUP BY status` without an index on it sorts
        // every row first (a quarter of a second for a million).
        let sql = format!(
            "SELECT {} FROM contacts WHERE campaign = ?1",
            Status::ALL
                .iter()
                .map(|s| format!("COUNT(*) FILTER (WHERE status = '{}')", s.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let counted = self.conn.query_row(&sql, [campaign], |r| {
            (0..Status::ALL.len())
                .map(|i| r.get::<_, u64>(i))
                .collect::<rusqlite::Result<Vec<u64>>>()
        })?;
        let mut out: HashMap<Status, u64> = Status::ALL
            .into_iter()
            .zip(counted)
            .filter(|(_, n)| *n > 0)
            .collect();
        let dups: u64 = self.conn.query_row(
            "SELECT COUNT(*) FROM duplicates WHERE campaign = ?1",
            [campaign],
            |r| r.get(0),
        )?;
        *out.entry(Status::Skipped).or_default() += dups;
        Ok(out)
    }

    /// Skipped contacts by reason (duplicates included).
    pub fn skipped_by_reason(&self, campaign: &str) -> anyhow::Result<Vec<(String, u64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT reason, n FROM (
                SELECT COALESCE(reason, '') AS reason, COUNT(*) AS n FROM contacts
                    WHERE campaign = ?1 AND status = 'skipped' GROUP BY 1
                UNION ALL SELECT 'duplicate', COUNT(*) FROM duplicates WHERE campaign = ?1
             ) WHERE n > 0 ORDER BY n DESC",
        )?;
        let rows = stmt.query_map([campaign], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Failed and unknown contacts grouped by reason, most frequent first.
    pub fn errors_by_kind(
        &self,
        campaign: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<(String, String, u64, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT status, COALESCE(reason, ''), COUNT(*), MAX(COALESCE(error, '')) FROM contacts
             WHERE campaign = ?1 AND status IN ('failed', 'unknown')
             GROUP BY status, reason ORDER BY COUNT(*) DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![campaign, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a `cosmocast test` send; it never touches the contact's own state.
    #[allow(clippy::too_many_arguments)]
    pub fn record_test(
        &self,
        campaign: &str,
        row_number: u64,
        phone: &str,
        status: &str,
        message_ids: &str,
        http_status: Option<u16>,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT INTO test_sends (campaign, row_number, phone, status, message_ids, http_status, error, sent_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![campaign, row_number, phone, status, message_ids, http_status, error, now()],
        )?;
        Ok(())
    }

    pub fn has_campaign(&self, campaign: &str) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM campaigns WHERE name = ?1",
                [campaign],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Streams every contact of a campaign in row order, duplicates included.
    pub fn export(
        &self,
        campaign: &str,
        mut each: impl FnMut(ExportRow) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        // Reply columns come from the replies `listen` stored for each contact.
        let mut stmt = self.conn.prepare(
            "SELECT key, row_number, status, reason, contact_id, session_id, message_ids, attempts,
                    http_status, error, updated_at,
                    (SELECT MIN(received_at) FROM replies r WHERE r.campaign = c.campaign AND r.contact_key = c.key),
                    (SELECT text FROM replies r WHERE r.campaign = c.campaign AND r.contact_key = c.key
                        AND text IS NOT NULL ORDER BY received_at DESC, id DESC LIMIT 1),
                    (SELECT group_concat(payload, ' ') FROM (SELECT DISTINCT payload FROM replies r
                        WHERE r.campaign = c.campaign AND r.contact_key = c.key AND payload IS NOT NULL))
             FROM contacts c WHERE campaign = ?1
             UNION ALL
             SELECT key, row_number, 'skipped', 'duplicate', NULL, NULL, NULL, 0, NULL,
                    'same key as row ' || first_row, updated_at, NULL, NULL, NULL
             FROM duplicates WHERE campaign = ?1
             ORDER BY row_number",
        )?;
        let mut rows = stmt.query([campaign])?;
        while let Some(r) = rows.next()? {
            let ids: Option<String> = r.get(6)?;
            each(ExportRow {
                key: r.get(0)?,
                row_number: r.get(1)?,
                status: r.get(2)?,
                reason: r.get(3)?,
                contact_id: r.get(4)?,
                session_id: r.get(5)?,
                message_ids: ids
                    .map(|s| serde_json::from_str(&s).unwrap_or_default())
                    .unwrap_or_default(),
                attempts: r.get(7)?,
                http_status: r.get(8)?,
                error: r.get(9)?,
                replied_at: r.get(11)?,
                last_reply: r.get(12)?,
                clicked: r.get(13)?,
                updated_at: r.get(10)?,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(1_795_686_107, 5), "2026-11-26T09:41:47.005Z");
        assert_eq!(format_utc(951_782_400, 0), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn key_ids_tell_keys_apart() {
        assert_eq!(key_id("C1"), key_id("C1"));
        assert_ne!(key_id("C1"), key_id("C2"));
        assert_ne!(key_id(""), key_id(" "));
        let ids: std::collections::HashSet<KeyId> =
            (0..100_000).map(|i| key_id(&format!("K{i}"))).collect();
        assert_eq!(ids.len(), 100_000);
    }

    #[test]
    fn migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.sqlite");
        let l = Ledger::open(&p).unwrap();
        l.ensure_campaign("c").unwrap();
        drop(l);
        let l = Ledger::open(&p).unwrap();
        assert!(l.has_campaign("c").unwrap());
        let v: usize = l
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 4);
    }
}
