//! A channel's daily budget (`api.daily_limit`): WhatsApp lets a business number start
//! conversations with a fixed number of unique people in any rolling 24 hours, whatever
//! campaign sends. While a campaign limits a channel, every claim on it takes a slot in
//! `channel_slots`, in the same transaction as the claim, so two campaigns on one channel
//! running at the same moment cannot pass the limit between them: SQLite serialises their write
//! transactions, and on PostgreSQL each claim's transaction holds the channel's lock. A phone
//! that holds a slot in the window costs nothing more. `sending`, `sent`, `queued` and
//! `unknown` contacts hold their slots; a definite failure, or a claim given back before its
//! request left, frees it.
//!
//! A channel no campaign limits keeps no slots (they would cost every claim three index
//! writes for nobody to read): each run records its channel, and when a limit first appears,
//! the people its runs messaged in the window become slots, in the transaction that declares
//! it. Until then, what the window spent is read from those contacts.
//!
//! The ledger knows a channel by a fingerprint of its id, never the id itself. Each campaign's
//! declared limit is kept in `channel_limits`, and the smallest applies to all of them.

use super::db::{Engine, Mode, Sql, Tx, args};
use super::{DbResult, Ledger, format_utc, now_secs};

/// The window the limit counts over.
pub(crate) const WINDOW_SECS: i64 = 24 * 3600;

/// How long slots are kept: past the window they count for nothing.
const KEEP_SECS: i64 = 2 * WINDOW_SECS;

/// The ledger's name for a channel: the first 16 hex digits of SHA-256 over its id.
pub(crate) fn fingerprint(channel_id: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("cosmocast channel\0{}", channel_id.trim()).as_bytes(),
    );
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the last 24 hours spent of a channel's budget.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Spent {
    /// Unique people messaged through the channel in the window.
    pub(crate) used: u64,
    /// The limit that applies: the smallest any campaign declares.
    pub(crate) limit: Option<u32>,
    /// Every declared limit, by campaign.
    pub(crate) declared: Vec<(String, u32)>,
    /// When the next slot opens (RFC 3339), if any is taken: when enough people, each 24
    /// hours after they were last messaged, have left the window for one more to fit.
    pub(crate) next_slot: Option<String>,
}

impl Spent {
    pub(crate) fn left(&self) -> Option<u64> {
        self.limit.map(|l| u64::from(l).saturating_sub(self.used))
    }
}

fn cutoff(now: i64) -> String {
    format_utc(now - WINDOW_SECS, 0)
}

/// The slots of channel `?1` taken since `?2`, as `(phone, taken_at)`.
macro_rules! slots {
    () => {
        "SELECT phone, taken_at FROM channel_slots WHERE channel = ?1 AND taken_at >= ?2"
    };
}
const SLOTS: &str = slots!();

/// The people channel `?1`'s runs messaged since `?2`, as `(phone, taken_at, campaign, key)`:
/// the claims made while no campaign limited the channel, which took no slot. The states that
/// count are those of `Ledger::messaged_since`; a contact's time is its latest change, never
/// before its claim. Only the campaigns with a run on the channel in the window are read, by
/// the primary key.
macro_rules! messaged {
    () => {
        "SELECT COALESCE(c.phone, c.key) AS phone, c.updated_at AS taken_at, c.campaign, c.key
        FROM contacts c
        WHERE c.campaign IN (SELECT campaign FROM runs
            WHERE channel = ?1 AND (ended_at IS NULL OR ended_at >= ?2))
          AND c.run_id IN (SELECT id FROM runs
            WHERE channel = ?1 AND (ended_at IS NULL OR ended_at >= ?2))
          AND c.updated_at >= ?2
          AND (c.status = 'sending' OR c.status = 'sent' OR c.status = 'queued'
               OR c.status = 'unknown')"
    };
}

/// The same window of a channel no campaign limits: its slots (left from a time it was
/// limited), and the people its runs messaged.
const SPENT_UNLIMITED: &str = concat!(
    slots!(),
    " UNION ALL SELECT phone, taken_at FROM (",
    messaged!(),
    ") m"
);

/// What a channel spent in the window: [`SLOTS`] while a campaign limits it, else
/// [`SPENT_UNLIMITED`].
fn window(limited: bool) -> &'static str {
    if limited { SLOTS } else { SPENT_UNLIMITED }
}

/// Unique people holding a slot of `channel` in the window that ends at `now`.
fn used(db: &impl Sql, channel: &str, now: i64, limited: bool) -> DbResult<u64> {
    db.value(
        &format!("SELECT COUNT(DISTINCT phone) FROM ({}) w", window(limited)),
        args![channel, cutoff(now)],
    )
}

