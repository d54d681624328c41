//! Numbers a manager can trust: after a week of ordinary edits (a filter added mid-campaign, an
//! invalid row fixed, a row dropped, signups appended) the run's summary, `status --json`, the
//! report and `export` agree, and their buckets add up to the rows of the file.

use crate::common::*;
use serde_json::Value;

const BUCKETS: [&str; 11] = [
    "sent", "queued", "failed", "unknown", "sending", "skipped", "filtered", "invalid", "blank",
    "deferred", "pending",
];

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn csv(rows: &[(&str, &str, &str)]) -> String {
    let mut s = String::from("customer_id,first_name,phone\n");
    for (id, name, phone) in rows {
        s.push_str(&format!("{id},{name},{phone}\n"));
    }
    s
}

/// The figure the report shows under `id`, read from its HTML.
fn report_count(html: &str, id: &str) -> u64 {
    let marker = format!("id=\"count-{id}\" data-count=\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id} in the report"))
        + marker.len();
    html[at..]
        .split('"')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Every view of the campaign now, checked against one another.
fn agree(f: &Fixture, summary: &Value) -> Value {
    let status = f.status_json();
    let rows = status["rows"].clone();
    let total: u64 = BUCKETS.iter().map(|b| n(&rows[b])).sum();
    assert_eq!(total, n(&rows["rows"]), "the buckets add up: {rows}");
    for b in [
        "sent", "queued", "failed", "unknown", "sending", "skipped", "filtered", "invalid",
        "pending",
    ] {
        assert_eq!(
            n(&summary[b]),
            n(&rows[b]),
            "summary and status on {b}: {summary} {rows}"
        );
    }
    assert_eq!(n(&summary["not_in_file"]), n(&rows["not_in_file"]));

    let export = stdout_of(&f.cmd().args(["export", "campaign.yaml"]).output().unwrap());
    let lines: Vec<&str> = export.lines().skip(1).collect();
    assert_eq!(
        lines.len() as u64,
        n(&rows["rows"]),
        "one line per row: {export}"
    );
    let numbers: Vec<u64> = lines
        .iter()
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    let mut sorted = numbers.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(numbers, sorted, "each row once, in row order: {export}");
    for b in ["sent", "skipped", "filtered", "invalid", "pending"] {
        let in_export = lines
            .iter()
            .filter(|l| l.split(',').nth(2) == Some(b))
            .count() as u64;
        assert_eq!(in_export, n(&rows[b]), "export and status on {b}: {export}");
    }
    // JSON lines give the same rows, and an absent time as null, as every absent field.
    let jsonl = stdout_of(
        &f.cmd()
            .args(["export", "campaign.yaml", "--format", "jsonl"])
            .output()
            .unwrap(),
    );
    let objects: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), lines.len(), "{jsonl}");
    for o in &objects {
        // A repeated key is judged from the file as it is now, whatever a run recorded.
        let judged = ["filtered", "invalid", "blank", "deferred", "pending"]
            .contains(&o["status"].as_str().unwrap_or_default())
            || o["reason"] == "duplicate";
        assert_eq!(o["updated_at"].is_null(), judged, "{o}");
    }

    let html = f.report_page();
    assert!(
        !html.contains("These add up to"),
        "the report does not doubt its own sum"
    );
    for (id, b) in [
        ("rows", "rows"),
        ("sent", "sent"),
        ("filtered", "filtered"),
        ("invalid", "invalid"),
        ("not_yet_sent", "pending"),
    ] {
        assert_eq!(
            report_count(&html, id),
            n(&rows[b]),
            "report and status on {b}"
        );
    }
    rows
}

/// A campaign at `url` whose contacts are keyed by `customer_id`, with `contacts` lines added
/// under `contacts:`.
fn keyed(url: &str, contacts: &str) -> String {
    campaign_yaml(
        url,
        "  - type: text\n    text: \"Oi {{ first_name }}\"\n",
        "",
    )
    .replace(
        "  file: contacts.csv\n",
        &format!("  file: contacts.csv\n  key: \"{{{{ customer_id }}}}\"\n{contacts}"),
    )
}

