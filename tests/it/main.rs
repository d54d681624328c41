//! The integration tests, one binary (as ripgrep and uv keep theirs): each module drives the
//! real `cosmocast` binary against real servers on 127.0.0.1 and real ledger files in temporary
//! folders. One binary links once, where a binary per file linked the whole program each time.

// A test is one scenario, told from start to end: some are longer than the 80 lines and five
// parameters the library keeps to.
#![allow(clippy::too_many_lines, clippy::too_many_arguments)]

mod common;

mod accounting;
mod broken;
mod check;
mod delivery;
mod guard;
mod hostile;
mod input;
mod phones;
mod postgres;
mod replies;
mod report;
mod run;
mod schema;
mod workers;
mod workspace;
