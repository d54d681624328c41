//! The README's delivery guarantees under crashes, faults, refused credentials, overlapping runs
//! and signals: the real binary against a real `cosmocast sandbox` process on 127.0.0.1, whose
//! request log tells how often each contact was accepted.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::sandbox::*;
use crate::common::*;

/// `status` tells contacts a run is sending now from those a killed run left `sending`, at once:
/// by the run's lock, which the kernel drops (a file) or the ended session does (PostgreSQL).
#[test]
fn status_tells_a_run_at_work_from_one_that_was_killed() {
    status_tells_a_run_at_work_from_one_that_was_killed_on(Backend::Sqlite);
}

#[test]
fn status_tells_a_run_at_work_from_one_that_was_killed_on_postgres() {
    status_tells_a_run_at_work_from_one_that_was_killed_on(Backend::Postgres);
}

fn status_tells_a_run_at_work_from_one_that_was_killed_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &["--latency", "300ms"]);
    let f = fixture(&sandbox.url, 40, "send:\n  concurrency: 2\n").on(backend);
    let mut child = run_cmd(&f, &[]).spawn().unwrap();
    // The ledger's tables exist once the run has set it up; then its first claims show.
    let tables = || match backend {
        Backend::Sqlite => {
            f.sql("SELECT COUNT(*) FROM sqlite_master WHERE name = 'contacts'")[0][0] == "1"
        }
        Backend::Postgres => true,
    };
    let in_flight = || {
        f.has_ledger()
            && tables()
            && f.sql("SELECT COUNT(*) FROM contacts WHERE status = 'sending'")[0][0] != "0"
    };
    wait_until("contacts in flight", Duration::from_secs(30), in_flight);
    let status = |json: bool| {
        let mut c = f.cmd();
        c.args(["status", "campaign.yaml"]);
        if json {
            c.arg("--json");
        }
        stdout_of(&c.output().unwrap())
    };
    let text = status(false);
    assert!(text.contains("being sent now by the run at work"), "{text}");
    // What is left is the run at work's to send: another run now would exit 5.
    assert!(
        text.contains("the run at work (another started now exits 5")
            && !text.contains("next run:"),
        "{text}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = status(false);
    assert!(
        text.contains("left by a run that stopped before their answers came")
            && text.contains("the next run records them `unknown`"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    assert_eq!(json["run_at_work"], false, "{json}");
    // With no run at work, every `sending` contact was left by one that stopped.
    assert_eq!(
        json["sending_orphaned"], json["counts"]["sending"],
        "{json}"
    );
    assert_ne!(json["sending_orphaned"], 0, "{json}");
    // The report tells it as status does.
    let page = f.report_page();
    assert!(
        page.contains("left by a run that stopped before their answers came")
            && page.contains("killed (the next run records what it was sending as unknown)"),
        "the report tells the killed run"
    );
}

#[test]
fn killed_runs_resume_without_sending_anyone_twice() {
    killed_runs_resume_without_sending_anyone_twice_on(Backend::Sqlite);
}

#[test]
fn killed_runs_resume_without_sending_anyone_twice_on_postgres() {
    killed_runs_resume_without_sending_anyone_twice_on(Backend::Postgres);
}

fn killed_runs_resume_without_sending_anyone_twice_on(backend: Backend) {
    const N: usize = 4000;
    const CONCURRENCY: usize = 8;
    const KILLS: usize = 22;
    const MAX_UNSETTLED: usize = CONCURRENCY + 2 * 52;
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &["--latency", "5ms", "--jitter", "5ms"]);
    let f = fixture(
        &sandbox.url,
        N,
        &format!("send:\n  concurrency: {CONCURRENCY}\n"),
    )
    .on(backend);
    let log_dir = dir.path();
    let mut rng = fastrand::Rng::with_seed(20261126);
    let mut kills = 0;
    let mut tries = 0;
    while kills < KILLS {
        tries += 1;
        assert!(tries < 200, "could not land {KILLS} kills mid-run");
        let mut child = run_cmd(&f, &[]).spawn().unwrap();
        // Kill it once the sandbox has accepted a random number more of its requests: the
        // kill lands mid-sending however slow the machine (a sleep could land in the pre-flight).
        let before: u32 = accepted(log_dir).values().sum();
        let target = before + rng.u32(1..120);
        let start = Instant::now();
        while accepted(log_dir).values().sum::<u32>() < target
            && child.try_wait().unwrap().is_none()
            && start.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() || status.code() == Some(3) {
            break; // finished before the kill landed: nothing left to interrupt
        }
        kills += 1;
        if f.has_ledger() {
            let sending: usize = f.sql("SELECT COUNT(*) FROM contacts WHERE status = 'sending'")[0]
                [0]
            .parse()
            .unwrap();
            // The requests in flight plus two claim batches, each worth at most 32 ms of
            // sending (the lead outlasts slow commits, src/send/lead.rs): at 5 ms or more per
            // answer, 8 senders finish at most 1,600 a second, 52 per batch.
            assert!(
                sending <= MAX_UNSETTLED,
                "kill {kills}: {sending} contacts in flight (before: {before:?})"
            );
        }
    }
    assert_eq!(
        kills, KILLS,
        "the campaign finished before {KILLS} kills landed"
    );
    // The last run goes to the end.
    let mut child = run_cmd(&f, &[]).spawn().unwrap();
    let status = wait_with_timeout(&mut child, Duration::from_secs(120));
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "final run: {status:?}"
    );

    let accepted = accepted(log_dir);
    let states = statuses(&f);
    assert_eq!(states.len(), N, "every contact is in the ledger");
    let twice: Vec<_> = accepted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "accepted more than once: {twice:?}");
    let mut unknown = 0;
    for (key, status) in &states {
        match status.as_str() {
            "sent" => assert_eq!(
                accepted.get(key),
                Some(&1),
                "{key} is sent but was not accepted"
            ),
            "unknown" => unknown += 1,
            other => panic!("{key} ended {other}"),
        }
    }
    assert!(
        unknown <= MAX_UNSETTLED * kills,
        "{unknown} unknown after {kills} kills"
    );
    // Each killed run ended at its last claim or outcome at the latest: none that wrote one
    // shows as lasting no time at all.
    let instant = f.sql(
        "SELECT r.id FROM runs r WHERE r.stopped = 'killed' AND r.ended_at = r.started_at
         AND EXISTS (SELECT 1 FROM contacts c WHERE c.run_id = r.id AND c.updated_at > r.started_at)",
    );
    assert!(
        instant.is_empty(),
        "killed runs with no length: {instant:?}"
    );
    eprintln!(
        "{kills} kills, {unknown} unknown, {} accepted",
        accepted.len()
    );
}

