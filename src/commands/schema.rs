//! `cosmocast schema`: prints the campaign file's JSON Schema (draft 2020-12), which editors use
//! to complete and check keys while the file is written.

use std::io::Write;

use anyhow::Context;

use crate::campaign::schema;
use crate::error::Exit;

pub(crate) fn run() -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    out.write_all(schema::pretty().as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write the schema to standard output")?;
    Ok(Exit::Ok)
}