fn run_json(f: &Fixture, extra: &[&str]) -> (Option<i32>, Value, String) {
    let out = f.run_cmd().arg("--json").args(extra).output().unwrap();
    let summary = serde_json::from_str(&stdout_of(&out)).unwrap_or(Value::Null);
    (out.status.code(), summary, stderr_of(&out))
}

#[test]
fn counts_agree_and_add_up_after_a_filter_a_fix_and_a_dropped_row() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let yaml = keyed(&server.url(), "");
    f.write("campaign.yaml", &yaml);
    let mut rows = vec![
        ("C1", "Ana", "5511999990001"),
        ("C2", "Bo", "5511999990002"),
        ("C3", "Cy", "5511999990003"),
        ("C4", "Di", "123"),
        ("C5", "Ed", "5511999990005"),
        ("C6", "Fe", "5511999990006"),
    ];
    f.write("contacts.csv", &csv(&rows));

    // Monday: one row is invalid; the others are sent.
    let (code, summary, err) = run_json(&f, &["--skip-invalid"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!((n(&summary["sent"]), n(&summary["invalid"])), (5, 1));
    agree(&f, &summary);

    // Tuesday: a filter leaves out C5 (already sent: it stays sent) and a new signup, Gil.
    f.write(
        "campaign.yaml",
        &yaml.replace(
            "  key: \"{{ customer_id }}\"\n",
            "  key: \"{{ customer_id }}\"\n  where: \"first_name != 'Ed' and first_name != 'Gil'\"\n",
        ),
    );
    rows.push(("C7", "Gil", "5511999990007"));
    f.write("contacts.csv", &csv(&rows));
    let (code, summary, err) = run_json(&f, &["--skip-invalid"]);
    assert_eq!(code, Some(0), "{err}");
    let now = agree(&f, &summary);
    assert_eq!(
        (n(&now["sent"]), n(&now["filtered"]), n(&now["invalid"])),
        (5, 1, 1)
    );
    let export = stdout_of(&f.cmd().args(["export", "campaign.yaml"]).output().unwrap());
    assert_eq!(
        export.matches("C5,").count(),
        1,
        "C5 is listed once: {export}"
    );

    // Wednesday: C4's phone is fixed (sent, and invalid no more), C2's row is dropped.
    rows[3] = ("C4", "Di", "5511999990004");
    rows.remove(1);
    f.write("contacts.csv", &csv(&rows));
    let (code, summary, err) = run_json(&f, &[]);
    assert_eq!(code, Some(0), "{err}");
    let now = agree(&f, &summary);
    assert_eq!(n(&now["invalid"]), 0);
    assert_eq!(
        n(&now["sent"]),
        5,
        "C1 C3 C4 C5 C6 are in the file and sent"
    );
    assert_eq!(n(&now["not_in_file"]), 1, "C2 is counted apart");
    assert_eq!(n(&now["rows"]), 6);
    assert_eq!(server.count(), 6);
}

/// A key's first row is its contact, even while that row is invalid or filtered out: the later
/// row with the key is a duplicate before the run, during it and after it, so the counts do not
/// move when nothing changed, and the row sent is the row that was fixed.
#[test]
fn a_key_whose_first_row_is_left_out_keeps_the_same_counts_after_a_run() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let yaml = keyed(&server.url(), "  where: \"first_name != 'Out'\"\n");
    f.write("campaign.yaml", &yaml);
    let mut rows = vec![
        ("C1", "Ana", "551199999000X"),
        ("C2", "Out", "5511999990002"),
        ("C3", "Cy", "5511999990003"),
        ("C1", "Ana", "5511999990001"),
        ("C2", "Bo", "5511999990002"),
    ];
    f.write("contacts.csv", &csv(&rows));
    let before = f.status_json()["rows"].clone();
    assert_eq!(
        (
            n(&before["invalid"]),
            n(&before["filtered"]),
            n(&before["skipped"]),
            n(&before["pending"])
        ),
        (1, 1, 2, 1),
        "rows 4 and 5 repeat the keys of rows 1 and 2: {before}"
    );

    let (code, summary, err) = run_json(&f, &["--skip-invalid"]);
    assert_eq!(code, Some(0), "{err}");
    let after = agree(&f, &summary);
    assert_eq!(server.count(), 1, "only C3 is sent");
    for b in ["invalid", "filtered", "skipped"] {
        assert_eq!(n(&after[b]), n(&before[b]), "{b} before and after: {after}");
    }
    let export = stdout_of(&f.cmd().args(["export", "campaign.yaml"]).output().unwrap());
    assert!(export.contains("C1,4,skipped,duplicate"), "{export}");
    assert!(export.contains("same key as row 1"), "{export}");

    // Row 1 fixed: C1 is sent from it, with its phone.
    rows[0].2 = "5511999990001";
    f.write("contacts.csv", &csv(&rows));
    let (code, summary, err) = run_json(&f, &[]);
    assert_eq!(code, Some(0), "{err}");
    let now = agree(&f, &summary);
    assert_eq!((n(&now["sent"]), n(&now["invalid"])), (2, 0), "{now}");
    let export = stdout_of(&f.cmd().args(["export", "campaign.yaml"]).output().unwrap());
    let c1 = export.lines().find(|l| l.starts_with("C1,1,")).unwrap();
    assert!(
        c1.contains(",sent,") && c1.ends_with("5511999990001"),
        "{export}"
    );
}

