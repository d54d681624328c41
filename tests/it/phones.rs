//! Phone numbers as people write them (issue 13): one normalised number behind sends, keys,
//! exclusions, opt-outs and duplicates. The real binary, the sandbox, the listener and SQLite.

use std::time::{Duration, Instant};

use crate::common::sandbox::*;
use crate::common::server::{SECRET, Server};
use crate::common::*;

/// A campaign reading its phones with `country` (none when empty), keyed by `key` (the
/// default, the phone, when empty).
fn phone_campaign(url: &str, country: &str, key: &str, extra: &str) -> String {
    let mut contacts = String::from("contacts:\n  file: contacts.csv\n");
    if !country.is_empty() {
        contacts.push_str(&format!("  country: {country}\n"));
    }
    if !key.is_empty() {
        contacts.push_str(&format!("  key: \"{key}\"\n"));
    }
    format!(
        "version: 1\nname: phones\napi:\n  url: {url}\n  channel: whatsapp\n{contacts}contact:\n  external_id: \"{{{{ customer_id }}}}\"\n  mobile_phone: \"{{{{ phone }}}}\"\nmessages:\n  - type: text\n    text: \"Hi {{{{ name }}}}, your number is {{{{ phone | phone }}}}\"\n{extra}"
    )
}

fn csv(rows: &[(&str, &str)]) -> String {
    let mut out = String::from("customer_id,name,phone\n");
    for (i, (name, phone)) in rows.iter().enumerate() {
        out.push_str(&format!("C{},{name},\"{phone}\"\n", i + 1));
    }
    out
}

/// Each country's forms, each a different number, reach the API as the international digits.
#[test]
fn every_way_of_writing_a_phone_reaches_the_api_normalised() {
    let cases: [(&str, &[(&str, &str)]); 3] = [
        (
            "BR",
            &[
                ("(11) 98765-4321", "5511987654321"),
                ("11 98765 4322", "5511987654322"),
                ("011 98765-4323", "5511987654323"),
                ("+55 11 98765-4324", "5511987654324"),
                ("5511987654325", "5511987654325"),
            ],
        ),
        (
            "US",
            &[
                ("(201) 555-0123", "12015550123"),
                ("201-555-0124", "12015550124"),
                ("1 201 555 0125", "12015550125"),
                ("+1 201-555-0126", "12015550126"),
            ],
        ),
        (
            "PT",
            &[
                ("912 345 678", "351912345678"),
                ("+351 912 345 679", "351912345679"),
                ("00351912345670", "351912345670"),
                ("351912345671", "351912345671"),
            ],
        ),
    ];
    for (country, forms) in cases {
        let server = TestServer::sent_ok();
        let f = Fixture::new();
        let rows: Vec<(&str, &str)> = forms.iter().map(|(w, _)| ("Ana", *w)).collect();
        f.write("contacts.csv", &csv(&rows)).write(
            "campaign.yaml",
            &phone_campaign(&server.url(), country, "", ""),
        );
        let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
        assert_eq!(
            check.status.code(),
            Some(0),
            "{country}: {}",
            stderr_of(&check)
        );
        let out = f.run();
        assert_eq!(out.status.code(), Some(0), "{country}: {}", stderr_of(&out));
        let expected: Vec<String> = forms.iter().map(|(_, n)| n.to_string()).collect();
        let mut sorted = expected.clone();
        sorted.sort();
        assert_eq!(server.phones(), sorted, "{country}");
        // The phone filter gives the same form, and the default key is it.
        for r in server.requests() {
            let text = r.body["message"][0]["data"]["text"]
                .as_str()
                .unwrap()
                .to_string();
            let phone = r.body["contact"]["mobile_phone"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(text.ends_with(&phone), "{text}");
        }
        let keys: Vec<String> = f
            .sql("SELECT key FROM contacts ORDER BY row_number")
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
        assert_eq!(keys, expected, "{country}");
    }
}

#[test]
fn the_sandbox_on_whatsapp_accepts_only_normalised_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &["--channel", "whatsapp"]);
    let body = |phone: &str| {
        format!(
            r#"{{"destination":"contact","contact":{{"id":"new_contact","mobile_phone":"{phone}"}},"message":[{{"type":"text","data":{{"text":"hi"}}}}]}}"#
        )
    };
    let post = |phone: &str| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap()
                .post(&sandbox.url)
                .header("token", "t")
                .header("channel_id", "c")
                .header("content-type", "application/json")
                .body(body(phone))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert_eq!(post("5511987654321"), 200);
    for written in [
        "11987654321",
        "055119876543210",
        "+5511987654321",
        "5511987",
    ] {
        assert_eq!(post(written), 400, "{written}");
    }
    // A campaign run against it with numbers as people write them goes through.
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        &csv(&[("Ana", "(11) 98765-4321"), ("Bo", "+351 912 345 678")]),
    )
    .write("campaign.yaml", &phone_campaign(&sandbox.url, "BR", "", ""));
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn a_bad_cell_gets_a_message_that_says_what_to_do() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        &csv(&[
            ("Ana", "5.5119876E+12"),
            ("Bo", "(11) 98765-432"),
            ("Cy", "(20) 98765-4321"),
            ("Di", "5511987654321"),
        ]),
    )
    .write(
        "campaign.yaml",
        &phone_campaign(&server.url(), "BR", "", ""),
    );
    let out = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    for needed in [
        "contacts.csv:2: row 1: `5.5119876E+12` is in scientific notation",
        "format the phone column as Text",
        "contacts.csv:3: row 2: `(11) 98765-432`",
        "contacts.csv:4: row 3: `(20) 98765-4321` is not a valid BR phone number",
    ] {
        assert!(err.contains(needed), "{needed:?} in {err}");
    }
    // Without a country, a national number says to set one.
    f.write("campaign.yaml", &phone_campaign(&server.url(), "", "", ""))
        .write("contacts.csv", &csv(&[("Ana", "(11) 98765-4321")]));
    let out = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    let err = stderr_of(&out);
    assert!(
        err.contains("has no country code") && err.contains("contacts.country: BR"),
        "{err}"
    );
    // With --skip-invalid the bad rows are never sent, and nothing is recorded for them.
    f.write(
        "campaign.yaml",
        &phone_campaign(&server.url(), "BR", "", ""),
    )
    .write(
        "contacts.csv",
        &csv(&[("Ana", "5.5119876E+12"), ("Di", "5511987654321")]),
    );
    let out = f.run_cmd().arg("--skip-invalid").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.phones(), ["5511987654321"]);
    assert!(
        f.sql("SELECT reason FROM contacts WHERE status = 'skipped'")
            .is_empty()
    );
}

