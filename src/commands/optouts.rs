//! `cosmocast optouts`: the ledger's suppression list, which every campaign of the ledger skips
//! (`skipped: opted_out`). `list` shows it, `add` and `remove` change it by hand, `import` brings
//! in a list from one column of a CSV file in one transaction. Phones are kept in the normalised
//! form campaigns compare, so a list written `(11) 98765-4321` stops a CSV that writes
//! `+55 11 98765-4321`.

use std::io::Write;

use crate::cli::{
    OptoutsAction, OptoutsAddArgs, OptoutsArgs, OptoutsImportArgs, OptoutsListArgs,
    OptoutsRemoveArgs,
};
use crate::contacts::ContactReader;
use crate::error::{Exit, Fatal, Problem};
use crate::ledger::Ledger;
use crate::ledger::locate::{self, Located};
use crate::ledger::optouts::{OptOut, Source};
use crate::phone::{self, Region};
use crate::printer::Printer;
use crate::text::count;

/// How many unreadable lines an import prints before it only counts them.
const SHOWN: usize = 20;

pub(crate) fn run(args: OptoutsArgs, printer: Printer) -> anyhow::Result<Exit> {
    let located = locate::in_working_folder(args.ledger.as_deref())?;
    let located = if args.sandbox {
        located.sandbox()
    } else {
        located
    };
    match &args.action {
        OptoutsAction::List(how) => list(&located, how),
        OptoutsAction::Add(what) => add(&located, what, printer),
        OptoutsAction::Remove(what) => remove(&located, what, printer),
        OptoutsAction::Import(how) => import(&located, how, printer),
    }
}

/// The ledger for a change to the list, created when missing as `run` creates it (a folder
/// named by hand must exist already; the default one is made).
fn open_for_change(l: &Located) -> anyhow::Result<Ledger> {
    l.prepare_folder()?;
    Ledger::open_write(&l.place)
}

/// Every phone normalised, or the ones that are not phones, each with what to do.
fn normalised(phones: &[String], region: Option<&Region>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for p in phones {
        match phone::normalise(p, region) {
            Ok(n) => out.push(n.digits),
            Err(e) => {
                let (message, hint) = phone_problem(&e);
                bad.push(format!("  {p:?}: {message} — {hint}"));
            }
        }
    }
    if bad.is_empty() {
        return Ok(out);
    }
    Err(Fatal::new(
        Exit::CannotRun,
        format!(
            "{} cannot be read as a phone number; nothing was changed:\n{}",
            if bad.len() == 1 { "this one" } else { "these" },
            bad.join("\n")
        ),
    )
    .into())
}

fn add(l: &Located, what: &OptoutsAddArgs, printer: Printer) -> anyhow::Result<Exit> {
    let phones = normalised(&what.phones, what.country.region()?.as_ref())?;
    let ledger = open_for_change(l)?;
    let done = ledger.add_opt_outs(&phones, Source::Manual, what.note.as_deref())?;
    writeln!(
        printer.stdout(),
        "optouts: added {}{}; ledger {l}",
        count(done.added, "phone"),
        match done.already {
            0 => String::new(),
            n => format!(" ({n} already on the list, kept as they were)"),
        }
    )?;
    Ok(Exit::Ok)
}

fn remove(l: &Located, what: &OptoutsRemoveArgs, printer: Printer) -> anyhow::Result<Exit> {
    // An entry kept as it came (a webhook's number without its country code) is removed as it
    // is listed; the others are read as phones.
    let listed = match Ledger::open_read(&l.place)? {
        Some(ledger) => ledger.opt_outs()?,
        None => Default::default(),
    };
    let digits = |p: &str| -> String { p.chars().filter(char::is_ascii_digit).collect() };
    let (as_listed, others): (Vec<String>, Vec<String>) = what
        .phones
        .iter()
        .cloned()
        .partition(|p| listed.contains(&digits(p)));
    let region = what.country.region()?;
    let phones = normalised(&others, region.as_ref())?;
    // A number given whole that is not listed may be listed as a webhook left it, without its
    // country code (`21970042004` for `+55 21 97004-2004`): the whole number is that one behind
    // a country code of one to three digits.
    let mut phones: Vec<String> = phones
        .into_iter()
        .map(|n| {
            if listed.contains(&n) {
                return n;
            }
            listed
                .iter()
                .find(|e| {
                    e.len() >= 8
                        && n.ends_with(e.as_str())
                        && (1..=3).contains(&(n.len() - e.len()))
                })
                .cloned()
                .unwrap_or(n)
        })
        .collect();
    // One listed as it came is also removed as it reads now, when it reads (--country).
    for p in &as_listed {
        phones.push(digits(p));
        if let Ok(n) = phone::normalise(p, region.as_ref())
            && listed.contains(&n.digits)
            && !phones.contains(&n.digits)
        {
            phones.push(n.digits);
        }
    }
    let ledger = open_for_change(l)?;
    let done = ledger.remove_opt_outs(&phones, what.note.as_deref())?;
    let out = &mut printer.stdout();
    writeln!(
        out,
        "optouts: removed {}{}; ledger {l}",
        count(done.removed.len() as u64, "phone"),
        if done.removed.is_empty() {
            ""
        } else {
            " (kept in the history)"
        }
    )?;
    if done.still_skipped > 0 {
        writeln!(
            out,
            "  {} already recorded `skipped: opted_out` in a campaign {} so; later decisions message these phones again",
            count(done.still_skipped, "contact"),
            if done.still_skipped == 1 {
                "stays"
            } else {
                "stay"
            }
        )?;
    }
    if done.not_listed.is_empty() {
        return Ok(Exit::Ok);
    }
    printer.important(format_args!(
        "optouts: not on the list, so not removed: {}",
        done.not_listed.join(", ")
    ));
    Ok(Exit::Incomplete)
}

