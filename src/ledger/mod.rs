//! The ledger: one state per contact per campaign, the source of truth for resume. It is plain
//! relational SQL, in an SQLite file or a PostgreSQL database with the same tables: `contacts`
//! holds each contact's committed state at every instant, readable by any SQL tool. Everything
//! reaches it through one interface (`db.rs`); reads happen here, and every state change of a
//! run goes through the single writer in `writer.rs`.
//!
//! Commands that only read never create or change anything. An SQLite file is opened read-only:
//! without a write-ahead log beside it the file is opened `immutable` (SQLite would otherwise
//! create its `-wal` and `-shm` files and leave them), and a ledger of an older schema is copied
//! into memory and brought up to date there. A PostgreSQL database without the ledger's tables
//! reads as no ledger yet.

/// The replies that put their phone on the suppression list, whether or not it is still there:
/// a campaign's opt-outs are its history, and taking a phone off the list later does not undo
/// the reply (`opt_out_history` keeps the entry). A subquery for `r.id IN`.
macro_rules! opting_out {
    () => {
        "(SELECT reply_id FROM opt_outs WHERE reply_id IS NOT NULL
          UNION SELECT reply_id FROM opt_out_history WHERE reply_id IS NOT NULL)"
    };
}

pub(crate) mod budget;
pub(crate) mod bulk;
pub(crate) mod changes;
pub(crate) mod db;
pub(crate) mod keys;
pub(crate) mod locate;
pub(crate) mod lock;
pub(crate) mod optouts;
pub(crate) mod phones;
pub(crate) mod postgres;
pub(crate) mod replies;
pub(crate) mod schema;
pub(crate) mod sql;
mod table;
pub(crate) mod workers;
pub(crate) mod writer;

pub(crate) use db::{Db, DbResult, Sql, args};
pub(crate) use keys::{KeyId, KnownMap, key_id};
pub(crate) use locate::Place;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::error::{Exit, Fatal};

/// The states a contact can be in (README: The ledger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Sending,
    Sent,
    Queued,
    Failed,
    Unknown,
    Skipped,
}

impl Status {
    pub(crate) const ALL: [Status; 6] = [
        Status::Sending,
        Status::Sent,
        Status::Queued,
        Status::Failed,
        Status::Unknown,
        Status::Skipped,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Queued => "queued",
            Status::Failed => "failed",
            Status::Unknown => "unknown",
            Status::Skipped => "skipped",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// UTC now as `2026-11-26T09:41:47.123Z` (fixed width, so text order is time order).
pub(crate) fn now() -> String {
    ago(Duration::ZERO)
}

/// The note on a ledger whose schema `version` is past the `known` one.
fn newer(version: usize, known: usize) -> String {
    format!(
        "the ledger was written by a newer cosmocast (schema {version}, this one knows {known}); figures may be incomplete — upgrade cosmocast"
    )
}

/// A ledger timestamp to the minute, as people read it: `2026-11-26 09:41` (UTC).
pub(crate) fn minute(ts: &str) -> String {
    ts.get(..16).unwrap_or(ts).replace('T', " ")
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp.
pub(crate) fn format_utc(secs: i64, millis: u32) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => format!("{}.{millis:03}Z", t.strftime("%Y-%m-%dT%H:%M:%S")),
        Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

/// Unix seconds of a ledger timestamp (`2026-11-26T09:41:47.123Z`).
pub(crate) fn parse_utc(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// The ledger timestamp of `d` ago, to the millisecond (as `updated_at` is written).
pub(crate) fn ago(d: Duration) -> String {
    let t = SystemTime::now()
        .checked_sub(d)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(t.as_secs() as i64, t.subsec_millis())
}

/// Unix seconds now.
pub(crate) fn now_secs() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Opens a connection for writing, bringing the schema up to date (under a lock, on
/// PostgreSQL, so that workers starting together migrate once).
pub(crate) fn connect_write(place: &Place) -> anyhow::Result<Db> {
    match place {
        Place::File(path) => Ok(Db::Sqlite(connect_file(path)?)),
        Place::Postgres(target) => {
            let pg = postgres::Pg::connect(target).map_err(|e| Fatal::new(Exit::CannotRun, e))?;
            postgres::migrate(&pg)
                .with_context(|| format!("cannot prepare the ledger {target}"))?;
            Ok(Db::Postgres(Box::new(pg)))
        }
    }
}

/// `connect_write` for a writer whose every statement finds its rows by an index (the run's
/// writer, the listener's). A prepared statement soon runs on a generic plan, made once with the
/// table's size at that moment: made while `contacts` held a page or two (a first small
/// campaign, analysed), it scans the table for each row however large it grows, until autovacuum
/// next analyses it (a 100,000-row run went at 680 contacts a second rather than 38,000). With
/// scans off, PostgreSQL's plan is the index at any size; SQLite plans each statement anew.
pub(crate) fn connect_by_index(place: &Place) -> anyhow::Result<Db> {
    let db = connect_write(place)?;
    if let Db::Postgres(pg) = &db {
        pg.batch("SET enable_seqscan = off")
            .map_err(|e| anyhow::anyhow!("cannot prepare the ledger {}: {e}", pg.place()))?;
    }
    Ok(db)
}

/// Puts the ledger in WAL mode. Two runs starting together on a new ledger both switch it, and
/// SQLite refuses the second switch at once (busy, without its busy handler) while the first
/// holds its lock: the switch is tried again for up to 10 s, by which time the file is in WAL.
fn into_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            done => return done,
        }
    }
}

/// Opens an SQLite ledger file for writing. The file is created if missing, but never its
/// folder: a mistyped `--ledger` should not grow a tree of folders.
fn connect_file(path: &Path) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        anyhow::bail!(
            "the ledger's folder {} does not exist: create it, or fix --ledger (or COSMOCAST_LEDGER)",
            dir.display()
        );
    }
    refuse_other_than_file(path)?;
    create_owner_only(path)?;
    let mut conn = Connection::open(path)
        .with_context(|| format!("cannot open the ledger {}", path.display()))?;
    // WAL with synchronous=FULL fsyncs the log on every commit: a committed `sending` survives
    // power loss, which is what makes "never sent twice" hold.
    conn.busy_timeout(Duration::from_secs(10))
        .and_then(|_| into_wal(&conn))
        .and_then(|_| conn.pragma_update(None, "synchronous", "FULL"))
        .map_err(|e| not_writable(&e, path))?;
    schema::migrate(&mut conn)
        .with_context(|| format!("cannot prepare the ledger {}", path.display()))?;
    Ok(conn)
}

