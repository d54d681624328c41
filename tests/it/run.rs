//! `cosmocast run` end to end: the real binary against a recording server on 127.0.0.1 and a real
//! SQLite ledger in a temp dir.

use crate::common::*;
use serde_json::json;

const ALL_TYPES: &str = r#"  - type: text
    template: hello.txt.j2
  - type: buttons
    text: "Keep your {{ plan }} plan?"
    buttons:
      - { title: "Yes", type: payload, value: "renew-yes" }
      - { title: "See plans", type: url, value: "{{ vars.store_url }}/plans?c={{ customer_id }}" }
  - type: media
    media: image
    url: "https://cdn.example.com/{{ plan }}.png"
    name: "Your {{ plan }} card"
    mime_type: image/png
  - type: cards
    cards:
      - title: "{{ plan | title }}"
        subtitle: "Renews on {{ renews_on }}"
        image_url: "https://cdn.example.com/{{ plan }}.png"
        buttons: [{ title: "Open", type: url, value: "{{ vars.store_url }}" }]
  - type: payload
    payload: { campaign: renewal, tier: "{{ plan }}", n: 3 }
"#;

fn all_types_fixture(server: &TestServer) -> Fixture {
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), ALL_TYPES, "vars:\n  store_url: https://shop.example.com\n"),
    )
    .write(
        "contacts.csv",
        "customer_id,first_name,phone,plan,renews_on\nC1,ana,\"+55 (11) 99999-0001\",gold,2026-12-01\nC2,bo,5511999990002,basic,\n",
    )
    .write("templates/hello.txt.j2", "Hello {{ first_name | title }}!\n");
    f
}

#[test]
fn every_message_type_is_sent_exactly_as_the_api_documents() {
    let server = TestServer::sent_ok();
    let f = all_types_fixture(&server);
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let first = reqs
        .iter()
        .find(|r| r.body["contact"]["external_id"] == "C1")
        .unwrap();
    assert_eq!(
        first.body,
        json!({
            "destination": "contact",
            "contact": {"id": "new_contact", "external_id": "C1", "first_name": "ana", "mobile_phone": "5511999990001"},
            "message": [
                {"type": "text", "data": {"text": "Hello Ana!"}},
                {"type": "buttons", "data": {"text": "Keep your gold plan?", "buttons": [
                    {"title": "Yes", "type": "payload", "value": "renew-yes"},
                    {"title": "See plans", "type": "url", "value": "https://shop.example.com/plans?c=C1"}]}},
                {"type": "media", "data": {"type": "image", "url": "https://cdn.example.com/gold.png",
                    "name": "Your gold card", "mime_type": "image/png"}},
                {"type": "cards", "data": {"cards": [{"title": "Gold", "subtitle": "Renews on 2026-12-01",
                    "image_url": "https://cdn.example.com/gold.png",
                    "buttons": [{"title": "Open", "type": "url", "value": "https://shop.example.com"}]}]}},
                {"type": "payload", "data": {"campaign": "renewal", "tier": "gold", "n": 3}}
            ]
        })
    );
    // An optional field that renders empty is left out; a required one keeps its text.
    let second = reqs
        .iter()
        .find(|r| r.body["contact"]["external_id"] == "C2")
        .unwrap();
    assert_eq!(
        second.body["message"][3]["data"]["cards"][0]["subtitle"],
        "Renews on "
    );
    for r in &reqs {
        assert_eq!(r.headers.get("token").map(String::as_str), Some(TOKEN));
        assert_eq!(
            r.headers.get("channel_id").map(String::as_str),
            Some(CHANNEL)
        );
        assert!(r.headers["content-type"].starts_with("application/json"));
    }
}

#[test]
fn ledger_keeps_message_ids_and_a_second_run_sends_nothing() {
    let server = TestServer::sent_ok();
    let f = all_types_fixture(&server);
    f.run_cmd().assert().code(0);
    let rows = f.sql("SELECT key, status, message_ids, contact_id, attempts, http_status FROM contacts ORDER BY key");
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r[1], "sent");
        let ids: Vec<String> = serde_json::from_str(&r[2]).unwrap();
        assert_eq!(ids.len(), 5, "one id per message item: {r:?}");
        assert!(ids[0].starts_with("msg-"));
        assert!(r[3].starts_with("ct-"));
        assert_eq!((r[4].as_str(), r[5].as_str()), ("1", "200"));
    }
    let again = f.run();
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(server.count(), 2, "the second run must send nothing");
    assert!(
        stdout_of(&again).contains("sent 2"),
        "{}",
        stdout_of(&again)
    );
}

