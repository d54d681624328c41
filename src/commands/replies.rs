//! `cosmocast replies`: the replies `listen` stored for a campaign, as CSV or JSON lines. Reads
//! the ledger without writing to it.

use std::io::{IsTerminal, Write};

use super::export::neutralise;
use super::output::{Output, campaign_files, refuse_to_overwrite};
use crate::campaign;
use crate::cli::{Format, RepliesArgs};
use crate::error::{Exit, Fatal};
use crate::ledger::Ledger;
use crate::plan::ledger_for;
use crate::text::cell;

pub(crate) fn run(args: &RepliesArgs) -> anyhow::Result<Exit> {
    let c = campaign::load(&args.campaign)?;
    let file = ledger_for(&c, &args.ledger.ledger, args.ledger.sandbox)?;
    if let Some(out) = &args.out.output {
        refuse_to_overwrite(out, &campaign_files(&c, file.place.file()))?;
    }
    let Some(ledger) = Ledger::open_read(&file.place)? else {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!("no ledger at {file}: nothing was sent or received yet (nothing was created)"),
        )
        .into());
    };
    let mut sink = Output::open(args.out.output.as_deref())?;
    // CSV read on a terminal is read by a person: its cells from outside (replies) are shown
    // escaped there, and kept as they came in a file or a pipe, where they are data.
    let on_terminal = args.out.output.is_none() && std::io::stdout().is_terminal();
    match args.out.format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut sink);
            w.write_record([
                "received_at",
                "key",
                "contact_id",
                "phone",
                "type",
                "text",
                "payload",
                "opt_out",
            ])?;
            ledger.replies(&c.name, |r| {
                let o = |v: &Option<String>| {
                    neutralise(&cell(v.as_deref().unwrap_or(""), on_terminal)).into_owned()
                };
                w.write_record([
                    r.received_at.clone(),
                    o(&r.contact_key),
                    o(&r.contact_id),
                    o(&r.phone),
                    o(&r.kind),
                    o(&r.text),
                    o(&r.payload),
                    if r.opt_out { "yes" } else { "" }.to_string(),
                ])?;
                Ok(())
            })?;
            w.flush()?;
        }
        Format::Jsonl => ledger.replies(&c.name, |r| {
            serde_json::to_writer(&mut sink, &r)?;
            sink.write_all(b"\n")?;
            Ok(())
        })?,
    }
    sink.finish()?;
    Ok(Exit::Ok)
}
