//! Who the campaign is for: the `contacts.where` filter, the `contacts.exclude` lists, and each
//! row rendered and validated. `check`, `run`, `status` and `preview` all decide rows here.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use crate::api::normalise_phone;
use crate::campaign::Campaign;
use crate::contacts::{Row, detect_delimiter};
use crate::error::Problem;
use crate::ledger::{KnownMap, key_id};
use crate::render::{Rendered, Renderer, RowError};
use crate::send::feed::{Resend, decide};

/// What one row needs.
#[derive(Debug)]
pub enum Verdict {
    /// `contacts.where` is false: not part of the campaign, not recorded.
    Filtered,
    /// It cannot become a valid request.
    Invalid(RowError),
    /// Its key or phone is on an exclusion list: recorded `skipped: excluded`.
    Excluded(Rendered),
    /// Its phone asked never to be messaged again: recorded `skipped: opted_out`.
    OptedOut(Rendered),
    /// Ready to send.
    Ready(Rendered),
}

#[derive(Clone)]
pub struct Audience {
    pub renderer: Arc<Renderer>,
    exclude: HashSet<String>,
    /// Phones on the ledger's opt-out list (empty where no ledger is read, as in `check`).
    opted_out: HashSet<String>,
}

impl Audience {
    pub fn new(renderer: Arc<Renderer>, exclude: HashSet<String>) -> Audience {
        Audience {
            renderer,
            exclude,
            opted_out: HashSet::new(),
        }
    }

    /// The same audience, minus the phones that opted out.
    pub fn with_opt_outs(&self, opted_out: HashSet<String>) -> Audience {
        Audience {
            opted_out,
            ..self.clone()
        }
    }

    pub fn classify(&self, row: &Row, csv: &Path) -> Verdict {
        match self.renderer.included(row, csv) {
            Ok(true) => {}
            Ok(false) => return Verdict::Filtered,
            Err(e) => return Verdict::Invalid(e),
        }
        match self.renderer.render(row, csv) {
            Err(e) => Verdict::Invalid(e),
            Ok(r) if self.is_excluded(&r) => Verdict::Excluded(r),
            Ok(r) if r.phone.as_ref().is_some_and(|p| self.opted_out.contains(p)) => {
                Verdict::OptedOut(r)
            }
            Ok(r) => Verdict::Ready(r),
        }
    }

    /// For a row whose contact the ledger already settles (no send is due under `resend`): its
    /// key, found without rendering the request. `None`: classify the row in full.
    pub fn settled_key(
        &self,
        row: &Row,
        csv: &Path,
        known: &KnownMap,
        resend: Resend,
    ) -> Option<String> {
        if !known.has_states() || !matches!(self.renderer.included(row, csv), Ok(true)) {
            return None;
        }
        let key = self.renderer.key(row, csv).ok()??;
        let status = known.get(&key_id(&key))?.status?;
        decide(Some(status), resend).is_none().then_some(key)
    }

    fn is_excluded(&self, r: &Rendered) -> bool {
        !self.exclude.is_empty()
            && (self.exclude.contains(r.key.trim())
                || r.phone.as_ref().is_some_and(|p| self.exclude.contains(p)))
    }
}

/// Reads every exclusion file: each cell is a key or a phone (phones are matched by digits).
pub fn load_exclusions(c: &Campaign) -> Result<HashSet<String>, Vec<Problem>> {
    let mut set = HashSet::new();
    let mut problems = Vec::new();
    for (i, path) in c.contacts.exclude.iter().enumerate() {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                problems.push(
                    c.problem_at(&format!("contacts.exclude[{i}]"), format!("cannot read the exclusion list {}: {e}", path.display()))
                        .hint("fix the path (relative to the campaign file) or remove it from `contacts.exclude`"),
                );
                continue;
            }
        };
        let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(detect_delimiter(text))
            .from_reader(text);
        for record in reader.byte_records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map(|p| p.line() as usize);
                    problems.push(Problem::new(
                        path,
                        line,
                        format!("cannot read the exclusion list: {e}"),
                    ));
                    break;
                }
            };
            for cell in record.iter() {
                let cell = String::from_utf8_lossy(cell);
                let cell = cell.trim();
                if cell.is_empty() {
                    continue;
                }
                let digits = normalise_phone(cell);
                if digits.len() >= 8 {
                    set.insert(digits);
                }
                set.insert(cell.to_string());
            }
        }
    }
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(problems)
    }
}