#[test]
fn a_cell_that_looks_like_json_arrives_as_text() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &campaign_yaml(
            &server.url(),
            "  - type: text\n    text: \"Hi {{ first_name }}\"\n",
            "",
        ),
    )
    .write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,\"\"\"}],\"\"x\"\":\"\"\",5511999990001\n",
    );
    f.run_cmd().assert().code(0);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].body["message"][0]["data"]["text"],
        r#"Hi "}],"x":""#
    );
    assert_eq!(reqs[0].body["contact"]["first_name"], r#""}],"x":""#);
    assert!(reqs[0].body.get("x").is_none());
}

#[test]
fn duplicate_keys_are_sent_once_and_recorded_as_skipped() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write("campaign.yaml", &campaign_yaml(&server.url(), "  - type: text\n    text: \"Hi\"\n", ""))
        .write(
            "contacts.csv",
            "customer_id,first_name,phone\nC1,a,+55 11 99999-0001\nC2,b,5511999990002\nC3,c,+55 (11) 99999-0001\n",
        );
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.count(), 2);
    let export = f.cmd().args(["export", "campaign.yaml"]).output().unwrap();
    let text = stdout_of(&export);
    assert!(text.starts_with("key,row_number,status,reason,contact_id,session_id,message_ids,attempts,http_status,error,updated_at,replied_at,last_reply,clicked,opted_out_at,phone\n"), "{text}");
    assert!(
        text.contains("5511999990001,3,skipped,duplicate,"),
        "{text}"
    );
}

#[test]
fn the_token_appears_in_no_output_ledger_or_export() {
    let server = TestServer::start(std::sync::Arc::new(|n, body| {
        if n == 1 {
            (422, r#"{"status":"error","message":"bad number"}"#.into())
        } else {
            answer_sent(n, body)
        }
    }));
    let f = all_types_fixture(&server);
    let mut outputs = Vec::new();
    for args in [
        vec!["check", "campaign.yaml"],
        vec!["preview", "campaign.yaml"],
        vec!["preview", "campaign.yaml", "--json"],
        vec!["run", "campaign.yaml", "--progress", "plain"],
        vec!["run", "campaign.yaml", "--dry-run", "--retry-failed"],
        vec!["status", "campaign.yaml"],
        vec!["status", "campaign.yaml", "--json"],
        vec!["export", "campaign.yaml"],
        vec![
            "export",
            "campaign.yaml",
            "--format",
            "jsonl",
            "-o",
            "out.jsonl",
        ],
    ] {
        let o = f.cmd().args(&args).output().unwrap();
        outputs.push((args.join(" "), stdout_of(&o) + &stderr_of(&o)));
    }
    assert_eq!(server.count(), 2);
    for (cmd, text) in &outputs {
        assert!(!text.contains(TOKEN), "`{cmd}` printed the token:\n{text}");
        assert!(!text.is_empty(), "`{cmd}` printed nothing");
    }
    for entry in std::fs::read_dir(f.dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            assert!(!file_contains(&p, TOKEN), "{} holds the token", p.display());
        }
    }
}

#[test]
fn a_literal_token_is_refused_before_anything_is_sent() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let yaml = campaign_yaml(&server.url(), "  - type: text\n    text: Hi\n", "")
        .replace("${COSMOBOTS_TOKEN}", "abc123literal");
    f.write("campaign.yaml", &yaml).write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,a,5511999990001\n",
    );
    let out = f.cmd().args(["run", "campaign.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("campaign.yaml:5: `api.token` holds a literal secret"),
        "{err}"
    );
    assert!(!err.contains("abc123literal"), "{err}");
    assert_eq!(server.count(), 0);
}

