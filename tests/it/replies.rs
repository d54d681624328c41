//! Replies: `cosmocast listen` and `cosmocast sandbox --webhook` as real child processes on
//! 127.0.0.1, a campaign run between them, and a real SQLite ledger.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::server::{SECRET, Server};
use crate::common::*;

/// `cosmocast listen` on a free port, storing in the fixture's ledger (created if missing).
fn listen(f: &Fixture, extra: &[&str]) -> Server {
    listen_with(f, extra, &[])
}

/// `listen` with more environment variables.
fn listen_with(f: &Fixture, extra: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Server {
    let ledger = f.ledger().display().to_string();
    let mut args = vec![
        "listen",
        "--addr",
        "127.0.0.1:0",
        "--ledger",
        &ledger,
        "--create",
    ];
    args.extend_from_slice(extra);
    Server::start_with(&args, f.dir.path(), env)
}

/// POSTs a body on loopback; the status and the answer's body.
fn post(url: &str, body: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let r = client
            .post(url)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    })
}

fn count(f: &Fixture, filter: &str) -> usize {
    f.sql(&format!("SELECT COUNT(*) FROM replies {filter}"))[0][0]
        .parse()
        .unwrap()
}

/// `n` connections to `host` from the loopback address `from`, made one after another without
/// a pause: Linux routes all of 127/8 to lo, so a test can play several sources.
fn connect_many(from: &str, host: &str, n: usize) -> Vec<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (from, host) = (from.parse().unwrap(), host.parse().unwrap());
    let streams = rt.block_on(async {
        let mut streams = Vec::new();
        for _ in 0..n {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
            streams.push(socket.connect(host).await.unwrap());
        }
        streams
    });
    streams
        .into_iter()
        .map(|s| {
            let s = s.into_std().unwrap();
            s.set_nonblocking(false).unwrap();
            s
        })
        .collect()
}

fn connect_from(from: &str, host: &str) -> TcpStream {
    connect_many(from, host, 1).remove(0)
}