fn list(l: &Located, how: &OptoutsListArgs) -> anyhow::Result<Exit> {
    let ledger = Ledger::open_read(&l.place)?;
    let (entries, history) = match &ledger {
        Some(ledger) => (ledger.opt_out_list()?, ledger.opt_out_history()?),
        None => (Vec::new(), Vec::new()),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if how.json {
        let doc = serde_json::json!({
            "ledger": l.place.to_string(),
            "opt_outs": entries,
            "removed": history,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else if how.csv {
        let mut w = csv::Writer::from_writer(&mut out);
        w.write_record(["phone", "source", "added_at", "campaign", "note"])?;
        for e in &entries {
            let cell = |v: &Option<String>| {
                super::export::neutralise(v.as_deref().unwrap_or("")).into_owned()
            };
            w.write_record([
                e.phone.clone(),
                e.source.clone(),
                e.added_at.clone(),
                cell(&e.campaign),
                cell(&e.note),
            ])?;
        }
        w.flush()?;
    } else {
        write_text(&mut out, l, ledger.is_some(), &entries, history.len())?;
    }
    out.flush()?;
    Ok(Exit::Ok)
}

fn write_text(
    out: &mut impl Write,
    l: &Located,
    exists: bool,
    entries: &[OptOut],
    removed: usize,
) -> std::io::Result<()> {
    writeln!(out, "ledger: {l}")?;
    if !exists {
        return writeln!(out, "no ledger yet: the suppression list is empty");
    }
    writeln!(
        out,
        "{} on the suppression list{}",
        count(entries.len() as u64, "phone"),
        match removed {
            0 => String::new(),
            n => format!(" ({n} taken off it: `--json` shows when and why)"),
        }
    )?;
    for e in entries {
        let why = match (e.source.as_str(), &e.text, &e.note) {
            (_, _, Some(note)) => note.clone(),
            ("reply", Some(text), None) => format!("replied {text:?}"),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {:<16} {:<7} {}  {:<20} {}",
            e.phone,
            e.source,
            crate::ledger::minute(&e.added_at),
            e.campaign.as_deref().unwrap_or("-"),
            crate::text::printable(&why)
        )?;
    }
    Ok(())
}

/// A phone that cannot be read, told as these commands are used: the country comes from
/// `--country` here, not from a campaign's `contacts.country`.
fn phone_problem(e: &phone::PhoneError) -> (String, String) {
    match e {
        phone::PhoneError::NeedsCountry { cell } if cell.bytes().all(|b| b.is_ascii_digit()) => (
            format!("`{cell}` is no valid number read as an international one (its country code first), and no --country was given to read it as a national one"),
            "check the number; or pass --country with the country of these numbers (for example --country BR), or write each number with + and its country code (+55 11 98765-4321)".into(),
        ),
        phone::PhoneError::NeedsCountry { cell } => (
            format!("`{cell}` has no country code and no --country was given, so its country is unknown"),
            "pass --country with the country of these numbers (for example --country BR), or write each number with + and its country code (+55 11 98765-4321)".into(),
        ),
        e => (e.to_string(), e.hint()),
    }
}

/// A problem of the contact reader, whose hints name the campaign's `contacts` keys, told with
/// `import`'s flags instead.
fn as_flags(mut p: Problem) -> Problem {
    fn flags(text: &str) -> String {
        let mut out = text.replace(
            "under `contacts`, e.g. `encoding: shift_jis`",
            "with --encoding, e.g. --encoding shift_jis",
        );
        // "add `encoding: E` under `contacts`" → "pass --encoding E", for any E.
        while let Some(at) = out.find("add `encoding: ") {
            let rest = &out[at + "add `encoding: ".len()..];
            let Some(end) = rest.find("` under `contacts`") else {
                break;
            };
            let label = rest[..end].to_string();
            let whole = format!("add `encoding: {label}` under `contacts`");
            out = out.replacen(&whole, &format!("pass --encoding {label}"), 1);
        }
        out
    }
    p.message = flags(&p.message);
    p.hint = p.hint.as_deref().map(flags);
    p
}

/// Opens the list to import, as the flags say how to read it, and finds its phone column.
fn open_list(how: &OptoutsImportArgs) -> anyhow::Result<(ContactReader, usize)> {
    let file = how.file.as_path();
    let usage = |m: String| Fatal::new(Exit::Usage, m);
    let delimiter = match how.delimiter.as_deref() {
        None => None,
        Some(d) => Some(crate::contacts::delimiter(d).ok_or_else(|| {
            usage(format!(
                "--delimiter {d:?} is not one character: use \",\", \";\", tab or \"|\""
            ))
        })?),
    };
    let encoding = match how.encoding.as_deref() {
        None => None,
        Some(e) => crate::contacts::encoding(e).map_err(|label| {
            usage(format!(
                "--encoding {label:?} is not an encoding cosmocast knows: use utf-8, windows-1252, iso-8859-1 … (WHATWG labels)"
            ))
        })?,
    };
    // The machine's own files are no list of phones: /proc/self/environ read as a CSV would
    // print the environment, token included, as its header.
    if let Some(found) = crate::campaign::system::system_path(file) {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "{}: leads to {}, in {}, which holds the system's own files, not a list of phones — export the list to a file of your own",
                file.display(),
                found.real.display(),
                found.root
            ),
        )
        .into());
    }
    if let Some(why) = crate::campaign::system::not_a_file(file) {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!("{} {why} — name the CSV file to import", file.display()),
        )
        .into());
    }
    let reader = ContactReader::open(file, delimiter, encoding)
        .map_err(|p| Fatal::new(Exit::CannotRun, as_flags(p).to_string()))?;
    let Some(col) = reader.headers.get(&how.column) else {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "{}: no column {:?}; the header has {} — name one with --column",
                file.display(),
                how.column,
                crate::api::truncate(
                    &reader
                        .headers
                        .names
                        .iter()
                        .map(|h| format!("{h:?}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    300
                )
            ),
        )
        .into());
    };
    Ok((reader, col))
}