/// Runs 300 contacts against a sandbox with these faults and checks that every one ended `sent`
/// and reached the sandbox exactly once; the ledger is left for more checks.
fn everyone_sent_once(faults: &[&str], send: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), faults);
    let f = fixture(&sandbox.url, 300, send);
    let out = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let accepted = accepted(dir.path());
    assert_eq!(accepted.len(), 300);
    assert!(accepted.values().all(|n| *n == 1));
    assert!(statuses(&f).values().all(|s| s == "sent"));
    f
}

#[test]
fn retry_safe_faults_end_sent_exactly_once() {
    let f = everyone_sent_once(
        &[
            "--fail-429",
            "0.05",
            "--retry-after",
            "0",
            "--fail-503",
            "0.05",
            "--first-attempt-503",
        ],
        "send:\n  concurrency: 8\n  retries: 10\n  backoff: 5ms\n",
    );
    let attempts = f.sql("SELECT MIN(attempts), MAX(attempts) FROM contacts");
    assert!(
        attempts[0][0].parse::<u32>().unwrap() >= 2,
        "the first attempt was refused: {attempts:?}"
    );
}

#[test]
fn ambiguous_faults_end_unknown_and_are_never_resent() {
    ambiguous_faults_end_unknown_and_are_never_resent_on(Backend::Sqlite);
}

#[test]
fn ambiguous_faults_end_unknown_and_are_never_resent_on_postgres() {
    ambiguous_faults_end_unknown_and_are_never_resent_on(Backend::Postgres);
}