/// A connection that sends half a request head and stalls.
fn stalled(from: &str, host: &str) -> TcpStream {
    let mut s = connect_from(from, host);
    s.write_all(b"POST /webhook/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        .unwrap();
    s
}

/// Whether the server has closed this connection, waiting for it at most `limit`.
fn closed_within(mut s: &TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // An answer (a 408, say) before the close is fine too.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Whether the server has already closed this connection (without waiting).
fn closed_now(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    closed
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
    let mut listener = listen(&f, &[]);
    // The secret comes from the environment (Server::start sets it), not the command line.
    let mut sandbox = Server::start(
        &[
            "sandbox",
            "--addr",
            "127.0.0.1:0",
            "--webhook",
            &listener.base(),
            "--reply-rate",
            "1",
        ],
        f.dir.path(),
    );
    f.write("campaign.yaml", &campaign(&sandbox.url, "renewal"));
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    // The sandbox posts one reply per send: N in all.
    wait_until(
        &format!("every reply (listener said {:?})", listener.lines()),
        Duration::from_secs(30),
        || count(&f, "") >= N,
    );
    assert_eq!(count(&f, ""), N, "{:?}", listener.lines());
    // Each log line names the reply's id and the contact it was attributed to.
    let first = f.sql("SELECT id, contact_key, campaign FROM replies ORDER BY id LIMIT 1");
    let said = format!(
        "stored a reply (id {}) for campaign {}, contact {}",
        first[0][0], first[0][2], first[0][1]
    );
    wait_until("the log line", Duration::from_secs(10), || {
        listener.lines().iter().any(|l| l.contains(&said))
    });

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

    let status = f.status_json();
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

    // With both stopped nothing more can arrive: each contact's reply to the first campaign
    // is there exactly once.
    sandbox.stop();
    assert_eq!(listener.stop(), Some(0));
    let twice = f.sql(
        "SELECT contact_key FROM replies WHERE campaign = 'renewal' GROUP BY contact_key HAVING COUNT(*) > 1",
    );
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    assert_eq!(count(&f, "WHERE campaign = 'renewal'"), N);

    // A phone taken off the list later (re-subscribed) does not undo its reply: the campaign's
    // opt-outs are its history.
    let phone = &before[0];
    let out = f.cmd().args(["optouts", "remove", phone]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let status = f.status_json();
    assert_eq!(
        status["replies"]["opt_outs"], opt_outs,
        "{}",
        status["replies"]
    );
    let page = f.report_page();
    assert!(
        page.contains(&format!("id=\"count-opt_outs\" data-count=\"{opt_outs}\"")),
        "the report counts it too"
    );
}

#[test]
fn a_thousand_concurrent_posts_are_all_answered_and_stored_once() {
    let f = Fixture::new();
    let listener = listen(&f, &[]);
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
        .env(
            "XDG_DATA_HOME",
            std::env::temp_dir().join("cosmocast-short-secret"),
        )
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
    let mut listener = listen(&f, &[]);
    let status = post_status(
        &listener.webhook(),
        r#"{"message":[{"type":"text","data":{"text":"x"}}]}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(listener.stop(), Some(0));
    assert_eq!(f.sql("SELECT COUNT(*) FROM replies")[0][0], "1");
}

#[test]
fn stalled_clients_are_cut_off_and_a_post_still_gets_through() {
    let f = Fixture::new();
    let listener = listen(&f, &["--read-timeout", "2s"]);
    // Beyond the cap of 16 for one address: the last 284 are closed at once.
    let held: Vec<TcpStream> = (0..300)
        .map(|_| stalled("127.0.0.2", &listener.host()))
        .collect();
    let (status, answer) = post(
        &listener.webhook(),
        r#"{"contact":{"id":"c1"},"message":{"type":"text","data":{"text":"still here"}}}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(count(&f, ""), 1);
    let open: Vec<usize> = held
        .iter()
        .enumerate()
        .filter(|(_, s)| !closed_within(s, Duration::from_secs(30)))
        .map(|(i, _)| i)
        .collect();
    assert!(open.is_empty(), "never closed by the listener: {open:?}");
}

/// POSTs `n` distinct replies at once; every status.
fn posts_at_once(url: &str, n: usize, timeout: Duration) -> Vec<Result<u16, String>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()
            .unwrap();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let body = format!(
                r#"{{"contact":{{"id":"c{i}"}},"message":[{{"type":"text","data":{{"text":"hi {i}"}}}}]}}"#
            );
            let request = client.post(url).body(body);
            set.spawn(async move {
                let sent = request.send().await;
                (i, sent.map(|r| r.status().as_u16()).map_err(|e| format!("{e:?}")))
            });
        }
        let mut out = vec![Err("not sent".to_string()); n];
        while let Some(r) = set.join_next().await {
            let (i, status) = r.unwrap();
            out[i] = status;
        }
        out
    })
}

#[test]
fn idle_connections_from_one_address_keep_no_post_out() {
    let f = Fixture::new();
    // The header timeout outlasts the test: only the cap can make room.
    let listener = listen(&f, &["--read-timeout", "60s"]);
    let idle = connect_many("127.0.0.2", &listener.host(), 300);
    let started = Instant::now();
    let statuses = posts_at_once(&listener.webhook(), 40, Duration::from_secs(20));
    let failed: Vec<(usize, &Result<u16, String>)> = statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != Ok(200))
        .collect();
    assert!(failed.is_empty(), "not stored: {failed:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the posts waited {:?}",
        started.elapsed()
    );
    assert_eq!(count(&f, ""), 40);
    // 16 idle connections keep their place; the other 284 had a second to send a head.
    wait_until(
        "the idle connections over the cap to close",
        Duration::from_secs(10),
        || idle.iter().filter(|s| closed_now(s)).count() >= 284,
    );
    let open = idle.iter().filter(|s| !closed_now(s)).count();
    assert_eq!(open, 16, "{:?}", listener.lines());
}