/// Why a ledger file could not be set up for writing, in words that say what to do: a file or
/// folder that cannot be written (SQLite needs its `-wal` and `-shm` beside the file) is not a
/// file that is no ledger.
fn not_writable(e: &rusqlite::Error, path: &Path) -> anyhow::Error {
    let shown = path.display();
    let code = e.sqlite_error_code();
    match code {
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) => anyhow::anyhow!(
            "cannot write the ledger {shown}: the file or its folder is read-only ({e}); cosmocast writes the file and its -wal and -shm beside it — make them writable by this user, or point --ledger (or {}) at a writable place",
            locate::ENV
        ),
        Some(rusqlite::ErrorCode::DiskFull) => anyhow::anyhow!(
            "cannot write the ledger {shown}: the disk is full — free some space, then run the command again"
        ),
        _ => anyhow::anyhow!("cannot open the ledger {shown}: is it a SQLite file? ({e})"),
    }
}

/// Refuses a ledger path that exists but is no regular file (`/dev/null`, a folder, a FIFO):
/// SQLite would fail on it, or read nothing and write its journal beside it. A symlink to a
/// file is a file.
pub(crate) fn refuse_other_than_file(path: &Path) -> Result<(), Fatal> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "the ledger {} is not a regular file ({}) — point --ledger or {} at a file (it is created if missing)",
                path.display(),
                kind_of(&m.file_type()),
                locate::ENV
            ),
        )),
        _ => Ok(()),
    }
}

/// What a path that is no file is, in words.
fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Creates a missing ledger owner-only (0600, whatever the umask) before SQLite opens it: it
/// holds phones and replies, and SQLite gives its `-wal` and `-shm` files the main file's mode.
/// A ledger of this user's that others may read (copied, or made under a loose umask by another
/// tool) is made owner-only too, with its `-wal` and `-shm`.
fn create_owner_only(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // SAFETY: geteuid(2) cannot fail and touches no memory.
            let me = unsafe { libc::geteuid() };
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.as_os_str().to_owned();
                file.push(suffix);
                let file = std::path::PathBuf::from(file);
                if let Ok(meta) = std::fs::metadata(&file)
                    && meta.is_file()
                    && meta.uid() == me
                    && meta.mode() & 0o077 != 0
                {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                        .with_context(|| format!("cannot make {} owner-only", file.display()))?;
                }
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create the ledger {}", path.display())),
    }
}

/// `path` as an SQLite URI (`file:...`) with the given query.
fn file_uri(path: &Path, query: &str) -> String {
    let mut out = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    format!("{out}?{query}")
}