fn ambiguous_faults_end_unknown_and_are_never_resent_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(
        dir.path(),
        &[
            "--fail-500-after",
            "0.1",
            "--hang-after",
            "0.05",
            "--hang-for",
            "5s",
            "--reset-after",
            "0.05",
        ],
    );
    let f = fixture(
        &sandbox.url,
        200,
        "send:\n  concurrency: 16\n  max_consecutive_failures: 0\n",
    )
    .on(backend);
    let out = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let states = statuses(&f);
    let unknown: Vec<_> = states
        .iter()
        .filter(|(_, s)| *s == "unknown")
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        unknown.len() >= 5,
        "expected some unknown, got {}",
        unknown.len()
    );
    let reasons = f.sql("SELECT DISTINCT reason FROM contacts WHERE status = 'unknown' ORDER BY 1");
    let reasons: Vec<&str> = reasons.iter().map(|r| r[0].as_str()).collect();
    assert!(
        reasons.contains(&"http_500") && reasons.contains(&"timeout"),
        "{reasons:?}"
    );
    // Nothing new to send, and this run left no failure: the old ones are named, exit 0.
    let again = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    let accepted = accepted(dir.path());
    assert!(
        accepted.values().all(|n| *n == 1),
        "an unknown contact was sent again"
    );
    for k in &unknown {
        assert_eq!(
            accepted.get(k),
            Some(&1),
            "{k}: every injected fault here acts first"
        );
    }
}

#[test]
fn a_wrong_token_stops_the_run_within_one_window() {
    let server = TestServer::start(std::sync::Arc::new(|_, _| {
        (401, r#"{"message":"invalid token"}"#.into())
    }));
    let f = fixture(&server.url(), 200, "send:\n  concurrency: 4\n");
    let out = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(err.contains("the API refused the credentials"), "{err}");
    assert!(err.contains("$COSMOBOTS_TOKEN"), "{err}");
    assert!(
        server.count() <= 4,
        "{} requests after a 401",
        server.count()
    );
    // The refused contacts go back to the queue: none is recorded as sent, failed or unknown.
    assert_eq!(f.sql("SELECT COUNT(*) FROM contacts")[0][0], "0");
    // A scheduled job reads why the run stopped as a stable field, and the run as recorded.
    let json = run_cmd(&f, &["--json"]).output().unwrap();
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["stopped"]["reason"], "unauthorized", "{v}");
    assert!(
        v["stopped"]["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 401"),
        "{v}"
    );
    assert_eq!(v["exit_code"], 1);
    assert_eq!(
        f.sql("SELECT stopped, exit_code FROM runs ORDER BY id"),
        vec![vec!["unauthorized", "1"], vec!["unauthorized", "1"]]
    );
    // A `--limit` reached while the refusal is in flight: still the refusal (exit 1), never
    // "work remains" (4), which a scheduled job counts as a good night.
    for limit in ["1", "2", "3"] {
        let out = run_cmd(&f, &["--limit", limit, "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (out.status.code(), &v["stopped"]["reason"]),
            (Some(1), &serde_json::json!("unauthorized")),
            "--limit {limit}: {v}"
        );
    }
}

#[test]
fn a_second_run_at_once_exits_without_sending() {
    a_second_run_at_once_exits_without_sending_on(Backend::Sqlite);
}

#[test]
fn a_second_run_at_once_exits_without_sending_on_postgres() {
    a_second_run_at_once_exits_without_sending_on(Backend::Postgres);
}

fn a_second_run_at_once_exits_without_sending_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &["--latency", "20ms"]);
    let f = fixture(&sandbox.url, 300, "send:\n  concurrency: 4\n").on(backend);
    let mut first = run_cmd(&f, &[]).spawn().unwrap();
    let start = Instant::now();
    while accepted(dir.path()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first run never started sending"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    let second = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(second.status.code(), Some(5));
    assert!(t.elapsed() < Duration::from_secs(10));
    let err = stderr_of(&second);
    assert!(err.contains("already running in process"), "{err}");
    assert_eq!(
        wait_with_timeout(&mut first, Duration::from_secs(60)).code(),
        Some(0)
    );
    let accepted = accepted(dir.path());
    assert_eq!(accepted.len(), 300);
    assert!(accepted.values().all(|n| *n == 1));
}

#[test]
fn sigterm_stops_cleanly_and_the_next_run_finishes() {
    sigterm_stops_cleanly_and_the_next_run_finishes_on(Backend::Sqlite);
}