/// Which of a channel's locks a transaction takes, on PostgreSQL (SQLite serialises write
/// transactions). Every claim holds the channel's lock shared, and a declaration of a limit
/// holds it alone: the declaration waits for the claims under way, and later claims see the
/// limit. Claims on a limited channel also hold its count lock alone, so that two campaigns
/// count the slots one after the other; on a channel nobody limits, workers claim side by side.
#[derive(Clone, Copy)]
enum Lock {
    Claim,
    Count,
    Declare,
}

fn lock(tx: &Tx<'_>, channel: &str, how: Lock) -> DbResult<()> {
    if tx.engine() != Engine::Postgres {
        return Ok(());
    }
    let (name, sql) = match how {
        Lock::Claim => ("", "SELECT pg_advisory_xact_lock_shared(?1)"),
        Lock::Count => (" count", "SELECT pg_advisory_xact_lock(?1)"),
        Lock::Declare => ("", "SELECT pg_advisory_xact_lock(?1)"),
    };
    let key = super::postgres::Target::lock_key(&format!("channel {channel}{name}"));
    tx.execute(sql, args![key])?;
    Ok(())
}

/// The people `channel`'s runs messaged in the window, made slots (the channel's first limit
/// is being declared: until now its claims took none).
fn backfill(tx: &Tx<'_>, channel: &str) -> DbResult<()> {
    // `WHERE true`: SQLite reads an upsert after a SELECT only once it has a WHERE clause.
    tx.execute(
        concat!(
            "INSERT INTO channel_slots (channel, phone, taken_at, campaign, key)
             SELECT ?1, phone, taken_at, campaign, key FROM (",
            messaged!(),
            ") m WHERE true ON CONFLICT DO NOTHING"
        ),
        args![channel, cutoff(now_secs())],
    )?;
    Ok(())
}

/// The limit that applies to `channel`: the smallest declared.
fn limit(db: &impl Sql, channel: &str) -> DbResult<Option<u32>> {
    db.value(
        "SELECT MIN(daily_limit) FROM channel_limits WHERE channel = ?1",
        args![channel],
    )
}

impl Ledger {
    /// Records the limit a campaign declares for its channel (none: it declares none now).
    pub(crate) fn declare_limit(
        &self,
        channel: &str,
        campaign: &str,
        daily_limit: Option<u32>,
    ) -> anyhow::Result<()> {
        let tx = self.db.transaction(Mode::Write)?;
        lock(&tx, channel, Lock::Declare)?;
        match daily_limit {
            Some(n) => {
                if limit(&tx, channel)?.is_none() {
                    backfill(&tx, channel)?;
                }
                tx.execute(
                    "INSERT INTO channel_limits (channel, campaign, daily_limit, updated_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (channel, campaign) DO UPDATE SET daily_limit = excluded.daily_limit,
                        updated_at = excluded.updated_at",
                    args![channel, campaign, n, super::now()],
                )?
            }
            None => tx.execute(
                "DELETE FROM channel_limits WHERE channel = ?1 AND campaign = ?2",
                args![channel, campaign],
            )?,
        };
        tx.commit()?;
        // Slots past the window count for nothing; the table stays small. (Outside the lock: a
        // claim that frees an old slot while it waits for the lock would deadlock with it.)
        self.db.execute(
            "DELETE FROM channel_slots WHERE taken_at < ?1",
            args![format_utc(now_secs() - KEEP_SECS, 0)],
        )?;
        Ok(())
    }

    /// Whether a campaign declares a daily limit for one of `channels`.
    pub(crate) fn limited(&self, channels: &[String; 2]) -> anyhow::Result<bool> {
        let found = self.db.row(
            "SELECT 1 FROM channel_limits WHERE channel IN (?1, ?2) LIMIT 1",
            args![channels[0], channels[1]],
            |_| Ok(()),
        )?;
        Ok(found.is_some())
    }

    /// The phones (as numbers) holding a slot of one of `channels` in the window that ends now.
    pub(crate) fn slot_phones(
        &self,
        channels: &[String; 2],
    ) -> anyhow::Result<std::collections::HashSet<u64>> {
        let mut out = std::collections::HashSet::new();
        let since = cutoff(now_secs());
        for channel in channels {
            let limited = limit(&self.db, channel)?.is_some();
            self.db
                .for_each(window(limited), args![channel, since], &mut |r| {
                    out.extend(r.str(0)?.and_then(|p| p.parse::<u64>().ok()));
                    Ok(())
                })?;
        }
        Ok(out)
    }

    /// What the last 24 hours spent of a channel's budget; `own` is the campaign at hand and
    /// the limit its file declares now, which its next run records (`None`: it declares none,
    /// though the ledger may still hold the one it declared before).
    pub(crate) fn spent(
        &self,
        channel: &str,
        own: Option<(&str, Option<u32>)>,
    ) -> anyhow::Result<Spent> {
        let now = now_secs();
        let mut declared: Vec<(String, u32)> = self.db.rows(
            "SELECT campaign, daily_limit FROM channel_limits WHERE channel = ?1 ORDER BY daily_limit, campaign",
            args![channel],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        // Limited in the ledger (claims take slots) whatever the campaign at hand declares now.
        let limited = !declared.is_empty();
        if let Some((campaign, n)) = own {
            declared.retain(|(c, _)| c != campaign);
            declared.extend(n.map(|n| (campaign.to_string(), n)));
            declared.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        }
        let limit = declared.iter().map(|(_, n)| *n).min();
        if limit.is_none() {
            // Nothing counts against a channel nobody limits.
            return Ok(Spent {
                used: 0,
                limit,
                declared,
                next_slot: None,
            });
        }
        let used = used(&self.db, channel, now, limited)?;
        // A person frees a slot 24 hours after they were last messaged; a slot opens once
        // enough have that fewer than the limit remain: the (used - limit + 1)th to leave.
        let leaving = used.saturating_sub(limit.map_or(0, u64::from));
        let opens: Option<String> = self.db.value(
            &format!(
                "SELECT MAX(last) FROM (SELECT MAX(taken_at) AS last FROM ({}) w
                 GROUP BY phone ORDER BY last LIMIT ?3) o",
                window(limited)
            ),
            args![
                channel,
                cutoff(now),
                i64::try_from(leaving + 1).unwrap_or(i64::MAX)
            ],
        )?;
        Ok(Spent {
            used,
            limit,
            declared,
            next_slot: opens
                .and_then(|t| super::parse_utc(&t))
                .map(|t| format_utc(t + WINDOW_SECS, 0)),
        })
    }
}

/// The writer's side: admits claims within the budget and keeps the slots.
pub(crate) struct Slots {
    channel: String,
    /// A campaign limited the channel at the latest claim: claims take slots, and failures
    /// free them. (While nobody limits it, a claim takes none, and an older slot of the same
    /// contact, from a time it was limited, stays.)
    limited: bool,
    /// The unique people counted in the window, and SQLite's `data_version` when they were:
    /// while no other connection writes, the count is kept up to date here instead of counted
    /// again at every claim. (Slots that leave the window meanwhile only make it cautious.)
    used: Option<(u64, i64)>,
}

/// A claim's identity on a channel: its phone, else its key.
pub(crate) struct Claimed<'a> {
    pub(crate) key: &'a str,
    pub(crate) phone: Option<&'a str>,
}

