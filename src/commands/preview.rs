//! `cosmocast preview`: given rows' messages as the customer will read them, on the terminal
//! (default), as the bare request JSON (`--json`), or as a page of chat bubbles (`--html`).
//! The token never appears; nothing but the `--html` file is written.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::api::SendRequest;
use crate::audience::Verdict;
use crate::campaign::Campaign;
use crate::commands::report::refuse_to_overwrite;
use crate::contacts::{Headers, Row};
use crate::error::{Exit, Fatal, Problems};
use crate::plan::Plan;
use crate::view::{self, PhoneShown};

/// How `preview` shows the rows.
pub(crate) enum Shown {
    Terminal,
    Json,
    Html(PathBuf),
}

/// Terminal lines wider than this are hard to read, and no phone is that wide.
const MAX_WIDTH: usize = 100;

pub(crate) fn run(path: &Path, rows: &[u64], shown: &Shown, quiet: bool) -> anyhow::Result<Exit> {
    let plan = Plan::load(path)?;
    if let Shown::Html(out) = shown {
        let c = &plan.campaign;
        refuse_to_overwrite(out, &[path, &c.ledger, &c.contacts.file])?;
    }
    let wanted: Vec<u64> = if rows.is_empty() {
        vec![1, 2, 3]
    } else {
        rows.to_vec()
    };
    let width = terminal_width();
    let mut chats = Vec::new();
    let mut problems = Problems::default();
    let found = each_row(&plan, &wanted, &mut problems, |p| match shown {
        Shown::Json => match p.rendered {
            // `--json` prints the bare requests, one a line; notes go to stderr.
            None => eprintln!("{}", p.heading()),
            Some(req) => println!("{}", serde_json::to_string(req).unwrap_or_default()),
        },
        Shown::Terminal => {
            println!("{}", p.heading());
            if let Some(req) = p.rendered {
                println!("{}", view::terminal(req, p.phone.as_ref(), width));
            } else {
                println!();
            }
        }
        Shown::Html(_) => chats.push((
            p.title(),
            p.rendered.map_or(String::new(), |req| {
                view::bubbles_html(req, p.phone.as_ref())
            }),
        )),
    })?;
    if found == 0 && problems.is_empty() {
        return Err(Fatal::new(Exit::CannotRun, no_such_rows(&plan, &wanted)).into());
    }
    if let Shown::Html(out) = shown {
        let title = format!("{}: preview", plan.campaign.name);
        std::fs::write(out, view::bubbles_page(&title, &chats))
            .with_context(|| format!("cannot write {}", out.display()))?;
        if !quiet {
            println!("preview: wrote {}", out.display());
        }
    }
    if !problems.is_empty() {
        eprintln!("{problems}");
        return Ok(Exit::CannotRun);
    }
    Ok(Exit::Ok)
}

/// One wanted row, decided.
struct Previewed<'a> {
    number: u64,
    /// `contacts.csv:LINE`
    place: String,
    key: Option<&'a str>,
    /// Why it will not be sent, when it will not.
    note: &'static str,
    rendered: Option<&'a SendRequest>,
    phone: Option<PhoneShown>,
}

impl Previewed<'_> {
    /// `── row N (contacts.csv:LINE) key K — note`
    fn heading(&self) -> String {
        let key = self.key.map_or(String::new(), |k| format!(" key {k}"));
        format!("── row {} ({}){key}{}", self.number, self.place, self.note)
    }

    /// `Row N (contacts.csv:LINE), key K — note`, for a page.
    fn title(&self) -> String {
        let key = self.key.map_or(String::new(), |k| format!(", key {k}"));
        format!("Row {} ({}){key}{}", self.number, self.place, self.note)
    }
}

