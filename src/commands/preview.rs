//! `cosmocast preview`: given rows' messages as the customer will read them, on the terminal
//! (default), as the bare request JSON (`--json`), or as a page of chat bubbles (`--html`).
//! The token never appears; nothing but the `--html` file is written.

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::api::SendRequest;
use crate::audience::Verdict;
use crate::cli::PreviewArgs;
use crate::commands::output::{campaign_files, refuse_to_overwrite};
use crate::error::{Exit, Fatal, Problem, Problems};
use crate::plan::Plan;
use crate::printer::Printer;
use crate::view::{self, PhoneShown, phone_shown};

/// How `preview` shows the rows.
enum Shown<'a> {
    Terminal,
    Json,
    Html(&'a Path),
}

impl Shown<'_> {
    fn of(args: &PreviewArgs) -> Shown<'_> {
        match (args.json, &args.html) {
            (true, _) => Shown::Json,
            (false, Some(file)) => Shown::Html(file),
            (false, None) => Shown::Terminal,
        }
    }
}

/// Terminal lines wider than this are hard to read, and no phone is that wide.
const MAX_WIDTH: usize = 100;

pub(crate) fn run(args: &PreviewArgs, printer: Printer) -> anyhow::Result<Exit> {
    let shown = Shown::of(args);
    let plan = Plan::load(&args.campaign)?;
    if let Shown::Html(out) = shown {
        let c = &plan.campaign;
        // The workspace's ledger, as far as it can be told without a --ledger flag here.
        let ledger = crate::ledger::locate::resolve(None)
            .ok()
            .and_then(|l| l.place.file().map(Path::to_path_buf));
        refuse_to_overwrite(out, &campaign_files(c, ledger.as_deref()))?;
    }
    let wanted: Vec<u64> = if args.rows.is_empty() {
        vec![1, 2, 3]
    } else {
        args.rows.clone()
    };
    let width = terminal_width();
    let mut chats = Vec::new();
    let mut problems = Problems::default();
    let mut stdout = super::output::stdout();
    let found = each_row(&plan, &wanted, &mut problems, |p| match shown {
        Shown::Json => match p.rendered {
            // `--json` prints the bare requests, one a line; notes go to stderr.
            None => {
                printer.important(p.heading());
                Ok(())
            }
            Some(req) => writeln!(stdout, "{}", serde_json::to_string(req).unwrap_or_default()),
        },
        Shown::Terminal => {
            writeln!(stdout, "{}", p.heading())?;
            if let Some(req) = p.rendered {
                writeln!(stdout, "{}", view::terminal(req, p.phone.as_ref(), width))
            } else {
                writeln!(stdout)
            }
        }
        Shown::Html(_) => {
            chats.push((
                p.title(),
                p.rendered.map_or(String::new(), |req| {
                    view::bubbles_html(req, p.phone.as_ref())
                }),
            ));
            Ok(())
        }
    })?;
    let missing: Vec<u64> = wanted
        .iter()
        .copied()
        .filter(|n| !found.contains(n))
        .collect();
    if found.is_empty() && problems.is_empty() {
        return Err(Fatal::new(Exit::CannotRun, no_such_rows(&plan, &missing)).into());
    }
    // Rows asked for by number must all be there; the default first three need not be.
    if !args.rows.is_empty() && !missing.is_empty() {
        problems.push(
            Problem::new(
                &plan.campaign.contacts.file,
                None,
                format!("there is no row {}", numbers(&missing)),
            )
            .hint("rows are numbered from 1, the first row under the header"),
        );
    }
    if let Shown::Html(out) = shown {
        let title = format!("{}: preview", plan.campaign.name);
        super::output::replace(out, view::bubbles_page(&title, &chats).as_bytes())?;
        writeln!(printer.stdout(), "preview: wrote {}", out.display())?;
    }
    if !problems.is_empty() {
        // A preview sends nothing: the listing, without a refusal's "nothing was sent".
        printer.important(crate::text::printable_lines(&problems.listing()));
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
        // The key is the CSV's: shown, never obeyed, by the terminal.
        let key = self.key.map_or(String::new(), |k| {
            format!(" key {}", crate::text::printable(k))
        });
        format!("── row {} ({}){key}{}", self.number, self.place, self.note)
    }

    /// `Row N (contacts.csv:LINE), key K — note`, for a page.
    fn title(&self) -> String {
        let key = self.key.map_or(String::new(), |k| format!(", key {k}"));
        format!("Row {} ({}){key}{}", self.number, self.place, self.note)
    }
}

/// Calls `show` for each wanted row in file order; returns the numbers of those found. A row
/// that cannot be rendered is shown with a note, and adds its problems; an error of `show`
/// (stdout full) stops.
fn each_row(
    plan: &Plan,
    wanted: &[u64],
    problems: &mut Problems,
    mut show: impl FnMut(Previewed<'_>) -> std::io::Result<()>,
) -> anyhow::Result<Vec<u64>> {
    let max = wanted.iter().copied().max().unwrap_or(0);
    let mut reader = plan.reader()?;
    let csv = reader.path().to_path_buf();
    let mut found = Vec::new();
    while let Some(row) = reader.next() {
        let row = match row {
            Ok(r) => r,
            // A file that cannot be read on ends every row after the problem.
            Err(p) if reader.failed() => {
                problems.push(p);
                break;
            }
            // A row the CSV reader rejects is a row asked for all the same: found, with its
            // problem (other rows' problems are `check`'s to list).
            Err(p) => {
                let number = reader.rows_read();
                if wanted.contains(&number) {
                    found.push(number);
                    show(Previewed {
                        number,
                        place: match p.line {
                            Some(line) => format!("{}:{line}", csv.display()),
                            None => csv.display().to_string(),
                        },
                        key: None,
                        note: " — cannot be read: its problem is listed below",
                        rendered: None,
                        phone: None,
                    })?;
                    problems.push(p);
                }
                if number >= max {
                    break;
                }
                continue;
            }
        };
        if row.number > max {
            break;
        }
        if !wanted.contains(&row.number) {
            continue;
        }
        found.push(row.number);
        let place = format!("{}:{}", csv.display(), row.line);
        let (note, rendered) = match plan.audience.classify(&row, &csv) {
            Verdict::Blank => (" — every cell is empty: nobody, never sent", None),
            Verdict::Filtered => (
                " — not part of the campaign: `contacts.where` is false",
                None,
            ),
            // Shown too (a page must not drop a row it was asked for); the problems follow.
            Verdict::Invalid(e) => {
                problems.list.extend(e.problems);
                (" — cannot be sent: its problems are listed below", None)
            }
            // A preview reads no ledger: what a run does, not what one did.
            Verdict::Excluded(r) => (
                " — excluded by `contacts.exclude`: a run does not send it",
                Some(r),
            ),
            Verdict::OptedOut(r) => (
                " — the phone is on the suppression list: a run does not send it",
                Some(r),
            ),
            Verdict::Ready(r) => ("", Some(r)),
        };
        show(Previewed {
            number: row.number,
            place,
            key: rendered.as_ref().map(|r| r.key.as_str()),
            note,
            phone: rendered.as_ref().and_then(phone_shown),
            rendered: rendered.as_ref().map(|r| &r.request),
        })?;
    }
    Ok(found)
}

fn no_such_rows(plan: &Plan, wanted: &[u64]) -> String {
    format!(
        "{} has no row {}",
        plan.campaign.contacts.file.display(),
        numbers(wanted)
    )
}

/// `3, 99`
fn numbers(rows: &[u64]) -> String {
    let list: Vec<String> = rows.iter().map(u64::to_string).collect();
    list.join(", ")
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