impl Slots {
    pub(crate) fn new(channel: String) -> Slots {
        Slots {
            channel,
            limited: false,
            used: None,
        }
    }

    /// What tells whether another connection changed the slots since they were counted:
    /// SQLite's `data_version`. On PostgreSQL, where several workers claim at once, the slots
    /// are counted every time, under the channel's lock.
    fn version(tx: &Tx<'_>) -> DbResult<Option<i64>> {
        match tx.engine() {
            Engine::Sqlite => Ok(Some(tx.value("PRAGMA data_version", &[])?)),
            Engine::Postgres => Ok(None),
        }
    }

    /// Takes a slot for each claim in order, within the limit; returns how many were admitted
    /// (the rest, from the first refused on, must not be sent). On a channel no campaign
    /// limits, every claim is admitted and none takes a slot.
    pub(crate) fn admit(
        &mut self,
        tx: &Tx<'_>,
        campaign: &str,
        ts: &str,
        claims: &[Claimed<'_>],
    ) -> DbResult<usize> {
        let now = now_secs();
        // Before the limit is read: a limit declared meanwhile waits for this claim, and then
        // makes it a slot; one declared first is seen.
        lock(tx, &self.channel, Lock::Claim)?;
        let limit = limit(tx, &self.channel)?;
        self.limited = limit.is_some();
        let Some(limit) = limit else {
            self.used = None;
            return Ok(claims.len());
        };
        lock(tx, &self.channel, Lock::Count)?;
        let version = Self::version(tx)?;
        let mut used = match (self.used, version) {
            (Some((n, v)), Some(now_v)) if v == now_v => n,
            _ => used(tx, &self.channel, now, true)?,
        };
        let since = cutoff(now);
        let mut admitted = 0;
        for c in claims {
            let who = c.phone.unwrap_or(c.key);
            let held = tx
                .row(
                    "SELECT 1 FROM channel_slots WHERE channel = ?1 AND phone = ?2 AND taken_at >= ?3",
                    args![self.channel, who, since],
                    |_| Ok(()),
                )?
                .is_some();
            if !held {
                if used >= u64::from(limit) {
                    break;
                }
                used += 1;
            }
            tx.execute(
                "INSERT INTO channel_slots (channel, phone, taken_at, campaign, key)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                args![self.channel, who, ts, campaign, c.key],
            )?;
            admitted += 1;
        }
        self.used = version.map(|v| (used, v));
        Ok(admitted)
    }

    /// Frees the slot a contact's latest claim took: its request failed for sure, or never left.
    pub(crate) fn free(&mut self, tx: &Tx<'_>, campaign: &str, key: &str) -> DbResult<()> {
        if !self.limited {
            return Ok(());
        }
        let freed = tx.execute(
            "DELETE FROM channel_slots WHERE channel = ?1 AND campaign = ?2 AND key = ?3
             AND taken_at = (SELECT MAX(taken_at) FROM channel_slots
                             WHERE channel = ?1 AND campaign = ?2 AND key = ?3)",
            args![self.channel, campaign, key],
        )?;
        if freed > 0 {
            // Whether the phone still counts depends on its other slots: count again.
            self.used = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_stable_and_never_the_id() {
        let f = fingerprint("chan-42");
        assert_eq!(f, fingerprint(" chan-42 "));
        assert_ne!(f, fingerprint("chan-43"));
        assert_eq!(f.len(), 16);
        assert!(!f.contains("chan"));
    }

    #[test]
    fn the_next_slot_opens_when_enough_people_were_last_messaged_a_day_ago() {
        let dir = tempfile::tempdir().unwrap();
        let l =
            Ledger::open_write(&super::super::Place::File(dir.path().join("l.sqlite"))).unwrap();
        l.declare_limit("ch", "a", Some(2)).unwrap();
        let now = now_secs();
        let slot = |phone: &str, hours_ago: i64| {
            l.db.execute(
                "INSERT INTO channel_slots (channel, phone, taken_at, campaign, key)
                 VALUES ('ch', ?1, ?2, 'a', ?1)",
                args![phone, format_utc(now - hours_ago * 3600, 0)],
            )
            .unwrap();
        };
        // Ana ten hours ago and again an hour ago; Bo five hours ago: Bo leaves first.
        slot("ana", 10);
        slot("ana", 1);
        slot("bo", 5);
        let spent = l.spent("ch", None).unwrap();
        assert_eq!((spent.used, spent.left()), (2, Some(0)));
        assert_eq!(
            spent.next_slot,
            Some(format_utc(now - 5 * 3600 + WINDOW_SECS, 0))
        );
        // Three people over a limit of two: two must leave before a slot opens (Bo, then Cy).
        slot("cy", 3);
        let spent = l.spent("ch", None).unwrap();
        assert_eq!((spent.used, spent.left()), (3, Some(0)));
        assert_eq!(
            spent.next_slot,
            Some(format_utc(now - 3600 * 3 + WINDOW_SECS, 0))
        );
    }

    #[test]
    fn the_limit_admits_new_people_only_while_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let l =
            Ledger::open_write(&super::super::Place::File(dir.path().join("l.sqlite"))).unwrap();
        l.declare_limit("ch", "a", Some(3)).unwrap();
        l.declare_limit("ch", "b", Some(5)).unwrap();
        let mut slots = Slots::new("ch".into());
        let phones = ["1", "2", "2", "3", "4"];
        let claims: Vec<Claimed<'_>> = phones
            .iter()
            .enumerate()
            .map(|(i, p)| Claimed {
                key: ["k0", "k1", "k2", "k3", "k4"][i],
                phone: Some(p),
            })
            .collect();
        let tx = l.db.transaction(super::super::db::Mode::Write).unwrap();
        let n = slots
            .admit(&tx, "a", &super::super::now(), &claims)
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(n, 4, "phone 2 twice is one person; phone 4 is the fourth");
        let spent = l.spent("ch", None).unwrap();
        assert_eq!(
            (spent.used, spent.limit, spent.left()),
            (3, Some(3), Some(0))
        );
        assert!(spent.next_slot.is_some());
        let tx = l.db.transaction(super::super::db::Mode::Write).unwrap();
        slots.free(&tx, "a", "k3").unwrap();
        let n = slots
            .admit(&tx, "b", &super::super::now(), &claims[4..])
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(n, 1, "a freed slot is taken again");
    }
}