/// One exported line: the `export` columns of the README's Commands table.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ExportRow {
    pub(crate) key: String,
    pub(crate) row_number: u64,
    pub(crate) status: String,
    pub(crate) reason: Option<String>,
    pub(crate) contact_id: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) message_ids: Vec<String>,
    pub(crate) attempts: u32,
    pub(crate) http_status: Option<u16>,
    pub(crate) error: Option<String>,
    /// Empty for a row the ledger holds nothing of: `null` in JSON, as its other absent
    /// fields are.
    #[serde(serialize_with = "empty_as_null")]
    pub(crate) updated_at: String,
    pub(crate) replied_at: Option<String>,
    pub(crate) last_reply: Option<String>,
    /// Button payloads the contact clicked, space-separated.
    pub(crate) clicked: Option<String>,
    /// When the row's phone went on the suppression list, if it is on it.
    pub(crate) opted_out_at: Option<String>,
    /// The phone as sent (normalised).
    pub(crate) phone: Option<String>,
}

/// An empty text as `null`.
fn empty_as_null<S: serde::Serializer>(text: &str, out: S) -> Result<S::Ok, S::Error> {
    if text.is_empty() {
        out.serialize_none()
    } else {
        out.serialize_str(text)
    }
}

/// What a campaign's first run recorded about it: a later run must not change it silently.
/// (Credentials are no part of it: rotating the token or the channel id changes nothing.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The key template as written, or `default` (the phone, else external_id).
    pub(crate) key_template: String,
    /// scheme://host:port/path
    pub(crate) endpoint: String,
    pub(crate) channel: String,
}

/// A run about to start, as `runs` records it.
pub(crate) struct NewRun<'a> {
    pub(crate) campaign: &'a str,
    /// The campaign file it runs.
    pub(crate) file: &'a Path,
    /// The fingerprint of the messages it sends.
    pub(crate) messages: &'a str,
    /// The fingerprint of the channel it sends through (`budget::fingerprint`).
    pub(crate) channel: &'a str,
    /// One of several workers (`run --join`).
    pub(crate) joined: bool,
}

/// A handle on the ledger.
pub(crate) struct Ledger {
    pub(crate) place: Place,
    pub(crate) db: Db,
    /// What a reader should know about the ledger (an older or newer schema).
    pub(crate) notes: Vec<String>,
}

impl Ledger {
    /// Opens the ledger for a run, creating it (its file, or its tables) if missing.
    pub(crate) fn open_write(place: &Place) -> anyhow::Result<Ledger> {
        Ok(Ledger {
            place: place.clone(),
            db: connect_write(place)?,
            notes: Vec::new(),
        })
    }

    /// Opens the ledger without writing to it or beside it; `None` when there is none yet (no
    /// file, or a database without the ledger's tables).
    pub(crate) fn open_read(place: &Place) -> anyhow::Result<Option<Ledger>> {
        match place {
            Place::File(path) => open_read_file(path),
            Place::Postgres(target) => {
                let pg =
                    postgres::Pg::connect(target).map_err(|e| Fatal::new(Exit::CannotRun, e))?;
                let Some(version) = postgres::schema_version(&pg)
                    .with_context(|| format!("cannot read the ledger {target}"))?
                else {
                    // No ledger here yet, unless another application's tables stand where its
                    // would: then it is no place for one, as `run` would say.
                    postgres::refuse_strangers(&pg)
                        .map_err(|e| Fatal::new(Exit::CannotRun, format!("{target}: {e}")))?;
                    return Ok(None);
                };
                let notes = (version > postgres::VERSION)
                    .then(|| newer(version, postgres::VERSION))
                    .into_iter()
                    .collect();
                Ok(Some(Ledger {
                    place: place.clone(),
                    db: Db::Postgres(Box::new(pg)),
                    notes,
                }))
            }
        }
    }

    /// Registers the campaign (idempotent).
    pub(crate) fn ensure_campaign(&self, name: &str) -> anyhow::Result<()> {
        self.db.execute(
            "INSERT INTO campaigns (name, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            args![name, now()],
        )?;
        Ok(())
    }

    pub(crate) fn has_campaign(&self, campaign: &str) -> anyhow::Result<bool> {
        Ok(self
            .db
            .row(
                "SELECT 1 FROM campaigns WHERE name = ?1",
                args![campaign],
                |_| Ok(()),
            )?
            .is_some())
    }

    /// The identity recorded for a campaign, if any.
    pub(crate) fn identity(&self, campaign: &str) -> anyhow::Result<Option<Identity>> {
        Ok(self.db.row(
            "SELECT key_template, endpoint, channel FROM campaigns
             WHERE name = ?1 AND identity_at IS NOT NULL",
            args![campaign],
            |r| {
                Ok(Identity {
                    key_template: r.get(0)?,
                    endpoint: r.get(1)?,
                    channel: r.get(2)?,
                })
            },
        )?)
    }

    /// Records what identifies the campaign's contacts; its row exists (`ensure_campaign`).
    pub(crate) fn record_identity(&self, campaign: &str, id: &Identity) -> anyhow::Result<()> {
        self.db.execute(
            "UPDATE campaigns SET key_template = ?2, endpoint = ?3, channel = ?4, identity_at = ?5
             WHERE name = ?1",
            args![campaign, id.key_template, id.endpoint, id.channel, now()],
        )?;
        Ok(())
    }