/// Reads the column's phones: the valid ones, and a problem for each line left out.
fn read_column(how: &OptoutsImportArgs) -> anyhow::Result<(Vec<String>, Vec<Problem>)> {
    let file = how.file.as_path();
    let region = how.country.region()?;
    let (reader, col) = open_list(how)?;
    let mut phones = Vec::new();
    let mut problems = Vec::new();
    for row in reader {
        let row = match row {
            Ok(row) => row,
            Err(p) => {
                problems.push(as_flags(p));
                continue;
            }
        };
        let cell = row.record.get(col).unwrap_or("");
        if cell.trim().is_empty() {
            // A blank line of a spreadsheet's export is nobody; an empty cell beside others is.
            if !row.blank {
                problems.push(
                    Problem::new(
                        file,
                        Some(row.line as usize),
                        format!("{:?} is empty", how.column),
                    )
                    .hint("fill in the phone, or leave the line out"),
                );
            }
            continue;
        }
        match phone::normalise(cell, region.as_ref()) {
            Ok(p) => phones.push(p.digits),
            Err(e) => {
                let (message, hint) = phone_problem(&e);
                problems.push(Problem::new(file, Some(row.line as usize), message).hint(hint));
            }
        }
    }
    Ok((phones, problems))
}

fn import(l: &Located, how: &OptoutsImportArgs, printer: Printer) -> anyhow::Result<Exit> {
    let (read, problems) = read_column(how)?;
    // A phone the file holds twice (written two ways, say) is one phone, not one already listed.
    let mut seen = std::collections::HashSet::new();
    let phones: Vec<String> = read.iter().filter(|p| seen.insert(*p)).cloned().collect();
    let repeated = read.len() - phones.len();
    let ledger = open_for_change(l)?;
    let done = ledger.add_opt_outs(&phones, Source::Import, how.note.as_deref())?;
    writeln!(
        printer.stdout(),
        "optouts: imported {} from {}: {} new, {} already on the list{}; ledger {l}",
        count(phones.len() as u64, "phone"),
        how.file.display(),
        done.added,
        done.already,
        match repeated {
            0 => String::new(),
            n => format!(
                " ({} of the file repeated a phone above it)",
                count(n as u64, "line")
            ),
        }
    )?;
    if problems.is_empty() {
        return Ok(Exit::Ok);
    }
    for p in problems.iter().take(SHOWN) {
        printer.important(p);
    }
    if problems.len() > SHOWN {
        printer.important(format_args!("… and {} more", problems.len() - SHOWN));
    }
    printer.important(format_args!(
        "optouts: {} left out (the rest were imported): fix {} and import the file again",
        count(problems.len() as u64, "line"),
        if problems.len() == 1 { "it" } else { "them" }
    ));
    Ok(Exit::Incomplete)
}
