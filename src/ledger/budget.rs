//! A channel's daily budget (`api.daily_limit`): WhatsApp lets a business number start
//! conversations with a fixed number of unique people in any rolling 24 hours, whatever
//! campaign sends. Every claim on a channel takes a slot in `channel_slots`, in the same
//! transaction as the claim, so two campaigns on one channel running at the same moment cannot
//! pass the limit between them: SQLite serialises their write transactions, and on
//! PostgreSQL each claim's transaction holds the channel's lock. A phone that holds a
//! slot in the window costs nothing more. `sending`, `sent`, `queued` and `unknown` contacts
//! hold their slots; a definite failure, or a claim given back before its request left, frees
//! it.
//!
//! The ledger knows a channel by a fingerprint of its id, never the id itself. Each campaign's
//! declared limit is kept in `channel_limits`, and the smallest applies to all of them.

use super::db::{Arg, Engine, Sql, Tx, args};
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
    /// When the oldest slot of the window frees (RFC 3339), if any is taken.
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

/// Unique people holding a slot of `channel` in the window that ends at `now`.
fn used(db: &impl Sql, channel: &str, now: i64) -> DbResult<u64> {
    db.value(
        "SELECT COUNT(DISTINCT phone) FROM channel_slots WHERE channel = ?1 AND taken_at >= ?2",
        args![channel, cutoff(now)],
    )
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
        match daily_limit {
            Some(n) => self.db.execute(
                "INSERT INTO channel_limits (channel, campaign, daily_limit, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (channel, campaign) DO UPDATE SET daily_limit = excluded.daily_limit,
                    updated_at = excluded.updated_at",
                args![channel, campaign, n, super::now()],
            )?,
            None => self.db.execute(
                "DELETE FROM channel_limits WHERE channel = ?1 AND campaign = ?2",
                args![channel, campaign],
            )?,
        };
        // Slots past the window count for nothing; the table stays small.
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
        self.db.for_each(
            "SELECT DISTINCT phone FROM channel_slots WHERE channel IN (?1, ?2) AND taken_at >= ?3",
            args![channels[0], channels[1], cutoff(now_secs())],
            &mut |r| {
                out.extend(r.str(0)?.and_then(|p| p.parse::<u64>().ok()));
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// What the last 24 hours spent of a channel's budget; `own` is the limit the campaign at
    /// hand declares (it joins the others, though not recorded yet).
    pub(crate) fn spent(&self, channel: &str, own: Option<(&str, u32)>) -> anyhow::Result<Spent> {
        let now = now_secs();
        let mut declared: Vec<(String, u32)> = self.db.rows(
            "SELECT campaign, daily_limit FROM channel_limits WHERE channel = ?1 ORDER BY daily_limit, campaign",
            args![channel],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if let Some((campaign, n)) = own {
            declared.retain(|(c, _)| c != campaign);
            declared.push((campaign.to_string(), n));
            declared.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        }
        let oldest: Option<String> = self.db.value(
            "SELECT MIN(taken_at) FROM channel_slots WHERE channel = ?1 AND taken_at >= ?2",
            args![channel, cutoff(now)],
        )?;
        Ok(Spent {
            used: used(&self.db, channel, now)?,
            limit: declared.iter().map(|(_, n)| *n).min(),
            declared,
            next_slot: oldest
                .and_then(|t| super::parse_utc(&t))
                .map(|t| format_utc(t + WINDOW_SECS, 0)),
        })
    }
}

/// The writer's side: admits claims within the budget and keeps the slots.
pub(crate) struct Slots {
    channel: String,
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
            used: None,
        }
    }

    /// What tells whether another connection changed the slots since they were counted:
    /// SQLite's `data_version`. On PostgreSQL, where several workers claim at once, the
    /// channel's lock is taken for the transaction and the slots are counted every time.
    fn version(&self, tx: &Tx<'_>) -> DbResult<Option<i64>> {
        match tx.engine() {
            Engine::Sqlite => Ok(Some(tx.value("PRAGMA data_version", &[])?)),
            Engine::Postgres => {
                let key = super::postgres::Target::lock_key(&format!("channel {}", self.channel));
                tx.execute("SELECT pg_advisory_xact_lock(?1)", args![key])?;
                Ok(None)
            }
        }
    }

    /// Takes a slot for each claim in order, within the limit; returns how many were admitted
    /// (the rest, from the first refused on, must not be sent).
    pub(crate) fn admit(
        &mut self,
        tx: &Tx<'_>,
        campaign: &str,
        ts: &str,
        claims: &[Claimed<'_>],
    ) -> DbResult<usize> {
        let now = now_secs();
        let Some(limit) = limit(tx, &self.channel)? else {
            // Nothing to count against: every claim takes its slot, all in one go.
            self.take_all(tx, campaign, ts, claims)?;
            self.used = None;
            return Ok(claims.len());
        };
        let version = self.version(tx)?;
        let mut used = match (self.used, version) {
            (Some((n, v)), Some(now_v)) if v == now_v => n,
            _ => used(tx, &self.channel, now)?,
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

    /// Takes a slot for every claim (no limit applies): one statement on PostgreSQL, a statement
    /// per claim on SQLite.
    fn take_all(
        &self,
        tx: &Tx<'_>,
        campaign: &str,
        ts: &str,
        claims: &[Claimed<'_>],
    ) -> DbResult<()> {
        if claims.is_empty() {
            return Ok(());
        }
        match tx.engine() {
            Engine::Postgres => {
                let args = [
                    Arg::Text(&self.channel),
                    Arg::Text(ts),
                    Arg::Text(campaign),
                    Arg::Texts(
                        claims
                            .iter()
                            .map(|c| Some(c.phone.unwrap_or(c.key)))
                            .collect(),
                    ),
                    Arg::Texts(claims.iter().map(|c| Some(c.key)).collect()),
                ];
                tx.execute(
                    "INSERT INTO channel_slots (channel, phone, taken_at, campaign, key)
                     SELECT ?1, t.phone, ?2, ?3, t.key FROM unnest(?4::text[], ?5::text[]) AS t(phone, key)
                     ON CONFLICT DO NOTHING",
                    &args,
                )?;
            }
            Engine::Sqlite => {
                let sets: Vec<Vec<Arg<'_>>> = claims
                    .iter()
                    .map(|c| {
                        vec![
                            Arg::Text(&self.channel),
                            Arg::Text(c.phone.unwrap_or(c.key)),
                            Arg::Text(ts),
                            Arg::Text(campaign),
                            Arg::Text(c.key),
                        ]
                    })
                    .collect();
                tx.each(
                    "INSERT INTO channel_slots (channel, phone, taken_at, campaign, key)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                    &sets,
                )?;
            }
        }
        Ok(())
    }

    /// Frees the slot a contact's latest claim took: its request failed for sure, or never left.
    pub(crate) fn free(&mut self, tx: &Tx<'_>, campaign: &str, key: &str) -> DbResult<()> {
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