    /// Records the start of a run of `run.campaign`, with its first lease; returns its id.
    pub(crate) fn start_run(&self, run: &NewRun<'_>) -> anyhow::Result<i64> {
        let file = run.file.to_string_lossy();
        Ok(self.db.value(
            "INSERT INTO runs (campaign, pid, started_at, campaign_file, messages, host, lease_until, joined, channel)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
            args![
                run.campaign,
                std::process::id(),
                now(),
                file,
                run.messages,
                workers::host(),
                workers::lease_end(),
                run.joined,
                run.channel
            ],
        )?)
    }

    /// The fingerprint of the messages the campaign's latest sending run sent, and when the
    /// campaign's last message was sent.
    pub(crate) fn last_messages(&self, campaign: &str) -> anyhow::Result<Option<(String, String)>> {
        Ok(self
            .db
            .row(
                "SELECT r.messages, (SELECT MAX(updated_at) FROM contacts c
                                     WHERE c.campaign = r.campaign AND c.status IN ('sent', 'queued'))
                 FROM runs r WHERE r.campaign = ?1 AND r.requests > 0 AND r.messages IS NOT NULL
                 ORDER BY r.id DESC LIMIT 1",
                args![campaign],
                |r| Ok((r.get::<String>(0)?, r.get::<Option<String>>(1)?)),
            )?
            .and_then(|(fp, at)| Some((fp, at?))))
    }

    /// The messages' fingerprints of the runs that sent (`runs.messages`), each with when the
    /// first run that sent it started, oldest first.
    pub(crate) fn sent_messages(&self, campaign: &str) -> anyhow::Result<Vec<(String, String)>> {
        Ok(self.db.rows(
            "SELECT messages, MIN(started_at) FROM runs
             WHERE campaign = ?1 AND requests > 0 AND messages IS NOT NULL
             GROUP BY messages ORDER BY MIN(started_at)",
            args![campaign],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// The campaign that last sent from `file` (`runs.campaign_file`), when that run started,
    /// and how many contacts it messaged.
    pub(crate) fn last_sent_from_file(
        &self,
        file: &str,
    ) -> anyhow::Result<Option<(String, String, u64)>> {
        Ok(self.db.row(
            "SELECT r.campaign, r.started_at,
                    (SELECT COUNT(*) FROM contacts c WHERE c.campaign = r.campaign
                     AND c.status IN ('sent', 'queued', 'unknown'))
             FROM runs r WHERE r.campaign_file = ?1 AND r.requests > 0
             ORDER BY r.id DESC LIMIT 1",
            args![file],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?)
    }

    /// The campaign file the campaign's latest run came from, and when that run started.
    pub(crate) fn last_run_from(&self, campaign: &str) -> anyhow::Result<Option<(String, String)>> {
        Ok(self.db.row(
            "SELECT campaign_file, started_at FROM runs
             WHERE campaign = ?1 AND campaign_file IS NOT NULL ORDER BY id DESC LIMIT 1",
            args![campaign],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    pub(crate) fn end_run(
        &self,
        id: i64,
        stopped: Option<&str>,
        exit_code: i32,
        requests: u64,
    ) -> anyhow::Result<()> {
        self.db.execute(
            "UPDATE runs SET ended_at = ?2, stopped = ?3, exit_code = ?4, requests = ?5 WHERE id = ?1",
            args![id, now(), stopped, exit_code, requests],
        )?;
        Ok(())
    }

    /// The process id of the newest unfinished run of a campaign (who holds its lock).
    pub(crate) fn running_pid(&self, campaign: &str) -> Option<i64> {
        self.db
            .row(
                "SELECT pid FROM runs WHERE campaign = ?1 AND ended_at IS NULL ORDER BY id DESC LIMIT 1",
                args![campaign],
                |r| r.get(0),
            )
            .ok()
            .flatten()
    }

    /// Every key the ledger holds for a campaign, with its state; `messaged` is called, in the
    /// same pass, with the phone of every contact the campaign messaged (or may have).
    /// `keys` is how many keys the map should hold without growing (the file's rows, when known).
    pub(crate) fn known(
        &self,
        campaign: &str,
        keys: usize,
        mut messaged: impl FnMut(&str),
    ) -> anyhow::Result<KnownMap> {
        let count: usize = self.db.value(
            "SELECT COUNT(*) FROM contacts WHERE campaign = ?1",
            args![campaign],
        )?;
        let mut out = KnownMap::with_capacity(count.max(keys));
        self.db.for_each(
            "SELECT key, status, reason, phone FROM contacts WHERE campaign = ?1",
            args![campaign],
            &mut |r| {
                let key = r.str(0)?.unwrap_or_default();
                let status =
                    Status::parse(r.str(1)?.unwrap_or_default()).unwrap_or(Status::Unknown);
                let skipped = match status {
                    Status::Skipped => r.str(2)?.and_then(keys::Skipped::parse),
                    _ => None,
                };
                if matches!(
                    status,
                    Status::Sent | Status::Queued | Status::Sending | Status::Unknown
                ) && let Some(phone) = r.str(3)?
                {
                    messaged(phone);
                }
                out.insert(
                    key_id(key),
                    keys::Known {
                        status: Some(status),
                        skipped,
                        first_row: 0,
                    },
                );
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The contact of `campaign` other than `key` that holds `phone` as messaged: whom a
    /// contact skipped for sharing its phone shares it with.
    pub(crate) fn phone_holder(
        &self,
        campaign: &str,
        phone: &str,
        key: &str,
    ) -> anyhow::Result<Option<String>> {
        Ok(self
            .db
            .row(
                "SELECT key FROM contacts WHERE campaign = ?1 AND phone = ?2 AND key <> ?3
                   AND (status = 'sending' OR status = 'sent' OR status = 'queued' OR status = 'unknown')
                 ORDER BY updated_at LIMIT 1",
                args![campaign, phone, key],
                |r| r.get(0),
            )?
            .flatten())
    }

    /// How many contacts the ledger holds for a campaign.
    pub(crate) fn contact_count(&self, campaign: &str) -> anyhow::Result<u64> {
        Ok(self.db.value(
            "SELECT COUNT(*) FROM contacts WHERE campaign = ?1",
            args![campaign],
        )?)
    }

    /// Phones any campaign of the ledger messaged (or may have: `sending`, `unknown`) at or after
    /// `since`, each with the latest such time in Unix seconds; phones are the normalised digits.
    pub(crate) fn messaged_since(&self, since: &str) -> anyhow::Result<HashMap<u64, i64>> {
        let mut out = HashMap::new();
        self.db.for_each(
            "SELECT phone, MAX(updated_at) FROM contacts
             WHERE phone IS NOT NULL AND updated_at >= ?1
               AND status IN ('sending', 'sent', 'queued', 'unknown')
             GROUP BY phone",
            args![since],
            &mut |r| {
                if let (Ok(phone), Some(at)) = (
                    r.str(0)?.unwrap_or_default().parse::<u64>(),
                    parse_utc(r.str(1)?.unwrap_or_default()),
                ) {
                    out.insert(phone, at);
                }
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Counts by state, duplicate rows included as `skipped`.
    pub(crate) fn counts(&self, campaign: &str) -> anyhow::Result<HashMap<Status, u64>> {
        // One pass with a counter per state: `GROUP BY status` without an index on it sorts
        // every row first.
        let sql = format!(
            "SELECT {} FROM contacts WHERE campaign = ?1",
            Status::ALL
                .iter()
                .map(|s| format!("COUNT(*) FILTER (WHERE status = '{}')", s.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let counted = self
            .db
            .row(&sql, args![campaign], |r| {
                (0..Status::ALL.len())
                    .map(|i| r.get::<u64>(i))
                    .collect::<DbResult<Vec<u64>>>()
            })?
            .unwrap_or_default();
        let mut out: HashMap<Status, u64> = Status::ALL
            .into_iter()
            .zip(counted)
            .filter(|(_, n)| *n > 0)
            .collect();
        let dups: u64 = self.db.value(
            "SELECT COUNT(*) FROM duplicates WHERE campaign = ?1",
            args![campaign],
        )?;
        if dups > 0 {
            *out.entry(Status::Skipped).or_default() += dups;
        }
        Ok(out)
    }

    /// Skipped contacts by reason (duplicates included), most frequent first.
    pub(crate) fn skipped_by_reason(&self, campaign: &str) -> anyhow::Result<Vec<(String, u64)>> {
        Ok(self.db.rows(
            "SELECT reason, CAST(SUM(n) AS BIGINT) FROM (
                SELECT COALESCE(reason, '') AS reason, COUNT(*) AS n FROM contacts
                    WHERE campaign = ?1 AND status = 'skipped' GROUP BY 1
                UNION ALL SELECT 'duplicate', COUNT(*) FROM duplicates WHERE campaign = ?1
             ) AS s GROUP BY reason HAVING SUM(n) > 0 ORDER BY SUM(n) DESC, reason",
            args![campaign],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Failed and unknown contacts grouped by reason, most frequent first.
    pub(crate) fn errors_by_kind(
        &self,
        campaign: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<ErrorKind>> {
        Ok(self.db.rows(
            "SELECT status, COALESCE(reason, ''), COUNT(*), MAX(COALESCE(error, '')) FROM contacts
             WHERE campaign = ?1 AND status IN ('failed', 'unknown')
             GROUP BY status, reason ORDER BY COUNT(*) DESC, reason LIMIT ?2",
            args![campaign, limit],
            |r| {
                Ok(ErrorKind {
                    status: r.get(0)?,
                    reason: r.get(1)?,
                    count: r.get(2)?,
                    example: r.get(3)?,
                })
            },
        )?)
    }

    /// The failed and unknown contacts of a campaign: (key, status, reason, error), in row order.
    pub(crate) fn failed_and_unknown(
        &self,
        campaign: &str,
    ) -> anyhow::Result<Vec<(String, String, String, String)>> {
        Ok(self.db.rows(
            "SELECT key, status, COALESCE(reason, ''), COALESCE(error, '') FROM contacts
             WHERE campaign = ?1 AND status IN ('failed', 'unknown') ORDER BY row_number",
            args![campaign],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?)
    }

    /// A campaign's runs, oldest first.
    /// A run whose lease ran out without an end recorded died: it ended at its last renewal
    /// (as the next run will record it), not now.
    pub(crate) fn runs(&self, campaign: &str) -> anyhow::Result<Vec<RunRecord>> {
        let now = now();
        Ok(self.db.rows(
            &format!(
                "SELECT r.started_at, r.ended_at, r.stopped, r.exit_code, r.requests,
                        r.lease_until, {}
                 FROM runs r WHERE r.campaign = ?1 ORDER BY r.id",
                workers::LAST_WRITE
            ),
            args![campaign],
            |r| {
                let mut run = RunRecord {
                    started_at: r.get(0)?,
                    ended_at: r.get(1)?,
                    stopped: r.get(2)?,
                    exit_code: r.get(3)?,
                    requests: r.get(4)?,
                };
                let lease: Option<String> = r.get(5)?;
                if run.ended_at.is_none()
                    && let Some(until) = lease.filter(|l| *l < now)
                {
                    run.ended_at = Some(workers::died_at(&run.started_at, Some(&until), r.get(6)?));
                    run.stopped = Some("killed".into());
                }
                Ok(run)
            },
        )?)
    }

    /// The first rows (by row number) of one kind of failure: (row number, key, error).
    pub(crate) fn error_rows(
        &self,
        campaign: &str,
        status: &str,
        reason: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<(u64, String, String)>> {
        Ok(self.db.rows(
            "SELECT row_number, key, COALESCE(error, '') FROM contacts
             WHERE campaign = ?1 AND status = ?2 AND COALESCE(reason, '') = ?3
             ORDER BY row_number LIMIT ?4",
            args![campaign, status, reason, limit],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?)
    }

    /// Contacts sent, queued, failed or unknown by the time their state was last set: (the
    /// first `prefix_len` characters of `updated_at`, naming a minute or an hour; state;
    /// count), in time order.
    pub(crate) fn outcomes_over_time(
        &self,
        campaign: &str,
        prefix_len: usize,
    ) -> anyhow::Result<Vec<(String, String, u64)>> {
        Ok(self.db.rows(
            "SELECT substr(updated_at, 1, ?2), status, COUNT(*) FROM contacts
             WHERE campaign = ?1 AND status IN ('sent', 'queued', 'failed', 'unknown')
             GROUP BY 1, 2 ORDER BY 1",
            args![campaign, prefix_len],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?)
    }

    /// A campaign's replies by the time they were received, counted as `reply_stats` counts
    /// them, in time order.
    pub(crate) fn replies_over_time(
        &self,
        campaign: &str,
        prefix_len: usize,
    ) -> anyhow::Result<Vec<RepliesAt>> {
        Ok(self.db.rows(
            concat!(
                "SELECT substr(r.received_at, 1, ?2), COUNT(*),
                    COUNT(*) FILTER (WHERE r.payload IS NOT NULL),
                    COUNT(*) FILTER (WHERE r.id IN ",
                opting_out!(),
                ")
             FROM replies r WHERE r.campaign = ?1 GROUP BY 1 ORDER BY 1"
            ),
            args![campaign, prefix_len],
            |r| {
                Ok(RepliesAt {
                    at: r.get(0)?,
                    replies: r.get(1)?,
                    clicks: r.get(2)?,
                    opt_outs: r.get(3)?,
                })
            },
        )?)
    }

    /// A campaign's newest replies, newest first.
    pub(crate) fn latest_replies(
        &self,
        campaign: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<LatestReply>> {
        Ok(self.db.rows(
            concat!(
                "SELECT r.received_at, r.contact_key, r.phone, r.text, r.payload, r.id IN ",
                opting_out!(),
                " FROM replies r WHERE r.campaign = ?1
             ORDER BY r.received_at DESC, r.id DESC LIMIT ?2"
            ),
            args![campaign, limit],
            |r| {
                Ok(LatestReply {
                    received_at: r.get(0)?,
                    contact_key: r.get(1)?,
                    phone: r.get(2)?,
                    text: r.get(3)?,
                    payload: r.get(4)?,
                    opted_out: r.get(5)?,
                })
            },
        )?)
    }

    /// Records a `cosmocast test` send; it never touches the contact's own state.
    pub(crate) fn record_test(&self, t: &TestSend<'_>) -> anyhow::Result<()> {
        self.db.execute(
            "INSERT INTO test_sends (campaign, row_number, phone, status, message_ids, http_status, error, sent_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            args![t.campaign, t.row_number, t.phone, t.status, t.message_ids, t.http_status, t.error, now()],
        )?;
        Ok(())
    }

    /// The export line of the contact the ledger holds under `key`, if any.
    pub(crate) fn export_row(
        &self,
        campaign: &str,
        key: &str,
    ) -> anyhow::Result<Option<ExportRow>> {
        // Reply columns come from the replies `listen` stored for the contact.
        Ok(self.db.row(EXPORT_ROW, args![campaign, key], |r| {
            let ids: Option<String> = r.get(6)?;
            Ok(ExportRow {
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
                updated_at: r.get(10)?,
                replied_at: r.get(11)?,
                last_reply: r.get(12)?,
                clicked: r.get(13)?,
                opted_out_at: r.get(14)?,
                phone: r.get(15)?,
            })
        })?)
    }
}

/// Opens an SQLite ledger file without writing to it or beside it; `None` when there is none.
fn open_read_file(path: &Path) -> anyhow::Result<Option<Ledger>> {
    refuse_other_than_file(path)?;
    if !path.is_file() {
        return Ok(None);
    }
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut wal = real.clone().into_os_string();
    wal.push("-wal");
    // With a log beside it, a run may be writing (or was killed): read through the log,
    // whose files exist already. Without one, nothing is in flight.
    let query = if Path::new(&wal).exists() {
        "mode=ro"
    } else {
        "mode=ro&immutable=1"
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(file_uri(&real, query), flags)
        .with_context(|| format!("cannot open the ledger {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let found = schema::found(&conn).with_context(|| {
        format!(
            "{} is not a cosmocast ledger (not a SQLite file, or damaged)",
            path.display()
        )
    })?;
    let mut notes = Vec::new();
    match found {
        schema::Found::Development(version) => {
            return Err(Fatal::new(
                Exit::CannotRun,
                format!(
                    "cannot read the ledger {}: {}",
                    path.display(),
                    schema::development_build(version)
                ),
            )
            .into());
        }
        schema::Found::Known(version) if version < schema::VERSION => {
            conn = upgraded_copy(&conn).with_context(|| match version {
                0 => format!("cannot read the ledger {}", path.display()),
                _ => format!(
                    "cannot read the ledger {} (written by an older cosmocast)",
                    path.display()
                ),
            })?;
            if version > 0 {
                notes.push(format!(
                    "the ledger was written by an older cosmocast (schema {version}); it is shown as the next run will read it, and left as it is"
                ));
            }
        }
        schema::Found::Newer(version) => notes.push(newer(version, schema::VERSION)),
        schema::Found::Known(_) => {}
    }
    Ok(Some(Ledger {
        place: Place::File(path.to_path_buf()),
        db: Db::Sqlite(conn),
        notes,
    }))
}

/// One contact's export line (`string_agg` is in SQLite since 3.44; the bundled one is newer).
const EXPORT_ROW: &str = "SELECT key, row_number, status, reason, contact_id, session_id, message_ids, attempts,
        http_status, error, updated_at,
        (SELECT MIN(received_at) FROM replies r WHERE r.campaign = c.campaign AND r.contact_key = c.key),
        (SELECT text FROM replies r WHERE r.campaign = c.campaign AND r.contact_key = c.key
            AND text IS NOT NULL ORDER BY received_at DESC, id DESC LIMIT 1),
        (SELECT string_agg(payload, ' ') FROM (SELECT DISTINCT payload FROM replies r
            WHERE r.campaign = c.campaign AND r.contact_key = c.key AND payload IS NOT NULL) AS p),
        (SELECT added_at FROM opt_outs o WHERE o.phone = c.phone),
        phone
 FROM contacts c WHERE campaign = ?1 AND key = ?2";

/// One kind of failure: its state, reason, how many, and one error text.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ErrorKind {
    pub(crate) status: String,
    pub(crate) reason: String,
    pub(crate) count: u64,
    pub(crate) example: String,
}

/// One run of a campaign, as recorded.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunRecord {
    pub(crate) started_at: String,
    pub(crate) ended_at: Option<String>,
    /// Why it stopped before the end, if it did.
    pub(crate) stopped: Option<String>,
    pub(crate) exit_code: Option<i64>,
    pub(crate) requests: u64,
}

/// A campaign's replies within one minute or hour.
#[derive(Debug, Clone)]
pub(crate) struct RepliesAt {
    /// The first characters of `received_at` that name the minute or the hour.
    pub(crate) at: String,
    pub(crate) replies: u64,
    pub(crate) clicks: u64,
    pub(crate) opt_outs: u64,
}

/// One reply as the report lists it.
#[derive(Debug, Clone)]
pub(crate) struct LatestReply {
    pub(crate) received_at: String,
    pub(crate) contact_key: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) text: Option<String>,
    pub(crate) payload: Option<String>,
    pub(crate) opted_out: bool,
}

/// A `cosmocast test` send, as recorded.
pub(crate) struct TestSend<'a> {
    pub(crate) campaign: &'a str,
    pub(crate) row_number: u64,
    pub(crate) phone: &'a str,
    pub(crate) status: &'a str,
    pub(crate) message_ids: &'a str,
    pub(crate) http_status: Option<u16>,
    pub(crate) error: Option<&'a str>,
}

/// An in-memory copy of a ledger, brought up to the current schema (the file is not touched).
fn upgraded_copy(src: &Connection) -> anyhow::Result<Connection> {
    let mut mem = Connection::open_in_memory()?;
    {
        let backup = rusqlite::backup::Backup::new(src, &mut mem)?;
        backup.run_to_completion(4096, Duration::ZERO, None)?;
    }
    schema::migrate(&mut mem)?;
    Ok(mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_that_cannot_be_written_says_so_rather_than_blame_the_file() {
        let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        let path = Path::new("/mnt/ro/l.sqlite");
        for code in [
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_CANTOPEN,
        ] {
            let said = not_writable(&failure(code), path).to_string();
            assert!(
                said.contains("the file or its folder is read-only"),
                "{said}"
            );
        }
        let full = not_writable(&failure(rusqlite::ffi::SQLITE_FULL), path).to_string();
        assert!(
            full.contains("the disk is full — free some space"),
            "{full}"
        );
        let other = not_writable(&failure(rusqlite::ffi::SQLITE_NOTADB), path).to_string();
        assert!(other.contains("is it a SQLite file?"), "{other}");
    }

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
        let ids: std::collections::HashSet<keys::KeyId> =
            (0..100_000).map(|i| key_id(&format!("K{i}"))).collect();
        assert_eq!(ids.len(), 100_000);
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// An empty file (a run killed between creating the ledger and writing its tables) is of
    /// schema 0, the oldest there is: it is read through a copy in memory brought up to date.
    #[test]
    fn reading_creates_nothing_and_sees_an_older_schema_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.sqlite");
        assert!(
            Ledger::open_read(&Place::File(p.clone()))
                .unwrap()
                .is_none()
        );
        assert!(listing(dir.path()).is_empty());
        std::fs::write(&p, b"").unwrap();
        let l = Ledger::open_read(&Place::File(p.clone())).unwrap().unwrap();
        assert!(!l.has_campaign("c").unwrap(), "the copy has the tables");
        assert_eq!(l.identity("c").unwrap(), None);
        assert!(l.notes.is_empty(), "{:?}", l.notes);
        drop(l);
        assert_eq!(listing(dir.path()), ["l.sqlite"]);
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            0,
            "the file is untouched"
        );
    }

    #[test]
    fn a_development_ledger_is_named_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.sqlite");
        {
            // As every build wrote them: in WAL mode, numbered, without the mark.
            let conn = Connection::open(&p).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.execute_batch("CREATE TABLE contacts (key TEXT); PRAGMA user_version = 9;")
                .unwrap();
        }
        let before = std::fs::read(&p).unwrap();
        let read = Ledger::open_read(&Place::File(p.clone()))
            .err()
            .unwrap()
            .to_string();
        let write = Ledger::open_write(&Place::File(p.clone())).err().unwrap();
        let write = format!("{write:#}");
        for err in [&read, &write] {
            assert!(
                err.contains("development build") && err.contains(locate::ENV),
                "{err}"
            );
        }
        assert_eq!(std::fs::read(&p).unwrap(), before, "the file is untouched");
    }

    #[test]
    fn a_new_ledger_is_current_and_refuses_a_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open_write(&Place::File(dir.path().join("l.sqlite"))).unwrap();
        assert_eq!(
            match &l.db {
                Db::Sqlite(c) => schema::found(c).unwrap(),
                Db::Postgres(_) => unreachable!("a file"),
            },
            schema::Found::Known(schema::VERSION)
        );
        let err = Ledger::open_write(&Place::File(dir.path().join("nope/l.sqlite")))
            .err()
            .unwrap();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!dir.path().join("nope").exists());
    }
}