#[test]
fn one_address_keeps_16_idle_connections_and_the_rest_are_closed() {
    let f = Fixture::new();
    // 32 pending places in all, 24 for one address: 16 kept, 8 on probation.
    let listener = listen(&f, &["--max-connections", "8", "--read-timeout", "60s"]);
    let host = listener.host();
    // Half of them idle, half trickling a head: both kinds are still pending.
    let mut held: Vec<TcpStream> = (0..16)
        .map(|i| match i % 2 {
            0 => connect_from("127.0.0.3", &host),
            _ => stalled("127.0.0.3", &host),
        })
        .collect();
    let mut probation = connect_many("127.0.0.3", &host, 9);
    let over = probation.pop().unwrap();
    assert!(
        closed_within(&over, Duration::from_secs(5)),
        "{:?}",
        listener.lines()
    );
    // Closed before the connection accepted just ahead of it ran out of its second: at once.
    assert!(
        !closed_now(&probation[7]),
        "the 25th was not closed at once"
    );
    assert!(
        probation
            .iter()
            .all(|s| closed_within(s, Duration::from_secs(5))),
        "the 17th to 24th were kept beyond their second"
    );
    assert!(
        held.iter().all(|s| !closed_now(s)),
        "the first 16 keep their place"
    );
    assert!(
        listener
            .lines()
            .iter()
            .any(|l| l.contains("127.0.0.3 has 24 connections that have not sent a request head")),
        "{:?}",
        listener.lines()
    );
    // Another address is not held back; nor is this one once a place is given back.
    let other = connect_from("127.0.0.4", &host);
    assert!(!closed_within(&other, Duration::from_millis(1500)));
    drop(held.pop());
    wait_until("a place for 127.0.0.3", Duration::from_secs(15), || {
        let next = connect_from("127.0.0.3", &host);
        let kept = !closed_within(&next, Duration::from_millis(1500));
        if kept {
            held.push(next);
        }
        kept
    });
}

/// Sends a complete head for the webhook and part of the body, then stalls: a request that
/// holds a serving slot until its body is cut off.
fn slow_body(host: &str) -> TcpStream {
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST /webhook/{SECRET} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"contact\":"
    )
    .unwrap();
    s
}

#[test]
fn stalled_heads_take_no_serving_slot() {
    let f = Fixture::new();
    // 8 pending places in all, 6 for one address; the header timeout outlasts the test.
    let listener = listen(&f, &["--max-connections", "2", "--read-timeout", "60s"]);
    let heads: Vec<TcpStream> = (0..4)
        .map(|_| stalled("127.0.0.1", &listener.host()))
        .collect();
    let (status, answer) = post(
        &listener.webhook(),
        r#"{"contact":{"id":"c1"},"message":{"type":"text","data":{"text":"first"}}}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        heads.iter().all(|s| !closed_now(s)),
        "a stalled head was cut off"
    );
    assert_eq!(count(&f, ""), 1);
}

#[test]
fn a_request_over_the_cap_waits_for_a_stalled_body_to_be_cut_off() {
    let f = Fixture::new();
    let listener = listen(&f, &["--max-connections", "2", "--read-timeout", "2s"]);
    // Two requests whose bodies stall hold both serving slots.
    let bodies: Vec<TcpStream> = (0..2).map(|_| slow_body(&listener.host())).collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, answer) = post(
        &listener.webhook(),
        r#"{"contact":{"id":"c2"},"message":{"type":"text","data":{"text":"waited"}}}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        bodies.iter().any(closed_now),
        "answered while both serving slots were held"
    );
    assert_eq!(count(&f, ""), 1);
}

/// Sends a request head and the first KiB of a larger body, then reads the answer without
/// sending the rest: an answer proves the listener did not wait for the body.
fn answer_before_the_body(host: &str, path: &str, length: usize) -> String {
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"contact\":{}",
        " ".repeat(1024)
    )
    .unwrap();
    // A bound on a failing test, not a timing assertion: a listener that waits never answers.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = String::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty() => {
                break;
            }
            Err(e) => panic!("no answer to {path} without its body: {e} (so far {answer:?})"),
        }
    }
    answer
}

#[test]
fn a_stranger_is_answered_404_before_the_body_is_read() {
    let f = Fixture::new();
    let listener = listen(&f, &[]);
    let host = listener.host();
    for path in ["/webhook/wrong-secret-0123456789", "/webhook/", "/other"] {
        let answer = answer_before_the_body(&host, path, 200_000);
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
    }
    // The right secret with a body announced over 256 KiB: refused before it is read.
    let answer = answer_before_the_body(&host, &format!("/webhook/{SECRET}"), 300_000);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(count(&f, ""), 0);
    assert_eq!(
        post_status(
            &listener.webhook(),
            r#"{"message":{"type":"text","data":{"text":"ok"}}}"#
        ),
        200,
        "still serving"
    );
}

