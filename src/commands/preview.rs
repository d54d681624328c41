//! `cosmocast preview`: the request given rows would send. The token never appears.

use std::path::Path;

use crate::audience::Verdict;
use crate::error::{Exit, Fatal, Problems};
use crate::plan::Plan;

pub(crate) fn run(path: &Path, rows: &[u64], json_out: bool) -> anyhow::Result<Exit> {
    let plan = Plan::load(path)?;
    let c = &plan.campaign;
    let wanted: Vec<u64> = if rows.is_empty() {
        vec![1, 2, 3]
    } else {
        rows.to_vec()
    };
    let max = wanted.iter().copied().max().unwrap_or(0);
    let mut reader = plan.reader()?;
    let csv = reader.path().to_path_buf();
    let mut shown = 0;
    let mut problems = Problems::default();
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
        shown += 1;
        let verdict = plan.audience.classify(&row, &csv);
        let note = match &verdict {
            Verdict::Filtered => {
                println!(
                    "── row {} ({}:{}) is not part of the campaign: `contacts.where` is false\n",
                    row.number,
                    csv.display(),
                    row.line
                );
                continue;
            }
            Verdict::Excluded(_) => " — excluded by `contacts.exclude`, never sent",
            Verdict::OptedOut(_) => " — the phone opted out, never sent",
            _ => "",
        };
        match verdict {
            Verdict::Filtered => {}
            Verdict::Ready(r) | Verdict::Excluded(r) | Verdict::OptedOut(r) => {
                if json_out {
                    println!("{}", serde_json::to_string(&r.request)?);
                } else {
                    println!(
                        "── row {} ({}:{}) key {}{note}",
                        row.number,
                        csv.display(),
                        row.line,
                        r.key
                    );
                    println!("POST {}", c.api.url);
                    println!("token: <from {}>", c.api.token.origin());
                    println!("channel_id: <from {}>", c.api.channel_id.origin());
                    println!("{}\n", serde_json::to_string_pretty(&r.request)?);
                }
            }
            Verdict::Invalid(e) => problems.list.extend(e.problems),
        }
    }
    if shown == 0 && problems.is_empty() {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "{} has no row {}",
                csv.display(),
                wanted
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into());
    }
    if !problems.is_empty() {
        eprintln!("{problems}");
        return Ok(Exit::CannotRun);
    }
    Ok(Exit::Ok)
}