/// A contact skipped for sharing its phone names whom it shares it with by key: the row number
/// recorded then moves when a row above is deleted (it pointed at the row itself).
#[test]
fn a_shared_phone_names_its_holder_by_key_after_rows_move() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let yaml = keyed(&server.url(), "");
    f.write("campaign.yaml", &yaml);
    let mut rows = vec![
        ("A", "Ana", "5511999990001"),
        ("B", "Bo", "5511999990002"),
        ("C", "Cy", "5511999990002"),
    ];
    f.write("contacts.csv", &csv(&rows));
    let (code, _, err) = run_json(&f, &[]);
    assert_eq!(code, Some(0), "{err}");
    rows.remove(0);
    f.write("contacts.csv", &csv(&rows));
    let export = stdout_of(&f.cmd().args(["export", "campaign.yaml"]).output().unwrap());
    let c = export.lines().find(|l| l.starts_with("C,")).unwrap();
    assert!(
        c.starts_with("C,2,skipped,duplicate,")
            && c.contains("same phone as contact B, which this campaign messaged"),
        "{export}"
    );
}

/// A column renamed after a run: the campaign no longer loads, so the file's rows cannot be
/// counted, but `status` still shows what the ledger records, and does not say "nothing was
/// sent" of a campaign that sent.
#[test]
fn status_of_a_campaign_that_no_longer_loads_shows_what_the_ledger_records() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    text: oi\n", ""),
    )
    .write(
        "contacts.csv",
        &csv(&[
            ("C1", "Ana", "5511999990001"),
            ("C2", "Bo", "5511999990002"),
        ]),
    );
    assert_eq!(f.run().status.code(), Some(0));
    let renamed = std::fs::read_to_string(f.path("contacts.csv"))
        .unwrap()
        .replace("first_name", "nome");
    f.write("contacts.csv", &renamed);
    let out = f.cmd().args(["status", "campaign.yaml"]).output().unwrap();
    let text = stdout_of(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(text.contains("the ledger records:"), "{text}");
    assert!(text.contains("  sent     2"), "{text}");
    assert!(
        text.contains("next run: cannot tell, the campaign does not load"),
        "{text}"
    );
    assert!(text.contains("`first_name`"), "names the problem: {text}");
    assert!(!text.contains("nothing was sent"), "{text}");
}