#[test]
fn a_delivery_that_carries_the_credentials_is_stored_without_them() {
    let f = Fixture::new();
    let os = std::ffi::OsStr::new;
    let listener = listen_with(
        &f,
        &[],
        &[
            ("COSMOBOTS_CHANNEL_ID", os("chan-8842-ZZqy")),
            ("COSMOBOTS_TOKEN", os("Tk9/zQ+Xw3pL7mNa2bCd")),
        ],
    );
    let body = r#"{"channel_id":"chan-8842-ZZqy","contact":{"id":"c1"},"message":{"type":"text","data":{"text":"my token is Tk9/zQ+Xw3pL7mNa2bCd"}}}"#;
    assert_eq!(post(&listener.webhook(), body).0, 200);
    // In the fields kept apart too: the type, the provider's time.
    let body = r#"{"timestamp":"Tk9/zQ+Xw3pL7mNa2bCd","contact":{"id":"c2"},"message":{"type":"Tk9/zQ+Xw3pL7mNa2bCd","data":{"text":"hi"}}}"#;
    assert_eq!(post(&listener.webhook(), body).0, 200);
    let stored = f.sql("SELECT raw, text, type, provider_time, phone, contact_id FROM replies");
    let stored = format!("{stored:?}");
    assert!(
        !stored.contains("chan-8842")
            && !stored.contains("Tk9/zQ")
            && stored.contains("<redacted>"),
        "{stored}"
    );
}

