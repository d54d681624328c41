//! The suppression list: phones that no campaign of the ledger messages. Entries come from
//! replies (`listen`), imports and people (`cosmocast optouts add`); each holds the normalised
//! phone, where it came from, when, the campaign a reply answered, and a note. A removal moves
//! the entry to `opt_out_history` with when and why, so the list's past can be told.

use std::collections::HashSet;

use serde::Serialize;

use super::db::{Mode, Row, Sql, args};
use super::{DbResult, Ledger, now};

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Reply,
    Import,
    Manual,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Reply => "reply",
            Source::Import => "import",
            Source::Manual => "manual",
        }
    }
}

/// One phone on the list.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OptOut {
    pub(crate) phone: String,
    pub(crate) source: String,
    pub(crate) added_at: String,
    /// The campaign a reply answered.
    pub(crate) campaign: Option<String>,
    pub(crate) note: Option<String>,
    /// The reply's text, for an opt-out by reply.
    pub(crate) text: Option<String>,
}

/// One phone taken off the list, and why.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Removal {
    #[serde(flatten)]
    pub(crate) entry: OptOut,
    pub(crate) removed_at: String,
    pub(crate) removed_note: Option<String>,
}

/// What an addition did.
#[derive(Debug, Default)]
pub(crate) struct Added {
    pub(crate) added: u64,
    /// On the list already (its entry is kept as it was).
    pub(crate) already: u64,
}

/// What a removal did.
#[derive(Debug, Default)]
pub(crate) struct Removed {
    pub(crate) removed: Vec<String>,
    pub(crate) not_listed: Vec<String>,
    /// Contacts recorded `skipped: opted_out` with a removed phone: they stay so.
    pub(crate) still_skipped: u64,
}

fn entry(r: &Row<'_>) -> DbResult<OptOut> {
    Ok(OptOut {
        phone: r.get(0)?,
        source: r.get(1)?,
        added_at: r.get(2)?,
        campaign: r.get(3)?,
        note: r.get(4)?,
        text: r.get(5)?,
    })
}

/// Whether a phone is on the suppression list.
pub(super) const OPTED_OUT: &str = "SELECT 1 FROM opt_outs WHERE phone = ?1";

impl Ledger {
    /// Whether `phone` is on the suppression list.
    pub(crate) fn is_opted_out(&self, phone: &str) -> anyhow::Result<bool> {
        Ok(self.db.row(OPTED_OUT, args![phone], |_| Ok(()))?.is_some())
    }

    /// Every phone on the suppression list.
    pub(crate) fn opt_outs(&self) -> anyhow::Result<HashSet<String>> {
        let mut out = HashSet::new();
        self.db
            .for_each("SELECT phone FROM opt_outs", &[], &mut |r| {
                out.insert(r.get(0)?);
                Ok(())
            })?;
        Ok(out)
    }

    /// When `phone` (normalised) went on the list, if it is on it.
    /// A listed entry kept as the digits a webhook sent without their country code matches the
    /// phones of a campaign whose `contacts.country` (`region`) is its country, as the
    /// campaign's audience reads the list.
    pub(crate) fn opted_out_at(
        &self,
        phone: &str,
        region: Option<&crate::phone::Region>,
    ) -> anyhow::Result<Option<String>> {
        let at = |listed: &str| -> anyhow::Result<Option<String>> {
            Ok(self
                .db
                .row(
                    "SELECT added_at FROM opt_outs WHERE phone = ?1",
                    args![listed],
                    |r| r.get(0),
                )?
                .flatten())
        };
        let exact = at(phone)?;
        let Some(region) = region.filter(|_| exact.is_none()) else {
            return Ok(exact);
        };
        // An entry read nationally is the phone's digits less a country code: one of its
        // suffixes, each looked up by the list's key rather than reading the whole list.
        for start in 1..phone.len().saturating_sub(3) {
            let Some(listed) = phone.get(start..) else {
                continue;
            };
            if let Some(added) = at(listed)?
                && crate::phone::match_key(listed, Some(region)).as_deref() == Some(phone)
            {
                return Ok(Some(added));
            }
        }
        Ok(None)
    }