/// The text edited between two runs: status and the report say some contacts got another
/// version than the one they show.
#[test]
fn messages_edited_between_runs_are_noted_in_status_and_the_report() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let yaml = campaign_yaml(&server.url(), "  - type: text\n    text: Olá\n", "");
    f.write("campaign.yaml", &yaml).write(
        "contacts.csv",
        &csv(&[
            ("C1", "Ana", "5511999990001"),
            ("C2", "Bo", "5511999990002"),
        ]),
    );
    assert_eq!(
        f.run_cmd()
            .args(["--limit", "1"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(4)
    );
    let status = || stdout_of(&f.cmd().args(["status", "campaign.yaml"]).output().unwrap());
    assert!(!status().contains("the messages changed"), "{}", status());
    f.write("campaign.yaml", &yaml.replace("text: Olá", "text: Oi"));
    assert_eq!(f.run().status.code(), Some(0));
    let text = status();
    assert!(
        text.contains("note: the messages changed while the campaign ran")
            && text.contains("(2 versions in all)"),
        "{text}"
    );
    assert!(
        f.report_page()
            .contains("the messages changed while the campaign ran")
    );
    // check, which a marketer runs after an edit, says so too.
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert!(
        stdout_of(&check).contains("the messages changed while the campaign ran")
            || stderr_of(&check).contains("the messages changed while the campaign ran"),
        "{}",
        stdout_of(&check)
    );
}

/// `name:` changed in the same file after it sent: a new campaign that messages everyone again.
/// check, the run and status say so before it does, with the way back.
#[test]
fn a_renamed_campaign_says_it_messages_everyone_again() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let yaml = campaign_yaml(&server.url(), "  - type: text\n    text: Olá\n", "");
    f.write("campaign.yaml", &yaml).write(
        "contacts.csv",
        &csv(&[
            ("C1", "Ana", "5511999990001"),
            ("C2", "Bo", "5511999990002"),
        ]),
    );
    assert_eq!(f.run().status.code(), Some(0));
    f.write(
        "campaign.yaml",
        &yaml.replace("name: test-campaign", "name: test-campaign-v2"),
    );
    let said = "this file last sent as campaign \"test-campaign\"";
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert!(
        stdout_of(&check).contains(said) || stderr_of(&check).contains(said),
        "{}",
        stderr_of(&check)
    );
    let status = stdout_of(&f.cmd().args(["status", "campaign.yaml"]).output().unwrap());
    assert!(
        status.contains(said) && status.contains("which messaged 2 contacts"),
        "{status}"
    );
    // The report, which a manager reads, says it too.
    let page = f.report_page();
    assert!(
        page.contains("this file last sent as campaign &quot;test-campaign&quot;"),
        "{page}"
    );
    let run = f.run();
    assert!(
        stderr_of(&run).contains("put back `name: test-campaign`"),
        "{}",
        stderr_of(&run)
    );
    assert_eq!(
        server.count(),
        4,
        "a new name is a new campaign: a note, not a refusal"
    );
    // Once the new name has run, it is the campaign: no more note.
    let status = stdout_of(&f.cmd().args(["status", "campaign.yaml"]).output().unwrap());
    assert!(!status.contains(said), "{status}");
}