#[test]
fn the_sandbox_rehearses_the_example_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["campaigns", "templates"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        for e in std::fs::read_dir(root.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x != "sqlite") {
                std::fs::copy(&p, dir.path().join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    let run = || {
        assert_cmd::Command::cargo_bin("cosmocast")
            .unwrap()
            .current_dir(dir.path())
            // As on a fresh machine: no ledger named, the default data folder.
            .env_remove("COSMOCAST_LEDGER")
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .env_remove("COSMOBOTS_TOKEN")
            .env_remove("COSMOBOTS_CHANNEL_ID")
            .args([
                "run",
                "campaigns/welcome.yaml",
                "--sandbox",
                "--progress",
                "plain",
                "--json",
            ])
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap()
    };
    let first = run();
    assert_eq!(first.status.code(), Some(0), "{}", stderr_of(&first));
    let summary: serde_json::Value = serde_json::from_str(&stdout_of(&first)).unwrap();
    assert_eq!(summary["sent"], 120);
    assert_eq!(summary["skipped"], 1);
    let data = dir.path().join("data/cosmocast");
    assert!(data.join("cosmocast.sandbox.sqlite").exists());
    assert!(
        !data.join("cosmocast.sqlite").exists(),
        "a rehearsal never touches the workspace's ledger"
    );
    let second = run();
    let summary: serde_json::Value = serde_json::from_str(&stdout_of(&second)).unwrap();
    assert_eq!(summary["this_run"]["requests"], 0);
    assert_eq!(second.status.code(), Some(0));
}

#[test]
fn a_resumed_run_only_keys_the_rows_the_ledger_settles() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let yaml = campaign_yaml(
        &server.url(),
        "  - type: text\n    text: \"{{ note }}\"\n",
        "",
    )
    .replace(
        "  file: contacts.csv\n",
        "  file: contacts.csv\n  key: \"{{ customer_id }}\"\n",
    );
    f.write("campaign.yaml", &yaml).write(
        "contacts.csv",
        "customer_id,first_name,phone,note\nC1,a,5511999990001,hi\nC2,b,5511999990002,hi\n",
    );
    f.run_cmd().assert().code(0);
    // C1 was sent; its row would no longer render a valid request, and C1 now repeats.
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone,note\nC1,a,5511999990001,\nC2,b,5511999990002,hi\nC3,c,5511999990003,hi\nC1,a,5511999990001,hi\n",
    );
    // `check` reads the ledger as `run` does: C1 is settled, whatever its row says now.
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr_of(&check));
    let text = stdout_of(&check);
    assert!(text.contains("1 contact to message"), "{text}");
    // What the ledger holds for them is spelled out, in the run summary's words.
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("settled")
            && l.contains(" 2 ")
            && l.ends_with("already recorded in the ledger: sent 2")),
        "{text}"
    );
    let json = f
        .cmd()
        .args(["check", "campaign.yaml", "--json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&json)).unwrap();
    assert_eq!(
        json["settled_by_state"],
        serde_json::json!({"sent": 2}),
        "{json}"
    );
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.count(), 3, "only C3 is new");
    assert_eq!(
        f.sql("SELECT key, first_row FROM duplicates"),
        vec![vec!["C1", "1"]]
    );
}

/// Behind a proxy (HTTPS_PROXY), requests to the API go through it: here a proxy that records
/// the CONNECT it is asked for and refuses it, so the contact fails to connect.
#[test]
fn a_proxy_that_refuses_the_tunnel_fails_the_contact_to_connect() {
    use std::io::{BufRead, BufReader, Write};
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    proxy.set_nonblocking(true).unwrap();
    let seen = std::thread::spawn(move || {
        // Bounded: a run that never comes leaves an empty first line, and the test fails.
        let limit = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let stream = loop {
            match proxy.accept() {
                Ok((s, _)) => break s,
                Err(_) if std::time::Instant::now() < limit => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(_) => return String::new(),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let mut w = stream;
        let _ = w.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        first
    });
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &campaign_yaml(
            "https://api.cosmobots.invalid/messages/v1/send",
            "  - type: text\n    text: hi\n",
            "send:\n  retries: 0\n",
        ),
    )
    .write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,ana,5511999990001\n",
    );
    let out = f.run_cmd().env("HTTPS_PROXY", &proxy_url).output().unwrap();
    let first = seen.join().unwrap();
    assert!(
        first.starts_with("CONNECT api.cosmobots.invalid:443 "),
        "the proxy was asked: {first:?}"
    );
    // The API was never reached: the run stops as unreachable, naming the cause, and the
    // contact stays unsent (nothing was recorded of it).
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("cannot reach the API at https://api.cosmobots.invalid"),
        "{}",
        stderr_of(&out)
    );
    assert!(f.sql("SELECT status FROM contacts").is_empty());
}