#[test]
fn three_customer_ids_sharing_one_phone_are_messaged_once() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        &csv(&[
            ("Ana", "(11) 98765-4321"),
            ("Bo", "+55 11 98765-4321"),
            ("Cy", "5511987654321"),
            ("Di", "(11) 98765-4322"),
        ]),
    )
    .write(
        "campaign.yaml",
        &phone_campaign(&server.url(), "BR", "{{ customer_id }}", ""),
    );
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    let text = stdout_of(&check);
    assert!(text.contains("same phone         2"), "{text}");
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("skipped 2 (duplicate 2)"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(server.phones(), ["5511987654321", "5511987654322"]);
    let dups = f.sql(
        "SELECT key, error FROM contacts WHERE status = 'skipped' AND reason = 'duplicate' ORDER BY key",
    );
    assert_eq!(
        dups,
        [["C2", "same phone as row 1"], ["C3", "same phone as row 1"]]
    );
    // A later run sends nothing more, and a new row with the phone is a duplicate of the ledger's.
    let mut more = std::fs::read_to_string(f.path("contacts.csv")).unwrap();
    more.push_str("C9,Eve,\"11 98765 4321\"\n");
    f.write("contacts.csv", &more);
    assert_eq!(f.run().status.code(), Some(0));
    assert_eq!(server.count(), 2);

    // For per-account notices: every account gets its message.
    let server = TestServer::sent_ok();
    let f2 = Fixture::new();
    f2.write(
        "contacts.csv",
        &csv(&[("Ana", "(11) 98765-4321"), ("Bo", "+55 11 98765-4321")]),
    )
    .write(
        "campaign.yaml",
        &phone_campaign(&server.url(), "BR", "{{ customer_id }}", "")
            .replace("  key:", "  unique_phone: false\n  key:"),
    );
    assert_eq!(f2.run().status.code(), Some(0));
    assert_eq!(server.count(), 2);
}