/// A contact that failed, whose row a filter added later leaves out, keeps its ledger state in
/// every count: status's next run, its rows and its top-level figures agree.
#[test]
fn a_failed_contact_filtered_later_is_counted_once_everywhere() {
    let server = TestServer::start(std::sync::Arc::new(|n, body| {
        if n == 0 {
            (422, r#"{"status":"error","message":"no"}"#.into())
        } else {
            answer_sent(n, body)
        }
    }));
    let f = Fixture::new();
    let yaml = campaign_yaml(
        &server.url(),
        "  - type: text\n    text: oi\n",
        "send:\n  concurrency: 1\n",
    );
    f.write("campaign.yaml", &yaml).write(
        "contacts.csv",
        &csv(&[
            ("C1", "Ana", "5511999990001"),
            ("C2", "Bo", "5511999990002"),
        ]),
    );
    assert_eq!(f.run().status.code(), Some(3));
    f.write(
        "campaign.yaml",
        &yaml.replace(
            "  file: contacts.csv\n",
            "  file: contacts.csv\n  where: \"first_name != 'Ana'\"\n",
        ),
    );
    let status = f.status_json();
    assert_eq!(status["rows"]["failed"], 1, "{status}");
    assert_eq!(status["rows"]["filtered"], 0, "{status}");
    assert_eq!(status["filtered"], 0, "{status}");
    assert_eq!(status["next_run"]["filtered"], 0, "{status}");
    assert_eq!(status["next_run"]["settled"], 2, "{status}");
    // The text says why the failed one is not among those --retry-failed sends.
    let text = stdout_of(&f.cmd().args(["status", "campaign.yaml"]).output().unwrap());
    assert!(
        text.contains("1 contact failed or unknown not sent again by either flag: filtered out"),
        "{text}"
    );
}

#[test]
fn the_exit_code_is_about_this_run() {
    let server = TestServer::start(std::sync::Arc::new(|n, body| {
        if n == 0 {
            (
                422,
                r#"{"status":"error","message":"Channel is disconnected"}"#.into(),
            )
        } else {
            answer_sent(n, body)
        }
    }));
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &campaign_yaml(
            &server.url(),
            "  - type: text\n    text: oi\n",
            "send:\n  concurrency: 1\n",
        ),
    )
    .write(
        "contacts.csv",
        &csv(&[
            ("C1", "Ana", "5511999990001"),
            ("C2", "Bo", "5511999990002"),
        ]),
    );
    let out = f.run_cmd().arg("-q").output().unwrap();
    assert_eq!(out.status.code(), Some(3), "this run left a failure");
    assert!(
        stdout_of(&out).contains("failed 1"),
        "-q still prints the summary line when the exit is not 0: {}",
        stdout_of(&out)
    );
    // The next morning: nothing new, the old failure is named, the exit is 0.
    let out = f.run_cmd().arg("-q").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stdout_of(&out).is_empty(), "-q and exit 0: silent");
    let out = f.run();
    assert!(stdout_of(&out).contains("failed 1"), "{}", stdout_of(&out));
}

#[test]
fn a_failure_streak_names_the_apis_reason() {
    let server = TestServer::start(std::sync::Arc::new(|_, _| {
        (
            422,
            r#"{"status":"error","message":"Channel is disconnected"}"#.into(),
        )
    }));
    let f = Fixture::new();
    let contacts: Vec<(String, String, String)> = (0..8)
        .map(|i| {
            (
                format!("C{i}"),
                format!("N{i}"),
                format!("55119999900{i:02}"),
            )
        })
        .collect();
    let refs: Vec<(&str, &str, &str)> = contacts
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    f.write(
        "campaign.yaml",
        &campaign_yaml(
            &server.url(),
            "  - type: text\n    text: oi\n",
            "send:\n  concurrency: 1\n  max_consecutive_failures: 5\n",
        ),
    )
    .write("contacts.csv", &csv(&refs));
    let out = f.run();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("5 contacts failed in a row") && err.contains("Channel is disconnected"),
        "{err}"
    );
}

#[test]
fn a_finished_campaign_copied_with_new_text_but_the_same_name_says_so() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let yaml = campaign_yaml(
        &server.url(),
        "  - type: text\n    text: \"Black Friday!\"\n",
        "",
    );
    f.write("campaign.yaml", &yaml)
        .write("contacts.csv", &csv(&[("C1", "Ana", "5511999990001")]));
    assert_eq!(f.run().status.code(), Some(0));
    // Next month: the file is copied, the text changed, the `name:` kept.
    f.write("campaign.yaml", &yaml.replace("Black Friday!", "Natal!"));
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    let err = stderr_of(&check);
    assert!(
        err.contains("is finished") && err.contains("new `name:`") && err.contains("last sent on"),
        "{err}"
    );
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("is finished"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(server.count(), 1);
    // The same text again says nothing.
    f.write("campaign.yaml", &yaml);
    let out = f.run();
    assert!(
        !stderr_of(&out).contains("is finished"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn problems_of_one_kind_are_shown_twenty_times_then_counted() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    text: oi\n", ""),
    );
    // Thirty phones too short, each quoting its own value: one kind, however the values differ.
    let rows: Vec<(String, String, String)> = (0..30)
        .map(|i| (format!("C{i}"), format!("N{i}"), format!("{}", 100 + i)))
        .collect();
    let refs: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    f.write("contacts.csv", &csv(&refs));
    let out = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1));
    let shown = err
        .lines()
        .filter(|l| l.starts_with("contacts.csv:"))
        .count();
    assert_eq!(shown, 20, "{err}");
    assert!(
        err.contains("... and 10 more phone problems, not shown (20 of each kind are)"),
        "{err}"
    );
}