/// An HTTPS API on loopback with a certificate of its own: a run that trusts it through
/// `SSL_CERT_FILE` sends over TLS on one kept connection; without it the certificate is refused
/// and nothing is sent. The server answers like the API, one request after another.
#[test]
fn https_with_a_ca_from_ssl_cert_file_sends_and_an_unknown_ca_is_refused() {
    use std::sync::{Arc, Mutex};
    // (connections accepted, requests answered)
    let seen = Arc::new(Mutex::new((0u32, 0u32)));
    let (port, pem) = https_api("localhost", seen.clone());
    let f = Fixture::new();
    f.write("ca.pem", &pem);
    f.write(
        "campaign.yaml",
        &campaign_yaml(
            &format!("https://localhost:{port}/messages/v1/send"),
            "  - type: text\n    text: hi\n",
            "send:\n  concurrency: 1\n  retries: 0\n",
        ),
    )
    .write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,ana,5511999990001\nC2,bo,5511999990002\n",
    );

    // (SSL_CERT_FILE often names the system's bundle: without it, or with it, this CA is unknown.)
    // The certificate is what is wrong, not the contacts: the run stops as unreachable (1),
    // naming it, and nobody is recorded failed.
    let refused = f.run_cmd().env_remove("SSL_CERT_FILE").output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr_of(&refused));
    assert!(
        stderr_of(&refused).contains("certificate"),
        "{}",
        stderr_of(&refused)
    );
    assert!(f.sql("SELECT status FROM contacts").is_empty());
    let (handshakes, requests) = *seen.lock().unwrap();
    assert_eq!(requests, 0, "a request went to an untrusted server");

    let trusted = f
        .run_cmd()
        .env("SSL_CERT_FILE", f.path("ca.pem"))
        .output()
        .unwrap();
    assert_eq!(trusted.status.code(), Some(0), "{}", stderr_of(&trusted));
    let sent = f.sql("SELECT status, message_ids FROM contacts ORDER BY key");
    assert!(
        sent.len() == 2 && sent.iter().all(|r| r[0] == "sent"),
        "{sent:?}"
    );
    let (connections, requests) = *seen.lock().unwrap();
    assert_eq!(requests, 2);
    // One connection carried both requests.
    assert_eq!(connections, handshakes + 1, "the connection was not kept");

    f.write("bad.pem", "not a certificate\n");
    let bad = f
        .run_cmd()
        .env("SSL_CERT_FILE", f.path("bad.pem"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1), "{}", stderr_of(&bad));
    assert!(stderr_of(&bad).contains("bad.pem"), "{}", stderr_of(&bad));
}

/// An HTTPS stand-in for the API with a certificate for `name`, made at test time; it answers
/// every request like the API, one after another on a connection, and counts (connections,
/// requests). Returns its port and the CA's PEM.
fn https_api(name: &str, seen: std::sync::Arc<std::sync::Mutex<(u32, u32)>>) -> (u16, String) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::Arc;
    let key = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let pem = key.cert.pem();
    let private =
        rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], private)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(stream) = stream else { return };
            let (config, seen) = (config.clone(), seen.clone());
            seen.lock().unwrap().0 += 1;
            std::thread::spawn(move || {
                stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .unwrap();
                let tls = rustls::ServerConnection::new(config).unwrap();
                let mut io = BufReader::new(rustls::StreamOwned::new(tls, stream));
                loop {
                    let (mut length, mut line) = (0usize, String::new());
                    loop {
                        line.clear();
                        if io.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    io.read_exact(&mut body).unwrap();
                    let n = {
                        let mut r = seen.lock().unwrap();
                        r.1 += 1;
                        r.1
                    };
                    let answer = format!(
                        r#"{{"status":"sent","contact_id":"ct-{n}","session_id":"s-{n}","message_ids":["m-{n}"]}}"#
                    );
                    let w = io.get_mut();
                    write!(
                        w,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    )
                    .unwrap();
                    w.flush().unwrap();
                }
            });
        }
    });
    (port, pem)
}

