//! Replies: `cosmocast listen` and `cosmocast sandbox --webhook` as real child processes on
//! 127.0.0.1, a campaign run between them, and a real SQLite ledger.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const SECRET: &str = "s3cret-webhook-path-0123456789";

/// A child process whose stderr is collected in the background; its first line names its URL.
struct Server {
    child: Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(args: &[&str], dir: &std::path::Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cosmocast"))
            .args(args)
            .current_dir(dir)
            .env("COSMOCAST_WEBHOOK_SECRET", SECRET)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .trim_end_matches(',')
            .to_string();
        let log = Arc::new(Mutex::new(vec![first]));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server { child, url, log }
    }

    /// The listener's base, `http://127.0.0.1:PORT`.
    fn base(&self) -> String {
        self.url.split("/webhook").next().unwrap().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn campaign(url: &str, name: &str) -> String {
    campaign_yaml(
        url,
        "  - type: buttons\n    text: \"Renew, {{ first_name }}?\"\n    buttons:\n      - { title: \"Yes\", type: payload, value: \"renew-yes\" }\n",
        "",
    )
    .replace("name: test-campaign", &format!("name: {name}"))
}

const N: usize = 30;

fn contacts(f: &Fixture) {
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in 1..=N {
        csv.push_str(&format!("C{i},Name{i},55119{i:08}\n"));
    }
    f.write("contacts.csv", &csv);
}

#[test]
fn replies_are_stored_once_attributed_and_counted_and_opt_outs_hold() {
    let f = Fixture::new();
    contacts(&f);
    let ledger = f.ledger().display().to_string();
    let listener = Server::start(
        &["listen", "--addr", "127.0.0.1:0", "--ledger", &ledger],
        f.dir.path(),
    );
    let webhook = format!("{}/webhook/{SECRET}", listener.base());
    let sandbox = Server::start(
        &[
            "sandbox",
            "--addr",
            "127.0.0.1:0",
            "--webhook",
            &webhook,
            "--reply-rate",
            "1",
        ],
        f.dir.path(),
    );
    f.write("campaign.yaml", &campaign(&sandbox.url, "renewal"));
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    let count = || {
        f.sql("SELECT COUNT(*) FROM replies")[0][0]
            .parse::<usize>()
            .unwrap()
    };
    wait_for(
        &format!(
            "every reply (listener said {:?})",
            listener.log.lock().unwrap()
        ),
        Duration::from_secs(30),
        || count() >= N,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        count(),
        N,
        "each contact replied once: {:?}",
        listener.log.lock().unwrap()
    );

    // Every reply belongs to the contact whose phone it came from, in this campaign.
    let wrong = f.sql(
        "SELECT r.id FROM replies r LEFT JOIN contacts c ON c.campaign = r.campaign AND c.key = r.contact_key
         WHERE r.campaign IS NOT 'renewal' OR c.phone IS NOT r.phone",
    );
    assert!(wrong.is_empty(), "misattributed replies: {wrong:?}");

    let opt_outs: usize = f.sql("SELECT COUNT(*) FROM opt_outs")[0][0]
        .parse()
        .unwrap();
    let clicks: usize = f.sql("SELECT COUNT(*) FROM replies WHERE payload = 'renew-yes'")[0][0]
        .parse()
        .unwrap();
    assert!(
        opt_outs > 0 && clicks > 0,
        "opt-outs {opt_outs}, clicks {clicks}"
    );

    let status = f
        .cmd()
        .args(["status", "campaign.yaml", "--json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&stdout_of(&status)).unwrap();
    assert_eq!(status["replies"]["replies"], N);
    assert_eq!(status["replies"]["contacts_replied"], N);
    assert_eq!(status["replies"]["reply_rate"], 1.0);
    assert_eq!(status["replies"]["clicks"]["renew-yes"], clicks);
    assert_eq!(status["replies"]["opt_outs"], opt_outs);

    let export = f.cmd().args(["export", "campaign.yaml"]).output().unwrap();
    let export = stdout_of(&export);
    assert!(
        export.lines().skip(1).all(|l| l.contains("Z,")),
        "every contact has replied_at:\n{export}"
    );
    assert!(export.contains(",renew-yes"), "{export}");
    let replies = f
        .cmd()
        .args(["replies", "campaign.yaml", "--format", "jsonl"])
        .output()
        .unwrap();
    assert_eq!(stdout_of(&replies).lines().count(), N);

    // The next campaign on this ledger skips every phone that opted out (its own replies may
    // add opt-outs while it runs: only those from before it count here).
    let before: Vec<String> = f
        .sql("SELECT phone FROM opt_outs")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    f.write("next.yaml", &campaign(&sandbox.url, "winback"));
    let out = f
        .cmd()
        .args(["run", "next.yaml", "--progress", "none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let skipped = f.sql("SELECT COUNT(*) FROM contacts WHERE campaign = 'winback' AND status = 'skipped' AND reason = 'opted_out'");
    assert_eq!(skipped[0][0].parse::<usize>().unwrap(), opt_outs);
    let sent = f.sql("SELECT phone FROM contacts WHERE campaign = 'winback' AND status = 'sent'");
    let sent_to_opted_out: Vec<_> = sent.iter().filter(|r| before.contains(&r[0])).collect();
    assert!(sent_to_opted_out.is_empty(), "{sent_to_opted_out:?}");
}

#[test]
fn a_thousand_concurrent_posts_are_all_answered_and_stored_once() {
    let f = Fixture::new();
    let ledger = f.ledger().display().to_string();
    let listener = Server::start(
        &["listen", "--addr", "127.0.0.1:0", "--ledger", &ledger],
        f.dir.path(),
    );
    let base = listener.base();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let statuses: Vec<u16> = rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..1000usize {
            let body = match i {
                0..100 => format!("{{\"contact\": {{\"id\": \"c{i}\"}}, \"message\": ["),
                100..200 => format!(r#"{{"contact":{{"id":"c{}"}},"message":[{{"type":"text","data":{{"text":"hi {}"}}}}]}}"#, i - 100, i - 100),
                _ => format!(r#"{{"contact":{{"id":"c{}"}},"message":[{{"type":"text","data":{{"text":"hi {}"}}}}]}}"#, i - 200, i - 200),
            };
            let url = format!("{base}/webhook/{SECRET}");
            let client = client.clone();
            set.spawn(async move { (i, client.post(url).body(body).send().await.map(|r| r.status().as_u16())) });
        }
        let mut out = vec![0u16; 1000];
        while let Some(r) = set.join_next().await {
            let (i, status) = r.unwrap();
            out[i] = status.unwrap_or_else(|e| panic!("post {i} was not answered: {e}"));
        }
        out
    });
    assert!(
        statuses[..100].iter().all(|s| *s == 400),
        "malformed JSON gets 400"
    );
    assert!(
        statuses[100..].iter().all(|s| *s == 200),
        "valid posts and repeats get 200"
    );
    assert_eq!(
        f.sql("SELECT COUNT(*) FROM replies")[0][0],
        "800",
        "repeats are stored once"
    );

    // Still serving; a wrong secret or another path stores nothing.
    let status = post_status(
        &format!("{base}/webhook/{SECRET}"),
        r#"{"message":{"type":"text","data":{"text":"late"}}}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(
        post_status(&format!("{base}/webhook/wrong-secret-0123456789"), "{}"),
        404
    );
    assert_eq!(post_status(&format!("{base}/other"), "{}"), 404);
    assert_eq!(f.sql("SELECT COUNT(*) FROM replies")[0][0], "801");
}

#[test]
fn a_short_secret_is_refused() {
    let out = assert_cmd::Command::cargo_bin("cosmocast")
        .unwrap()
        .args(["listen", "--addr", "127.0.0.1:0"])
        .env("COSMOCAST_WEBHOOK_SECRET", "short")
        .timeout(Duration::from_secs(10))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("at least 16 characters"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let f = Fixture::new();
    let ledger = f.ledger().display().to_string();
    let mut listener = Server::start(
        &["listen", "--addr", "127.0.0.1:0", "--ledger", &ledger],
        f.dir.path(),
    );
    let status = post_status(
        &format!("{}/webhook/{SECRET}", listener.base()),
        r#"{"message":[{"type":"text","data":{"text":"x"}}]}"#,
    );
    assert_eq!(status, 200);
    Command::new("kill")
        .args(["-TERM", &listener.child.id().to_string()])
        .status()
        .unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(s) = listener.child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the listener did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    assert_eq!(f.sql("SELECT COUNT(*) FROM replies")[0][0], "1");
}