#[test]
fn seven_yaml_mistakes_come_in_one_pass() {
    let f = Fixture::new();
    f.write("contacts.csv", &csv(&[("C1", "Ana", "5511999990001")]))
        .write(
            "campaign.yaml",
            "version: 1\nname: Seven Mistakes\napi:\n  url: ftp://example.com/send\n  token: ${COSMOBOTS_TOKEN}\n  chanel: whatsapp\n  timeout: soon\ncontacts:\n  file: contacts.csv\n  delimter: \";\"\ncontact:\n  mobile_phone: \"{{ phone }}\"\nmessages:\n  - type: text\n    txt: hi\nsend:\n  concurrency: many\n  rate: fast\n",
        );
    let out = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1));
    for line in [
        "campaign.yaml:2:",
        "campaign.yaml:4:",
        "campaign.yaml:6:3:",
        "campaign.yaml:7:",
        "campaign.yaml:10:3:",
        "campaign.yaml:15:5:",
        "campaign.yaml:17:16:",
        "campaign.yaml:18:",
    ] {
        assert!(err.contains(line), "{line} in {err}");
    }
    assert!(err.contains("8 problems found"), "{err}");

    // A cool-down without its unit: 24 seconds is rarely what `cooldown: 24` meant.
    f.write(
        "campaign.yaml",
        &campaign_yaml(
            "http://127.0.0.1:9/send",
            "  - type: text\n    text: oi\n",
            "",
        )
        .replace(
            "  file: contacts.csv\n",
            "  file: contacts.csv\n  cooldown: 24\n",
        ),
    );
    let out = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("campaign.yaml:11:")
            && err.contains(
                "`contacts.cooldown: 24` has no unit — write it with one: `24h` for hours"
            ),
        "{err}"
    );
}

#[test]
fn a_key_cell_padded_by_an_edit_is_the_same_contact() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    // Without unique_phone nothing but the key tells the two rows apart.
    let yaml = campaign_yaml(
        &server.url(),
        "  - type: text\n    text: \"Oi {{ first_name }}\"\n",
        "",
    )
    .replace(
        "  file: contacts.csv\n",
        "  file: contacts.csv\n  key: \"{{ customer_id }}\"\n  unique_phone: false\n",
    );
    f.write("campaign.yaml", &yaml);
    f.write(
        "contacts.csv",
        &csv(&[
            ("C1", "Ana", "5511999990001"),
            ("C2", "Bo", "5511999990002"),
        ]),
    );
    let (code, summary, err) = run_json(&f, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(n(&summary["sent"]), 2);

    // Someone edits the file in a spreadsheet: spaces now pad both ids.
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1 ,Ana,5511999990001\n\" C2\",Bo,5511999990002\n",
    );
    let (code, summary, err) = run_json(&f, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(server.count(), 2, "nobody is messaged twice");
    let rows = agree(&f, &summary);
    assert_eq!(
        (n(&rows["sent"]), n(&rows["not_in_file"])),
        (2, 0),
        "{rows}"
    );
    assert_eq!(
        f.sql("SELECT key FROM contacts ORDER BY key"),
        [["C1"], ["C2"]]
    );
}

