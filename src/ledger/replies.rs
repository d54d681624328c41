//! The replies a campaign got, as `status` and `replies` read them. The webhook stores them
//! (`webhook/store.rs`); here the ledger only answers questions about them.

use serde::Serialize;

use super::Ledger;
use super::db::{DbError, Sql, args};

/// Reply figures for one campaign.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct ReplyStats {
    pub(crate) replies: u64,
    pub(crate) contacts_replied: u64,
    /// The campaign's contacts sent or queued, in the ledger (those no longer in the contact
    /// file too: their replies are counted).
    pub(crate) reached: u64,
    /// How many of them replied.
    pub(crate) replied_reached: u64,
    /// `replied_reached` over `reached`: one numerator and one denominator, which the report
    /// and `status` print beside it.
    pub(crate) reply_rate: f64,
    pub(crate) clicks: std::collections::BTreeMap<String, u64>,
    pub(crate) opt_outs: u64,
}

/// One stored reply, for `cosmocast replies`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReplyRow {
    pub(crate) received_at: String,
    pub(crate) contact_key: Option<String>,
    pub(crate) contact_id: Option<String>,
    pub(crate) phone: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) text: Option<String>,
    pub(crate) payload: Option<String>,
    pub(crate) raw: String,
    /// The reply asked never to be messaged again (an opt-out word or phrase).
    pub(crate) opt_out: bool,
}

impl Ledger {
    pub(crate) fn reply_stats(&self, campaign: &str) -> anyhow::Result<ReplyStats> {
        let (replies, contacts_replied): (u64, u64) = self
            .db
            .row(
                "SELECT COUNT(*), COUNT(DISTINCT contact_key) FROM replies WHERE campaign = ?1",
                args![campaign],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .unwrap_or_default();
        let reached: u64 = self.db.value(
            "SELECT COUNT(*) FROM contacts WHERE campaign = ?1 AND status IN ('sent', 'queued')",
            args![campaign],
        )?;
        let replied_reached: u64 = self.db.value(
            "SELECT COUNT(DISTINCT r.contact_key) FROM replies r
             JOIN contacts c ON c.campaign = r.campaign AND c.key = r.contact_key
             WHERE r.campaign = ?1 AND c.status IN ('sent', 'queued')",
            args![campaign],
        )?;
        let clicks = self
            .db
            .rows(
                "SELECT payload, COUNT(*) FROM replies WHERE campaign = ?1 AND payload IS NOT NULL GROUP BY payload",
                args![campaign],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .into_iter()
            .collect();
        let opt_outs: u64 = self.db.value(
            concat!(
                "SELECT COUNT(*) FROM replies r WHERE r.campaign = ?1 AND r.id IN ",
                opting_out!()
            ),
            args![campaign],
        )?;
        Ok(ReplyStats {
            replies,
            contacts_replied,
            reached,
            replied_reached,
            reply_rate: if reached > 0 {
                replied_reached as f64 / reached as f64
            } else {
                0.0
            },
            clicks,
            opt_outs,
        })
    }

    /// Streams a campaign's replies, oldest first.
    pub(crate) fn replies(
        &self,
        campaign: &str,
        mut each: impl FnMut(ReplyRow) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut failed = None;
        let read = self.db.for_each(
            "SELECT received_at, contact_key, contact_id, phone, type, text, payload, raw, opt_out
             FROM replies WHERE campaign = ?1 ORDER BY received_at, id",
            args![campaign],
            &mut |r| {
                let row = ReplyRow {
                    received_at: r.get(0)?,
                    contact_key: r.get(1)?,
                    contact_id: r.get(2)?,
                    phone: r.get(3)?,
                    kind: r.get(4)?,
                    text: r.get(5)?,
                    payload: r.get(6)?,
                    raw: r.get(7)?,
                    opt_out: r.get(8)?,
                };
                each(row).map_err(|e| {
                    failed = Some(e);
                    DbError::Value("stopped by the reader".into())
                })
            },
        );
        match failed {
            Some(e) => Err(e),
            None => Ok(read?),
        }
    }
}