#[test]
fn sigterm_stops_cleanly_and_the_next_run_finishes_on_postgres() {
    sigterm_stops_cleanly_and_the_next_run_finishes_on(Backend::Postgres);
}

fn sigterm_stops_cleanly_and_the_next_run_finishes_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &["--latency", "10ms"]);
    let f = fixture(&sandbox.url, 400, "send:\n  concurrency: 4\n").on(backend);
    let child = run_cmd(&f, &[]).spawn().unwrap();
    let start = Instant::now();
    while accepted(dir.path()).len() < 20 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the run never started sending"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("to continue"),
        "{}",
        stderr_of(&out)
    );
    let states = statuses(&f);
    assert!(
        states.values().all(|s| s == "sent"),
        "a graceful stop leaves nothing in flight"
    );
    assert!(states.len() < 400);
    let again = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", stderr_of(&again));
    let accepted = accepted(dir.path());
    assert_eq!(accepted.len(), 400);
    assert!(accepted.values().all(|n| *n == 1));
}

#[test]
fn retry_failed_sends_failed_contacts_again_and_counts_attempts() {
    let server = TestServer::start(std::sync::Arc::new(|n, body| {
        if n < 3 {
            (422, r#"{"status":"error","message":"bad"}"#.into())
        } else {
            answer_sent(n, body)
        }
    }));
    let f = fixture(&server.url(), 3, "send:\n  concurrency: 1\n");
    let out = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(statuses(&f).values().all(|s| s == "failed"));
    let again = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "the failures are not this run's"
    );
    assert_eq!(
        server.count(),
        3,
        "failed contacts are not sent without --retry-failed"
    );
    let retried = run_cmd(&f, &["--retry-failed"]).output().unwrap();
    assert_eq!(retried.status.code(), Some(0), "{}", stderr_of(&retried));
    assert_eq!(server.count(), 6);
    assert_eq!(
        f.sql("SELECT DISTINCT status, attempts FROM contacts"),
        vec![vec!["sent".to_string(), "2".to_string()]]
    );
}

#[test]
fn limit_stops_with_work_remaining() {
    let server = TestServer::sent_ok();
    let f = fixture(&server.url(), 10, "");
    let out = run_cmd(&f, &["--limit", "4"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert_eq!(server.count(), 4);
    // The hint for the rest drops --limit; the one for the next batch keeps it.
    let hint = stderr_of(&out);
    let hint = hint
        .lines()
        .find(|l| l.contains("--limit reached"))
        .unwrap();
    assert!(hint.contains(" to send the rest, or "), "{hint}");
    let (rest, next) = hint.split_once(" to send the rest").unwrap();
    assert!(!rest.contains("--limit 4"), "{hint}");
    assert!(
        next.contains("--limit 4` to send the next 4 contacts"),
        "{hint}"
    );
    let out = run_cmd(&f, &["--limit", "6"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.count(), 10);
}

/// Timing-sensitive, so not part of the default suite: `cargo test --test delivery -- --ignored`.
#[test]
#[ignore]
fn rate_ceiling_holds_within_two_percent() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &[]);
    let f = fixture(
        &sandbox.url,
        2100,
        "send:\n  concurrency: 16\n  rate: 200/s\n",
    );
    let out = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let times = accepted_times(dir.path());
    let t0 = times[0];
    let in_ten = times.iter().filter(|t| **t < t0 + 10.0).count();
    let busiest = times
        .iter()
        .map(|a| times.iter().filter(|b| **b >= *a && **b < *a + 1.0).count())
        .max()
        .unwrap();
    eprintln!("first 10 s: {in_ten} requests (ceiling 2000); busiest second: {busiest}");
    assert!(
        (1960..=2040).contains(&in_ten),
        "{in_ten} requests in 10 s at 200/s"
    );
    // Over any single second, commit and network jitter can bunch a few requests together.
    assert!(busiest <= 210, "{busiest} requests in one second at 200/s");
}

#[test]
fn connections_the_server_closes_are_replaced_and_everyone_is_sent_once() {
    // A third of the answers close their connection: each sender reconnects and goes on.
    let f = everyone_sent_once(
        &["--close-after", "0.3"],
        "send:\n  concurrency: 8\n  retries: 0\n  max_consecutive_failures: 0\n",
    );
    let attempts = f.sql("SELECT MAX(attempts) FROM contacts");
    assert_eq!(attempts[0][0], "1", "a closed connection cost a retry");
}

#[test]
fn an_interrupted_run_that_gave_contacts_back_says_work_remains() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &["--latency", "1500ms"]);
    let f = fixture(&sandbox.url, 10, "send:\n  concurrency: 4\n");
    let mut child = run_cmd(&f, &["--json"]).spawn().unwrap();
    // Interrupted once the first four are answered (the sandbox logs a request as it answers
    // it), so while the next four are in flight: the file has been read to its end and the
    // last six claimed, and the two claimed behind them are given back unsent.
    wait_until("the first answers", Duration::from_secs(30), || {
        accepted(dir.path()).len() >= 4
    });
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pending = summary["pending"].as_u64().unwrap();
    assert!(pending > 0, "{summary}");
    assert_eq!(status.code(), Some(4), "work remains: {summary}");
    assert_eq!(summary["work_remains"], true, "{summary}");
    // The next run sends the rest, each once.
    let out = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(accepted(dir.path()).values().all(|&n| n == 1));
    assert_eq!(accepted(dir.path()).len(), 10);
}