#[test]
fn a_file_saved_again_as_windows_1252_keeps_its_sent_contacts() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    let yaml = keyed(&server.url(), "");
    f.write("campaign.yaml", &yaml);
    f.write(
        "contacts.csv",
        &csv(&[
            ("C1", "João", "5511999990001"),
            ("C2", "Ana", "5511999990002"),
        ]),
    );
    let (code, summary, err) = run_json(&f, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(n(&summary["sent"]), 2);

    // Opened in Excel, a row added, saved as plain "CSV": windows-1252, no `encoding:`.
    let text = csv(&[
        ("C1", "João", "5511999990001"),
        ("C2", "Ana", "5511999990002"),
        ("C3", "Zé", "5511999990003"),
        ("Cé4", "Bo", "5511999990004"),
    ]);
    let latin: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    std::fs::write(f.path("contacts.csv"), latin).unwrap();
    let (code, summary, err) = run_json(&f, &["--skip-invalid"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(server.count(), 2, "nobody is messaged twice");
    let rows = agree(&f, &summary);
    // The contacts sent stay sent, found by their keys; the new row names the encoding.
    assert_eq!(
        (
            n(&rows["sent"]),
            n(&rows["invalid"]),
            n(&rows["not_in_file"])
        ),
        (2, 2, 0),
        "{rows}"
    );
    // A key read whole is shown; one the bad bytes are in is no key.
    let export = stdout_of(&f.cmd().args(["export", "campaign.yaml"]).output().unwrap());
    let starts: Vec<String> = export
        .lines()
        .skip(3)
        .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(starts, ["C3,3,invalid", ",4,invalid"], "{export}");
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    assert!(
        stderr_of(&check).contains(
            "contacts.csv:4: column \"first_name\" is not valid UTF-8 — it looks saved as windows-1252 (read that way it says \"Zé\")"
        ),
        "{}",
        stderr_of(&check)
    );
}

#[test]
fn status_lists_the_errors_of_the_files_own_rows() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = crate::common::sandbox::Sandbox::start(dir.path(), &["--first-attempt-503"]);
    let f = crate::common::sandbox::fixture(&sandbox.url, 5, "send:\n  retries: 0\n");
    assert_eq!(f.run().status.code(), Some(3));
    // K1 and K3 leave the file: three failed rows remain, and two contacts are counted apart.
    f.drop_rows(&["K1", "K3"]);
    let status = f.status_json();
    assert_eq!(
        (
            n(&status["rows"]["failed"]),
            n(&status["rows"]["not_in_file"])
        ),
        (3, 2)
    );
    let errors = status["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        n(&errors[0]["count"]),
        3,
        "as the rows count them: {errors:?}"
    );
    let text = stdout_of(&f.cmd().args(["status", "campaign.yaml"]).output().unwrap());
    assert!(text.contains("  failed   3\n"), "{text}");
    assert!(text.contains(" ×3: "), "{text}");
}

#[test]
fn run_json_gives_one_object_when_the_run_cannot_start() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "campaign.yaml",
        &campaign_yaml(
            &server.url(),
            "  - type: text\n    text: \"Oi {{ first_name | nosuchfilter }}\"\n",
            "",
        ),
    )
    .write("contacts.csv", &csv(&[("C1", "Ana", "5511999990001")]));
    let (code, summary, err) = run_json(&f, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(summary["exit_code"], 1, "{summary}");
    assert_eq!(summary["stopped"]["reason"], "problems", "{summary}");
    let problems = summary["problems"].as_array().unwrap();
    assert!(
        problems[0].as_str().unwrap().contains("nosuchfilter"),
        "{summary}"
    );
    // A campaign file that is no YAML: the object still comes, naming the file.
    f.write("campaign.yaml", "version: 1\nname: [unclosed\n");
    let (code, summary, err) = run_json(&f, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(summary["exit_code"], 1, "{summary}");
    assert!(
        summary["file"].as_str().unwrap().ends_with("campaign.yaml"),
        "{summary}"
    );
    assert_eq!(server.count(), 0);
}
