//! `cosmocast check`: reads everything, renders every row, validates every request; touches no
//! network and no ledger. Every problem is printed as `file:line[:col]: message — hint`.

use std::path::Path;

use serde_json::json;

use super::{environment_problems, load, scan};
use crate::error::{Exit, Problems};
use crate::ledger::KnownMap;

pub fn run(path: &Path, json_out: bool, quiet: bool) -> anyhow::Result<Exit> {
    let loaded = load(path)?;
    let mut s = scan(
        &loaded,
        KnownMap::with_capacity(loaded.estimated_rows()),
        None,
    )?;
    let env = environment_problems(&loaded.campaign);
    s.problem_count += env.len() as u64;
    s.problems.splice(0..0, env);
    let c = &loaded.campaign;
    if json_out {
        println!(
            "{}",
            json!({
                "campaign": c.name,
                "ok": s.problem_count == 0,
                "rows": s.rows,
                "contacts": s.contacts,
                "duplicates": s.duplicates,
                "invalid_rows": s.invalid_rows,
                "problems": s.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "problem_count": s.problem_count,
            })
        );
    }
    if s.problem_count > 0 {
        let shown = s.problems.len() as u64;
        let problems = Problems { list: s.problems };
        if !json_out {
            eprintln!("{problems}");
            if s.problem_count > shown {
                eprintln!(
                    "({} problems in all; fix these and check again to see the rest)",
                    s.problem_count
                );
            }
        }
        return Ok(Exit::CannotRun);
    }
    if !quiet && !json_out {
        println!(
            "{}: ok — {} rows, {} contacts to message{}, {} message item{} each; nothing was sent",
            path.display(),
            s.rows,
            s.contacts,
            if s.duplicates > 0 {
                format!(" ({} duplicate keys will be skipped)", s.duplicates)
            } else {
                String::new()
            },
            c.messages.len(),
            if c.messages.len() == 1 { "" } else { "s" },
        );
    }
    Ok(Exit::Ok)
}