/// A real CONNECT proxy on loopback: it records each CONNECT line and its Proxy-Authorization,
/// then opens a tunnel to `target` on 127.0.0.1 (whatever host was asked for) and copies bytes
/// both ways.
fn connect_proxy(target: u16, seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().take(8) {
            let Ok(client) = client else { return };
            let seen = seen.clone();
            std::thread::spawn(move || {
                client
                    .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .unwrap();
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut head = String::new();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    head.push_str(&line);
                    line.clear();
                }
                seen.lock().unwrap().push(head);
                let upstream = std::net::TcpStream::connect(("127.0.0.1", target)).unwrap();
                let mut w = client.try_clone().unwrap();
                w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut up_r, mut up_w) = (upstream.try_clone().unwrap(), upstream);
                let mut down_w = client;
                std::thread::spawn(move || std::io::copy(&mut reader, &mut up_w));
                let _ = std::io::copy(&mut up_r, &mut down_w);
            });
        }
    });
    port
}

/// A successful send through a real proxy: the CONNECT tunnel (with the proxy's credentials
/// from HTTPS_PROXY, which appear nowhere), TLS to the API inside it, and the same requests as a
/// direct run; NO_PROXY sends the API around the proxy.
#[test]
fn a_proxy_from_the_environment_carries_the_requests_through_a_tunnel() {
    use std::sync::{Arc, Mutex};
    let counts = Arc::new(Mutex::new((0u32, 0u32)));
    let (api_port, pem) = https_api("api.cosmobots.invalid", counts.clone());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let proxy_port = connect_proxy(api_port, seen.clone());
    let f = Fixture::new();
    f.write("ca.pem", &pem)
        .write(
            "campaign.yaml",
            &campaign_yaml(
                "https://api.cosmobots.invalid/messages/v1/send",
                "  - type: text\n    text: hi\n",
                "send:\n  concurrency: 1\n  retries: 0\n",
            ),
        )
        .write(
            "contacts.csv",
            "customer_id,first_name,phone\nC1,ana,5511999990001\nC2,bo,5511999990002\n",
        );
    let out = f
        .run_cmd()
        .env(
            "HTTPS_PROXY",
            format!("http://proxyuser:pr0xy-pass@127.0.0.1:{proxy_port}"),
        )
        .env("SSL_CERT_FILE", f.path("ca.pem"))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(counts.lock().unwrap().1, 2);
    let heads = seen.lock().unwrap().clone();
    assert_eq!(
        heads.len(),
        1,
        "one kept tunnel carried both requests: {heads:?}"
    );
    assert!(
        heads[0].starts_with("CONNECT api.cosmobots.invalid:443 HTTP/1.1\r\n"),
        "{heads:?}"
    );
    // Basic proxyuser:pr0xy-pass
    assert!(
        heads[0].contains("cHJveHl1c2VyOnByMHh5LXBhc3M="),
        "no proxy credentials: {heads:?}"
    );
    assert_eq!(
        f.sql("SELECT DISTINCT status FROM contacts"),
        vec![vec!["sent".to_string()]]
    );
    for text in [stdout_of(&out), stderr_of(&out)] {
        assert!(!text.contains("pr0xy-pass"), "{text}");
    }
    assert!(!file_contains(&f.ledger(), "pr0xy-pass"));

    // NO_PROXY names the API: it is reached directly, and its name does not resolve.
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone\nC3,cy,5511999990003\n",
    );
    let out = f
        .run_cmd()
        .env("HTTPS_PROXY", format!("http://127.0.0.1:{proxy_port}"))
        .env("NO_PROXY", "cosmobots.invalid")
        .env("SSL_CERT_FILE", f.path("ca.pem"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the proxy was used despite NO_PROXY"
    );
    assert!(
        stderr_of(&out).contains("cannot resolve api.cosmobots.invalid"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        f.sql("SELECT status FROM contacts WHERE key = '5511999990003'")
            .is_empty()
    );
}