    /// The list, oldest entry first.
    pub(crate) fn opt_out_list(&self) -> anyhow::Result<Vec<OptOut>> {
        Ok(self.db.rows(
            "SELECT phone, source, added_at, campaign, note, text FROM opt_outs
             ORDER BY added_at, phone",
            &[],
            entry,
        )?)
    }

    /// The entries taken off the list, oldest removal first.
    pub(crate) fn opt_out_history(&self) -> anyhow::Result<Vec<Removal>> {
        Ok(self.db.rows(
            "SELECT phone, source, added_at, campaign, note, text, removed_at, removed_note
             FROM opt_out_history ORDER BY removed_at, id",
            &[],
            |r| {
                Ok(Removal {
                    entry: entry(r)?,
                    removed_at: r.get(6)?,
                    removed_note: r.get(7)?,
                })
            },
        )?)
    }

    /// Puts normalised phones on the list in one transaction; a phone already there keeps its
    /// entry.
    pub(crate) fn add_opt_outs(
        &self,
        phones: &[String],
        source: Source,
        note: Option<&str>,
    ) -> anyhow::Result<Added> {
        let tx = self.db.transaction(Mode::Write)?;
        let ts = now();
        let mut out = Added::default();
        for p in phones {
            match tx.execute(
                "INSERT INTO opt_outs (phone, added_at, source, note) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                args![p, ts, source.as_str(), note],
            )? {
                0 => out.already += 1,
                _ => out.added += 1,
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Takes normalised phones off the list, keeping each entry in the history with `note`.
    /// Later decisions only: contacts already recorded `skipped: opted_out` stay so.
    pub(crate) fn remove_opt_outs(
        &self,
        phones: &[String],
        note: Option<&str>,
    ) -> anyhow::Result<Removed> {
        let tx = self.db.transaction(Mode::Write)?;
        let ts = now();
        let mut out = Removed::default();
        for p in phones {
            let moved = tx.execute(
                "INSERT INTO opt_out_history (phone, source, added_at, campaign, note, reply_id, text, removed_at, removed_note)
                 SELECT phone, source, added_at, campaign, note, reply_id, text, ?2, ?3 FROM opt_outs WHERE phone = ?1",
                args![p, ts, note],
            )?;
            if moved == 0 {
                out.not_listed.push(p.clone());
                continue;
            }
            tx.execute("DELETE FROM opt_outs WHERE phone = ?1", args![p])?;
            out.still_skipped += tx.value::<u64>(
                "SELECT COUNT(*) FROM contacts WHERE phone = ?1 AND status = 'skipped' AND reason = 'opted_out'",
                args![p],
            )?;
            out.removed.push(p.clone());
        }
        tx.commit()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_is_kept_in_the_history_and_counts_what_stays_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let l =
            Ledger::open_write(&super::super::Place::File(dir.path().join("l.sqlite"))).unwrap();
        let phones = vec!["5511987654321".to_string(), "5511987650000".to_string()];
        let a = l
            .add_opt_outs(&phones, Source::Import, Some("crm"))
            .unwrap();
        assert_eq!((a.added, a.already), (2, 0));
        let a = l.add_opt_outs(&phones[..1], Source::Manual, None).unwrap();
        assert_eq!((a.added, a.already), (0, 1));
        l.db.execute(
            "INSERT INTO contacts (campaign, key, row_number, phone, status, reason, updated_at)
                 VALUES ('c', 'k', 1, '5511987654321', 'skipped', 'opted_out', 't')",
            &[],
        )
        .unwrap();
        let r = l
            .remove_opt_outs(
                &["5511987654321".to_string(), "5511900000000".to_string()],
                Some("opted back in by phone"),
            )
            .unwrap();
        assert_eq!(r.removed, ["5511987654321"]);
        assert_eq!(r.not_listed, ["5511900000000"]);
        assert_eq!(r.still_skipped, 1);
        let list = l.opt_out_list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].source, "import");
        let h = l.opt_out_history().unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].entry.note.as_deref(), Some("crm"));
        assert_eq!(h[0].removed_note.as_deref(), Some("opted back in by phone"));
    }
}