#[test]
fn only_a_json_object_is_stored() {
    let f = Fixture::new();
    let listener = listen(&f, &[]);
    for body in ["[1,2,3]", "42", "null", "\"x\"", "true", "{\"a\":", ""] {
        let (status, answer) = post(&listener.webhook(), body);
        assert_eq!(status, 400, "{body:?}: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert!(answer["error"].is_string(), "{body:?}: {answer}");
    }
    assert_eq!(count(&f, ""), 0);
    let (status, answer) = post(
        &listener.webhook(),
        r#"{"message":{"type":"text","data":{"text":"ok"}}}"#,
    );
    assert_eq!((status, answer.as_str()), (200, r#"{"stored":true}"#));
    assert_eq!(count(&f, ""), 1);
    wait_until("the log lines", Duration::from_secs(10), || {
        listener
            .lines()
            .iter()
            .any(|l| l.contains("stored a reply"))
    });
    let refused: Vec<String> = listener
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("listen: 400 not a webhook delivery"))
        .collect();
    assert_eq!(refused.len(), 7, "{:?}", listener.lines());
    assert!(refused[0].contains("this is an array"), "{refused:?}");
}

#[test]
fn portuguese_opt_out_phrases_are_opt_outs_and_a_near_miss_is_a_reply() {
    let f = Fixture::new();
    let mut listener = listen(&f, &[]);
    let said = [
        ("5511988880001", "Pare"),
        ("5511988880002", "descadastrar"),
        ("5511988880003", "Não quero mais"),
        ("5511988880004", "Quero parar de receber"),
        ("5511988880005", "Parece ótimo"),
        // Where are you from? A state, not "para".
        ("5511988880006", "Pará"),
        // A click on the campaign's own button titled "Cancelar": an answer, not an opt-out.
        ("5511988880007", "Cancelar"),
    ];
    for (phone, text) in said {
        let item = match phone.ends_with('7') {
            true => {
                serde_json::json!({"type": "button", "data": {"text": text, "payload": "cancel-order"}})
            }
            false => serde_json::json!({"type": "text", "data": {"text": text}}),
        };
        let body = serde_json::json!({
            "contact": {"mobile_phone": phone},
            "message": [item],
        });
        let (status, answer) = post(&listener.webhook(), &body.to_string());
        assert_eq!(
            (status, answer.as_str()),
            (200, r#"{"stored":true}"#),
            "{text}"
        );
    }
    assert_eq!(listener.stop(), Some(0));
    assert_eq!(
        count(&f, ""),
        said.len(),
        "every message is kept as a reply"
    );
    let opted_out = f.sql("SELECT phone, text FROM opt_outs ORDER BY phone");
    let expected: Vec<Vec<String>> = said[..4]
        .iter()
        .map(|(phone, text)| vec![phone.to_string(), text.to_string()])
        .collect();
    assert_eq!(opted_out, expected, "{:?}", listener.lines());
}

#[test]
fn an_opt_out_that_names_no_phone_is_kept_and_warned_about() {
    let f = Fixture::new();
    let mut listener = listen(&f, &[]);
    for body in [
        // The phone outside `contact`, where docs/cosmobots-api.md §4 does not look for it.
        r#"{"phone":"5511988880009","message":[{"type":"text","data":{"text":"STOP"}}]}"#,
        r#"{"contact":{"mobile_phone":"5511988880008"},"message":[{"type":"text","data":{"text":"ＳＴＯＰ"}}]}"#,
        r#"{"contact":{"mobile_phone":"5511988880007"},"message":[{"type":"text","data":{"text":"UN-SUBSCRIBE"}}]}"#,
    ] {
        assert_eq!(post(&listener.webhook(), body).0, 200, "{body}");
    }
    assert_eq!(listener.stop(), Some(0));
    let lines = listener.lines();
    let warned: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("opt-out phrase but names no phone"))
        .collect();
    assert_eq!(warned.len(), 1, "{lines:?}");
    for says in [
        "nobody was added to the suppression list",
        "docs/cosmobots-api.md",
        "optouts add",
    ] {
        assert!(warned[0].contains(says), "{says}: {}", warned[0]);
    }
    let listed = f.sql("SELECT phone FROM opt_outs ORDER BY phone");
    assert_eq!(listed, [["5511988880007"], ["5511988880008"]]);
    assert_eq!(
        count(&f, "WHERE opt_out = 1 AND phone IS NULL"),
        1,
        "the opt-out without a phone is kept for someone to find"
    );
}

#[test]
fn listen_q_says_only_the_warnings() {
    let f = Fixture::new();
    let ledger = f.ledger().display().to_string();
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    let mut listener = Server::start_at(
        &[
            "-q", "listen", "--addr", &addr, "--ledger", &ledger, "--create",
        ],
        f.dir.path(),
        &addr,
    );
    for (body, status) in [
        // Stored: said without -q only.
        (
            r#"{"contact":{"mobile_phone":"5511988880001"},"message":[{"type":"text","data":{"text":"oi"}}]}"#,
            200,
        ),
        // Refused: said without -q only.
        ("[1]", 400),
        // A phone without its country code: a warning, said whatever the flags.
        (
            r#"{"contact":{"mobile_phone":"988880002"},"message":[{"type":"text","data":{"text":"oi"}}]}"#,
            200,
        ),
        // An opt-out that puts nobody on the list: said whatever the flags.
        (
            r#"{"phone":"5511988880009","message":[{"type":"text","data":{"text":"STOP"}}]}"#,
            200,
        ),
    ] {
        assert_eq!(post(&listener.webhook(), body).0, status, "{body}");
    }
    wait_until("the two warnings", Duration::from_secs(10), || {
        listener.lines().len() >= 2
    });
    assert_eq!(listener.stop(), Some(0));
    let lines = listener.lines();
    let err = lines.join("\n");
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("listen: warning: that reply's phone has no country code"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("listen: warning: a reply is an opt-out phrase but names no phone"),
        "{err}"
    );
    assert_eq!(
        count(&f, ""),
        3,
        "every delivery but the refused one is stored"
    );
}

#[test]
fn repeats_are_stored_once_and_the_same_text_sent_again_is_stored_again() {
    let api = TestServer::sent_ok();
    let f = Fixture::new();
    contacts(&f);
    f.write("campaign.yaml", &campaign(&api.url(), "first"));
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let listener = Server::start(
        &[
            "listen",
            "--addr",
            "127.0.0.1:0",
            "--ledger",
            "workspace.sqlite",
        ],
        f.dir.path(),
    );
    assert!(
        listener.lines()[0].contains("(campaigns: first)"),
        "{:?}",
        listener.lines()
    );
    let ok = r#"{"contact":{"mobile_phone":"5511900000001"},"message":[{"type":"text","data":{"text":"ok"}}]}"#;
    let stored = |body: &str| -> bool {
        let (status, answer) = post(&listener.webhook(), body);
        assert_eq!(status, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        answer["stored"].as_bool().unwrap()
    };
    assert!(stored(ok));
    assert!(!stored(ok), "a retried delivery");

    let with_id = |id: &str| {
        format!(
            r#"{{"contact":{{"mobile_phone":"5511900000002"}},"message":[{{"id":"{id}","type":"text","data":{{"text":"ok"}}}}]}}"#
        )
    };
    assert!(stored(&with_id("m-1")));
    assert!(stored(&with_id("m-2")), "the contact said ok twice");
    assert!(!stored(&with_id("m-1")));

    // A later campaign messages the same contacts; the same text is a new reply, and its own.
    f.write("second.yaml", &campaign(&api.url(), "second"));
    let out = f
        .cmd()
        .args(["run", "second.yaml", "--progress", "none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stored(ok), "the same text in reply to a later campaign");
    assert!(!stored(ok));
    let rows = f.sql(
        "SELECT campaign, contact_key, message_id FROM replies WHERE phone = '5511900000001' ORDER BY id",
    );
    assert_eq!(
        rows,
        [
            ["first".to_string(), "5511900000001".into(), String::new()],
            ["second".to_string(), "5511900000001".into(), String::new()]
        ]
    );
    assert_eq!(count(&f, "WHERE phone = '5511900000002'"), 2);

    let restarted = Server::start(
        &[
            "listen",
            "--addr",
            "127.0.0.1:0",
            "--ledger",
            "workspace.sqlite",
        ],
        f.dir.path(),
    );
    assert!(
        restarted.lines()[0].contains("(campaigns: first, second)"),
        "{:?}",
        restarted.lines()
    );
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn listen_refuses_a_missing_ledger_and_creates_nothing() {
    let f = Fixture::new();
    let before = listing(f.dir.path());
    let refused = |args: &[&str]| {
        let out = f
            .cmd()
            .env("COSMOCAST_WEBHOOK_SECRET", SECRET)
            .args(["listen", "--addr", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr_of(&out));
        stderr_of(&out)
    };
    // A ledger named in COSMOCAST_LEDGER (the fixture's) must exist, as one named with --ledger.
    let err = refused(&[]);
    assert!(
        err.contains("workspace.sqlite (COSMOCAST_LEDGER): no ledger here")
            && err.contains("--create"),
        "{err}"
    );
    let err = refused(&["--ledger", "campaigns/cosmocast.sqlite"]);
    assert!(
        err.contains("campaigns/cosmocast.sqlite (--ledger): no ledger here"),
        "{err}"
    );
    // --create makes the file, never its folder.
    let err = refused(&["--ledger", "campaigns/cosmocast.sqlite", "--create"]);
    assert!(err.contains("the folder campaigns does not exist"), "{err}");
    assert_eq!(listing(f.dir.path()), before, "nothing was created");

    let mut created = Server::start(
        &[
            "listen",
            "--addr",
            "127.0.0.1:0",
            "--ledger",
            "new.sqlite",
            "--create",
        ],
        f.dir.path(),
    );
    assert!(
        created.lines()[0].contains("storing replies in new.sqlite (--ledger) (no campaigns yet)"),
        "{:?}",
        created.lines()
    );
    assert_eq!(created.stop(), Some(0));
    assert!(f.path("new.sqlite").is_file());
}

#[test]
fn the_sandbox_takes_the_webhook_secret_from_the_environment_only() {
    let f = Fixture::new();
    let sandbox = |webhook: &str, secret: Option<&str>| {
        let mut c = f.cmd();
        c.args(["sandbox", "--addr", "127.0.0.1:0", "--webhook", webhook]);
        match secret {
            Some(s) => c.env("COSMOCAST_WEBHOOK_SECRET", s),
            None => c.env_remove("COSMOCAST_WEBHOOK_SECRET"),
        };
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
        stderr_of(&out)
    };
    let err = sandbox(
        &format!("http://127.0.0.1:8788/webhook/{SECRET}"),
        Some(SECRET),
    );
    assert!(
        err.contains("COSMOCAST_WEBHOOK_SECRET") && err.contains("`ps`"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "the secret was printed: {err}");
    let err = sandbox("http://127.0.0.1:8788", None);
    assert!(
        err.contains("needs the listener's secret in COSMOCAST_WEBHOOK_SECRET"),
        "{err}"
    );
}

#[test]
fn a_reply_with_an_emoji_cut_in_half_is_stored_with_a_replacement_character() {
    let f = Fixture::new();
    let listener = listen(&f, &[]);
    // `\ud83d` alone: the first half of 😀, the second cut off.
    let (status, answer) = post(
        &listener.webhook(),
        r#"{"contact":{"id":"c7"},"message":{"type":"text","data":{"text":"Obrigado \ud83d"}}}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        f.sql("SELECT contact_id, text FROM replies"),
        [["c7", "Obrigado \u{FFFD}"]]
    );
}