/// A run's summary reads the ledger's messaged phones only when a row is still due; then it
/// counts a row sharing a phone with a sent contact as `status` does.
#[test]
fn a_summary_with_rows_left_counts_a_shared_phone_as_status_does() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        &csv(&[
            ("Ana", "(11) 98765-4321"),
            ("Bo", "(11) 98765-4322"),
            ("Cy", "+55 11 98765-4321"),
        ]),
    )
    .write(
        "campaign.yaml",
        &phone_campaign(&server.url(), "BR", "{{ customer_id }}", ""),
    );
    // Only Ana is sent: Bo stays due, and Cy shares Ana's phone.
    let out = f
        .run_cmd()
        .args(["--limit", "1", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert_eq!(server.count(), 1);
    let summary: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let status = f.status_json();
    for bucket in ["sent", "skipped", "skipped_by_reason", "pending", "rows"] {
        assert_eq!(
            summary[bucket], status["rows"][bucket],
            "{bucket}: {summary} / {status}"
        );
    }
    assert_eq!(summary["pending"], 1, "{summary}");
    assert_eq!(summary["skipped_by_reason"]["duplicate"], 1, "{summary}");
    // What the next run would do adds up to the rows too: Ana settled, Bo new, Cy's phone taken.
    let next = &status["next_run"];
    assert_eq!(
        (
            &next["settled"],
            &next["new"],
            &next["same_phone"],
            &next["rows"]
        ),
        (&1.into(), &1.into(), &1.into(), &3.into()),
        "{next}"
    );
    let text = f.cmd().args(["status", "campaign.yaml"]).output().unwrap();
    assert!(
        stdout_of(&text).contains("0 duplicate, 1 same phone, 0 invalid, 1 already settled"),
        "{}",
        stdout_of(&text)
    );
}

#[test]
fn an_opt_out_from_a_webhook_stops_a_later_campaign_whatever_the_format() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        &csv(&[("Ana", "(11) 98765-4321"), ("Bo", "(11) 98765-4322")]),
    )
    .write(
        "campaign.yaml",
        &phone_campaign(&server.url(), "BR", "", ""),
    );
    assert_eq!(f.run().status.code(), Some(0));
    assert_eq!(server.count(), 2);

    // The customer answers STOP; the webhook carries the phone as CosmoBots writes it.
    let ledger = f.ledger().display().to_string();
    let listen = Server::start(
        &["listen", "--addr", "127.0.0.1:0", "--ledger", &ledger],
        f.dir.path(),
    );
    let status = post_status(
        &format!("{}/webhook/{SECRET}", listen.base()),
        r#"{"contact":{"id":"ct-0","mobile_phone":"5511987654321"},"message":[{"type":"text","data":{"text":"STOP"}}]}"#,
    );
    assert_eq!(status, 200);
    let start = Instant::now();
    while f.sql("SELECT COUNT(*) FROM opt_outs")[0][0] != "1" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the opt-out was not stored"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(listen);

    // A later campaign whose CSV writes the number the Brazilian way does not message it.
    let yaml = phone_campaign(&server.url(), "BR", "", "").replace("name: phones", "name: promo");
    f.write("campaign.yaml", &yaml);
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.count(), 3);
    let last = server.requests()[2].body["contact"]["mobile_phone"].clone();
    assert_eq!(last, "5511987654322");
    let skipped = f.sql(
        "SELECT key FROM contacts WHERE campaign = 'promo' AND status = 'skipped' AND reason = 'opted_out'",
    );
    assert_eq!(skipped, [["5511987654321"]]);
}

#[test]
fn a_landline_on_whatsapp_is_a_warning_counted_and_sent() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        &csv(&[("Ana", "(11) 3456-7890"), ("Bo", "(11) 98765-4321")]),
    )
    .write(
        "campaign.yaml",
        &phone_campaign(&server.url(), "BR", "", ""),
    );
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stderr_of(&check));
    let err = stderr_of(&check);
    assert!(
        err.contains("warning: contacts.csv:2: row 1: the phone `(11) 3456-7890` is a landline"),
        "{err}"
    );
    assert!(
        stdout_of(&check).contains("landlines          1"),
        "{}",
        stdout_of(&check)
    );
    let out = f.run();
    assert_eq!(out.status.code(), Some(0));
    // The run names its line, which check no longer lists once it is sent.
    assert!(
        stderr_of(&out).contains(
            "1 phone is a landline on whatsapp, which reaches mobiles only (contacts.csv line 2); they were sent all the same"
        ),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(server.count(), 2);
}