/// Calls `show` for each wanted row in file order; returns how many were found. A row that
/// cannot be rendered adds its problems instead.
fn each_row(
    plan: &Plan,
    wanted: &[u64],
    problems: &mut Problems,
    mut show: impl FnMut(Previewed<'_>),
) -> anyhow::Result<usize> {
    let max = wanted.iter().copied().max().unwrap_or(0);
    let mut reader = plan.reader()?;
    let csv = reader.path().to_path_buf();
    let headers = reader.headers.clone();
    let mut found = 0;
    for row in reader.by_ref() {
        let row = match row {
            Ok(r) => r,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        if row.number > max {
            break;
        }
        if !wanted.contains(&row.number) {
            continue;
        }
        found += 1;
        let place = format!("{}:{}", csv.display(), row.line);
        let (note, rendered) = match plan.audience.classify(&row, &csv) {
            Verdict::Filtered => (
                " — not part of the campaign: `contacts.where` is false",
                None,
            ),
            Verdict::Invalid(e) => {
                problems.list.extend(e.problems);
                continue;
            }
            Verdict::Excluded(r) => (" — excluded by `contacts.exclude`, never sent", Some(r)),
            Verdict::OptedOut(r) => (" — the phone opted out, never sent", Some(r)),
            Verdict::Ready(r) => ("", Some(r)),
        };
        show(Previewed {
            number: row.number,
            place,
            key: rendered.as_ref().map(|r| r.key.as_str()),
            note,
            phone: rendered
                .as_ref()
                .and_then(|r| phone_shown(&plan.campaign, &headers, &row, &r.request)),
            rendered: rendered.as_ref().map(|r| &r.request),
        });
    }
    Ok(found)
}

fn no_such_rows(plan: &Plan, wanted: &[u64]) -> String {
    let list: Vec<String> = wanted.iter().map(u64::to_string).collect();
    format!(
        "{} has no row {}",
        plan.campaign.contacts.file.display(),
        list.join(", ")
    )
}

/// The terminal's width when output goes to one (stdout, else stderr when stdout is piped to
/// a pager), else 80; at most [`MAX_WIDTH`].
fn terminal_width() -> usize {
    let size = if std::io::stdout().is_terminal() {
        console::Term::stdout().size_checked()
    } else if std::io::stderr().is_terminal() {
        console::Term::stderr().size_checked()
    } else {
        None
    };
    size.map_or(80, |(_, cols)| usize::from(cols))
        .min(MAX_WIDTH)
}

/// The request's phone as the contact file wrote it and as the API receives it. The number as
/// written is the cell itself when `contact.mobile_phone` is a plain `{{ column }}`; for any
/// other template only the normalised number is known.
pub(crate) fn phone_shown(
    c: &Campaign,
    headers: &Headers,
    row: &Row,
    req: &SendRequest,
) -> Option<PhoneShown> {
    let normalised = req.contact.mobile_phone.clone()?;
    let as_written = c
        .contact
        .mobile_phone
        .as_deref()
        .and_then(plain_variable)
        .and_then(|column| headers.get(column))
        .and_then(|i| row.record.get(i))
        .filter(|cell| !cell.trim().is_empty())
        .map_or_else(|| normalised.clone(), str::to_string);
    Some(PhoneShown {
        as_written,
        normalised,
    })
}

/// `name` when the template is exactly `{{ name }}`.
fn plain_variable(template: &str) -> Option<&str> {
    let inner = template
        .trim()
        .strip_prefix("{{")?
        .strip_suffix("}}")?
        .trim();
    let ident = !inner.is_empty()
        && inner
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && !inner.starts_with(|ch: char| ch.is_ascii_digit());
    ident.then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_variable_names_a_column() {
        assert_eq!(plain_variable("{{ phone }}"), Some("phone"));
        assert_eq!(plain_variable(" {{phone_2}} "), Some("phone_2"));
        assert_eq!(plain_variable("{{ phone | digits }}"), None);
        assert_eq!(plain_variable("+55{{ phone }}"), None);
        assert_eq!(plain_variable("{{ 2x }}"), None);
        assert_eq!(plain_variable("{{ }}"), None);
    }
}