/// Whether process `pid` has a handler for `signal` (`SigCgt` in its status).
fn catches(pid: u32, signal: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

/// A stop signal during the pre-flight (a large file, read whole before anything is sent) ends
/// the run at once, having sent nothing: SIGINT as from Ctrl-C, SIGHUP as from a closed
/// terminal. `--json` still prints its one object.
#[test]
fn a_signal_during_the_preflight_stops_the_run_before_it_sends() {
    let server = TestServer::sent_ok();
    let f = fixture(&server.url(), 300_000, "");
    for signal in [libc::SIGINT, libc::SIGHUP] {
        let mut child = run_cmd(&f, &["--json"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Once the run catches the signal (its handlers are in place), and while it reads.
        let pid = child.id();
        wait_until("the run's signal handlers", Duration::from_secs(30), || {
            catches(pid, signal)
        });
        assert_eq!(server.count(), 0, "still in the pre-flight");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let status = wait_with_timeout(&mut child, Duration::from_secs(30));
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert_eq!(status.code(), Some(4), "signal {signal}: {err}");
        assert!(
            err.contains("interrupted before sending; nothing was sent"),
            "{err}"
        );
        let object: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(object["stopped"]["reason"], "interrupted", "{object}");
        assert_eq!(object["work_remains"], true, "{object}");
        assert_eq!(server.count(), 0);
    }
}

#[test]
fn resending_what_a_killed_run_left_ends_well_when_all_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &["--latency", "1500ms"]);
    let f = fixture(&sandbox.url, 10, "send:\n  concurrency: 4\n");
    // A cool-down: a contact's own earlier attempt must not defer its resend.
    let yaml = std::fs::read_to_string(f.campaign()).unwrap();
    f.write(
        "campaign.yaml",
        &yaml.replace("contacts.csv\n", "contacts.csv\n  cooldown: 1h\n"),
    );
    let mut child = run_cmd(&f, &[]).spawn().unwrap();
    wait_until("the first answers", Duration::from_secs(30), || {
        accepted(dir.path()).len() >= 4
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // The next run records what the kill left `unknown`; with --resend-unknown it sends them
    // again at once, so it leaves nothing failed or unknown: exit 0, and no advice to give.
    let out = run_cmd(&f, &["--resend-unknown"]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("failed or are unknown"), "{err}");
    assert!(
        statuses(&f).values().all(|s| s == "sent"),
        "{:?}",
        statuses(&f)
    );
}

#[test]
fn retrying_a_failed_contact_never_messages_a_phone_another_key_got_since() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &["--first-attempt-503"]);
    let f = fixture(&sandbox.url, 2, "send:\n  retries: 0\n");
    assert_eq!(run_cmd(&f, &[]).output().unwrap().status.code(), Some(3));
    assert!(statuses(&f).values().all(|s| s == "failed"));
    // A new row with K1's phone is sent, at its second attempt (K1 failed: its phone was
    // never messaged)...
    let csv = std::fs::read_to_string(f.path("contacts.csv")).unwrap();
    f.write("contacts.csv", &format!("{csv}K9,Name9,5511900000001\n"));
    let yaml = std::fs::read_to_string(f.campaign()).unwrap();
    f.write("campaign.yaml", &yaml.replace("retries: 0", "retries: 1"));
    let out = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    // ...so retrying the failed ones sends K2 and leaves K1, whose phone K9 has had.
    let out = run_cmd(&f, &["--retry-failed"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let by_phone = accepted_phones(dir.path());
    assert_eq!(by_phone.get("5511900000001"), Some(&1), "{by_phone:?}");
    assert_eq!(by_phone.get("5511900000002"), Some(&1), "{by_phone:?}");
}

/// How many requests the sandbox accepted for each phone.
fn accepted_phones(dir: &std::path::Path) -> std::collections::HashMap<String, u32> {
    let text = std::fs::read_to_string(dir.join("accepted.jsonl")).unwrap_or_default();
    let mut out = std::collections::HashMap::new();
    for v in text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        let phone = v["contact"]["mobile_phone"]
            .as_str()
            .unwrap_or("")
            .to_string();
        *out.entry(phone).or_default() += 1;
    }
    out
}

/// A 20-row campaign on a SQLite ledger whose run was killed (SIGKILL) with contacts `sending`;
/// and the sandbox that answers it, slowly, keeping its log in `dir`.
fn killed_while_sending(dir: &std::path::Path) -> (Sandbox, Fixture) {
    let sandbox = Sandbox::start(dir, &["--latency", "300ms"]);
    let f = fixture(&sandbox.url, 20, "send:\n  concurrency: 2\n");
    let mut child = run_cmd(&f, &[]).spawn().unwrap();
    let in_flight = || {
        f.has_ledger()
            && f.sql("SELECT COUNT(*) FROM sqlite_master WHERE name = 'contacts'")[0][0] == "1"
            && f.sql("SELECT COUNT(*) FROM contacts WHERE status = 'sending'")[0][0] != "0"
    };
    wait_until("contacts in flight", Duration::from_secs(30), in_flight);
    child.kill().unwrap();
    child.wait().unwrap();
    (sandbox, f)
}

/// A kill leaves contacts `sending`; a marketer then takes their rows out. The next run records
/// them `unknown` and exits 3, and says why `status` counts none of them.
#[test]
fn unknown_contacts_without_a_row_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, f) = killed_while_sending(dir.path());
    let gone: Vec<String> = f
        .sql("SELECT key FROM contacts WHERE status = 'sending'")
        .into_iter()
        .map(|r| format!("{},", r[0]))
        .collect();
    let csv = std::fs::read_to_string(f.path("contacts.csv")).unwrap();
    let kept: String = csv
        .lines()
        .filter(|l| !gone.iter().any(|k| l.starts_with(k.as_str())))
        .map(|l| format!("{l}\n"))
        .collect();
    f.write("contacts.csv", &kept);
    let out = run_cmd(&f, &[]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("are no longer in the contact file, so `cosmocast status")
            && !err.contains("shows why"),
        "{err}"
    );
    assert_eq!(f.status_json()["rows"]["unknown"], 0);
}

/// `--resend-unknown` holds back an unknown contact whose phone has since opted out, and says
/// so rather than sending nothing in silence.
#[test]
fn a_resend_held_back_by_an_opt_out_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, f) = killed_while_sending(dir.path());
    let phone = f.sql("SELECT phone FROM contacts WHERE status = 'sending' ORDER BY key LIMIT 1")
        [0][0]
        .clone();
    let out = f.cmd().args(["optouts", "add", &phone]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    // The next run records what the kill left `unknown`; the one after resends them.
    assert_eq!(run_cmd(&f, &[]).output().unwrap().status.code(), Some(3));
    let out = run_cmd(&f, &["--resend-unknown"]).output().unwrap();
    let err = stderr_of(&out);
    assert!(
        err.contains(
            "note: 1 contact that --retry-failed or --resend-unknown would send again is not sent: filtered out, excluded or on the suppression list now"
        ),
        "{err}"
    );
    assert_eq!(
        f.sql(&format!(
            "SELECT status FROM contacts WHERE phone = '{phone}'"
        ))[0][0],
        "unknown"
    );
}
