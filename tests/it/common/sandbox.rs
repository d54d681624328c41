//! A `cosmocast sandbox` child process with its request log, and the campaigns the delivery
//! and guard tests run against it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;

/// A `cosmocast sandbox` child process; killed on drop.
pub struct Sandbox {
    child: Child,
    pub url: String,
}

impl Sandbox {
    pub fn start(dir: &Path, flags: &[&str]) -> Sandbox {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cosmocast"))
            .args(["sandbox", "--addr", "127.0.0.1:0", "--log"])
            .arg(dir.join("accepted.jsonl"))
            .args(flags)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        Sandbox { child, url }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When the sandbox accepted each request, in seconds since it started, earliest first (read
/// once the runs have ended: every line is whole).
pub fn accepted_times(dir: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("accepted.jsonl")).unwrap();
    let mut times: Vec<f64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["t"]
                .as_f64()
                .unwrap()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// How many times the sandbox accepted each contact.
pub fn accepted(dir: &Path) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    let text = std::fs::read_to_string(dir.join("accepted.jsonl")).unwrap_or_default();
    for line in text.lines() {
        // The sandbox may be writing the last line as we read.
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        *out.entry(v["who"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    out
}

/// A campaign of `n` contacts keyed K1..Kn.
pub fn fixture(url: &str, n: usize, send: &str) -> Fixture {
    let f = Fixture::new();
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in 1..=n {
        csv.push_str(&format!("K{i},Name{i},55119{i:08}\n"));
    }
    f.write("contacts.csv", &csv).write(
        "campaign.yaml",
        &campaign_yaml(
            url,
            "  - type: text\n    text: \"Hi {{ first_name }}\"\n",
            send,
        )
        .replace(
            "contacts.csv\n",
            "contacts.csv\n  key: \"{{ customer_id }}\"\n",
        )
        .replace("timeout: 5s", "timeout: 2s"),
    );
    f
}

pub fn statuses(f: &Fixture) -> HashMap<String, String> {
    f.sql("SELECT key, status FROM contacts")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
}

pub fn run_cmd(f: &Fixture, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cosmocast"));
    c.current_dir(f.dir.path())
        .env("COSMOCAST_LEDGER", f.ledger_env())
        .env("COSMOBOTS_TOKEN", TOKEN)
        .env("COSMOBOTS_CHANNEL_ID", CHANNEL)
        .args(["run", "campaign.yaml", "--progress", "none"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

pub fn wait_with_timeout(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let mut status = None;
    super::wait_until("the run to finish", limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}
