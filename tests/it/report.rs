//! `cosmocast report` and `preview` as a marketer meets them: a campaign run against the sandbox
//! with replies posted to a running `listen`, its report opened in headless Chromium, and the
//! preview's terminal, JSON and HTML views. Everything runs on 127.0.0.1 or from disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::server::{SECRET, Server};
use crate::common::*;

const INJECTED: &str = "<script>alert(1)</script> \u{202e}ko";

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A campaign whose contacts cover the whole funnel: a row `contacts.where` leaves out, one on
/// the exclusion list, a duplicate, one that cannot be sent; a message with line breaks, a
/// payload button and a link button.
fn rich_fixture(url: &str) -> Fixture {
    let f = Fixture::new();
    let mut csv = String::from("customer_id,first_name,phone,opt_in\n");
    csv.push_str("C1,Ana,+55 (11) 99999-0042,yes\n");
    for i in 2..=40 {
        csv.push_str(&format!("C{i},Name{i},55119{i:08},yes\n"));
    }
    csv.push_str("C41,Filtered,5511900000041,no\n");
    csv.push_str("C42,Excluded,5511900000042,yes\n");
    csv.push_str("C2,Again,5511900000002,yes\n");
    csv.push_str("C44,NoPhone,,yes\n");
    f.write("contacts.csv", &csv)
        .write("optouts.csv", "customer_id\nC42\n")
        .write(
            "templates/hello.txt.j2",
            "Hi {{ first_name }},\n\nyour plan renews soon.",
        );
    let messages = "  - type: text\n    template: hello.txt.j2\n  - type: buttons\n    text: \"Keep your plan?\"\n    buttons:\n      - { title: \"Yes\", type: payload, value: \"renew-yes\" }\n      - { title: \"See plans\", type: url, value: \"https://shop.example.com/plans?c={{ customer_id }}\" }\n";
    let yaml = campaign_yaml(url, messages, "").replace(
        "  file: contacts.csv\n",
        "  file: contacts.csv\n  key: \"{{ customer_id }}\"\n  where: \"opt_in == 'yes'\"\n  exclude: [optouts.csv]\n",
    );
    f.write("campaign.yaml", &yaml);
    f
}

fn replies(f: &Fixture) -> usize {
    f.sql("SELECT COUNT(*) FROM replies")[0][0].parse().unwrap()
}

/// Runs the campaign against a sandbox that answers some requests queued and fails some after
/// acting, while every contact sent replies to a running `listen`; then posts a reply holding
/// a script. Returns once every reply is stored and both servers have stopped.
fn run_with_replies(f: &Fixture) {
    let ledger = f.ledger().display().to_string();
    let mut listener = Server::start(
        &[
            "listen",
            "--addr",
            "127.0.0.1:0",
            "--ledger",
            &ledger,
            "--create",
        ],
        f.dir.path(),
    );
    let mut sandbox = Server::start(
        &[
            "sandbox",
            "--addr",
            "127.0.0.1:0",
            "--channel",
            "whatsapp",
            "--webhook",
            &listener.base(),
            "--reply-rate",
            "1",
            "--queue-rate",
            "0.15",
            "--fail-500-after",
            "0.1",
        ],
        f.dir.path(),
    );
    f.write(
        "campaign.yaml",
        &std::fs::read_to_string(f.campaign())
            .unwrap()
            .replace("http://127.0.0.1:9/messages/v1/send", &sandbox.url),
    );
    let out = f.run_cmd().arg("--skip-invalid").output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{}",
        stderr_of(&out)
    );
    // The sandbox posts one reply for each request it answered `sent`.
    let sent: usize = f.sql("SELECT COUNT(*) FROM contacts WHERE status = 'sent'")[0][0]
        .parse()
        .unwrap();
    assert!(sent > 0);
    wait_until("every reply", Duration::from_secs(30), || {
        replies(f) >= sent
    });
    let phone =
        &f.sql("SELECT phone FROM contacts WHERE status = 'sent' ORDER BY row_number")[0][0];
    let body = serde_json::json!({
        "contact": {"mobile_phone": phone},
        "message": [{"type": "text", "data": {"text": INJECTED}}],
    });
    let status = post_status(
        &format!("{}/webhook/{SECRET}", listener.base()),
        &body.to_string(),
    );
    assert_eq!(status, 200);
    sandbox.stop();
    listener.stop();
    assert_eq!(replies(f), sent + 1);
}

/// The installed Chromium, or a failure that says how to get it: CI installs it (`.ci/run`).
fn chromium() -> &'static str {
    let found = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "chromium is not installed, and the report must be checked in a real browser: install Debian's `chromium` (apt-get install chromium), as .ci/run does"
    );
    "chromium"
}

/// Runs headless Chromium on `page` with `args`, bounded in time; its stdout.
fn chromium_run(page: &Path, args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "chromium {args:?}: {status}");
    reader.join().unwrap()
}

/// The build's target folder (screenshots go there for people to look at).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_cosmocast"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// One tag of an HTML text: its name (lower case, `/` first for an end tag) and attributes.
#[derive(Debug)]
struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
}

/// The tags and the text between them, read as a browser's tokenizer reads them (quoted
/// attribute values may hold `<` and `>`); enough for the serialised DOM and for our page.
fn tokens(html: &str) -> (Vec<Tag>, String) {
    let b = html.as_bytes();
    let (mut tags, mut text) = (Vec::new(), String::new());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            let next = html[i..].find('<').map_or(b.len(), |n| i + n);
            text.push_str(&html[i..next]);
            text.push('\n');
            i = next;
            continue;
        }
        if html[i..].starts_with("<!--") {
            i = html[i..].find("-->").map_or(b.len(), |n| i + n + 3);
            continue;
        }
        let mut j = i + 1;
        let start = j;
        while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'>' {
            j += 1;
        }
        let name = html[start..j].trim_end_matches('/').to_ascii_lowercase();
        let mut attrs = Vec::new();
        while j < b.len() && b[j] != b'>' {
            if b[j].is_ascii_whitespace() || b[j] == b'/' {
                j += 1;
                continue;
            }
            let k = j;
            while j < b.len() && !b"=>".contains(&b[j]) && !b[j].is_ascii_whitespace() {
                j += 1;
            }
            let key = html[k..j].to_ascii_lowercase();
            let mut value = String::new();
            if j < b.len() && b[j] == b'=' {
                j += 1;
                let quote = b[j];
                if quote == b'"' || quote == b'\'' {
                    let end = html[j + 1..].find(quote as char).unwrap() + j + 1;
                    value = html[j + 1..end].to_string();
                    j = end + 1;
                } else {
                    let k = j;
                    while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'>' {
                        j += 1;
                    }
                    value = html[k..j].to_string();
                }
            }
            attrs.push((key, value));
        }
        tags.push(Tag { name, attrs });
        i = j + 1;
    }
    (tags, text)
}

/// `data-count` of the element with this id, as a number.
fn count_by_id(tags: &[Tag], id: &str) -> u64 {
    let tag = tags
        .iter()
        .find(|t| t.attrs.iter().any(|(k, v)| k == "id" && v == id))
        .unwrap_or_else(|| panic!("no element #{id} in the page"));
    attr(tag, "data-count").parse().unwrap()
}

fn attr<'a>(tag: &'a Tag, name: &str) -> &'a str {
    tag.attrs
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Nothing in the page can load anything: no element that fetches, no address in an attribute.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for needle in ["src=", "href=", "url(", "<link", "<script", "@import"] {
        assert!(!lower.contains(needle), "the page holds {needle:?}");
    }
    let (tags, _) = tokens(html);
    for t in &tags {
        for (k, v) in &t.attrs {
            let v = v.to_ascii_lowercase();
            assert!(
                !v.contains("http://") && !v.contains("https://"),
                "<{} {k}={v:?}> holds an address",
                t.name
            );
        }
    }
}

#[test]
fn the_report_in_a_browser_shows_the_status_counts_and_a_script_reply_as_text() {
    chromium();
    let f = rich_fixture("http://127.0.0.1:9/messages/v1/send");
    run_with_replies(&f);

    let status = f.status_json();

    let before = listing(f.dir.path());
    let out = f.cmd().args(["report", "campaign.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let report = f.path("test-campaign.report.html");
    assert!(
        stdout_of(&out).contains("test-campaign.report.html"),
        "{}",
        stdout_of(&out)
    );
    let mut expected = before.clone();
    expected.push("test-campaign.report.html".into());
    expected.sort();
    assert_eq!(
        listing(f.dir.path()),
        expected,
        "the report adds only itself"
    );

    let raw = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&raw);
    assert!(!raw.contains(TOKEN) && !raw.contains(SECRET));

    let dom = chromium_run(&report, &["--dump-dom".into()]);
    let (tags, text) = tokens(&dom);
    assert!(
        tags.iter().any(|t| t.name == "main"),
        "no page in {dom:.300}"
    );

    // The injected reply is text in the page, never an element.
    assert!(!tags.iter().any(|t| t.name == "script"), "a script element");
    assert!(
        text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the reply's text is not shown"
    );
    // Its right-to-left override is shown as an escape, not obeyed (`ko` would read `ok`).
    assert!(
        text.contains("\\u{202e}ko") && !dom.contains('\u{202e}'),
        "{text}"
    );

    // The same counts as `status --json`: one accounting, every row in one bucket.
    let rows = &status["rows"];
    let counts = &status["counts"];
    for state in [
        "sent", "queued", "failed", "unknown", "filtered", "invalid", "rows",
    ] {
        assert_eq!(
            count_by_id(&tags, &format!("count-{state}")),
            n(&rows[state]),
            "{state}"
        );
    }
    assert_eq!(
        count_by_id(&tags, "count-not_yet_sent"),
        n(&rows["pending"])
    );
    for reason in ["excluded", "opted_out", "duplicate"] {
        assert_eq!(
            count_by_id(&tags, &format!("count-{reason}")),
            n(&rows["skipped_by_reason"][reason]),
            "{reason}"
        );
    }
    let shown_skipped: u64 = ["excluded", "opted_out", "duplicate"]
        .iter()
        .map(|r| count_by_id(&tags, &format!("count-{r}")))
        .sum();
    assert_eq!(shown_skipped, n(&rows["skipped"]));
    let buckets: u64 = [
        "sent", "queued", "failed", "unknown", "sending", "skipped", "filtered", "invalid",
        "blank", "deferred", "pending",
    ]
    .iter()
    .map(|b| n(&rows[b]))
    .sum();
    assert_eq!(buckets, n(&rows["rows"]), "the buckets add up to the rows");
    // This campaign reaches every part of the funnel.
    for part in ["filtered", "excluded", "duplicate", "invalid", "sent"] {
        assert!(count_by_id(&tags, &format!("count-{part}")) > 0, "{part}");
    }

    let r = &status["replies"];
    assert_eq!(count_by_id(&tags, "count-replies"), n(&r["replies"]));
    assert_eq!(
        count_by_id(&tags, "count-contacts_replied"),
        n(&r["contacts_replied"])
    );
    // The rate is the two numbers printed beside it: one numerator, one denominator.
    let replied = count_by_id(&tags, "count-replied_reached");
    assert_eq!(replied, n(&r["replied_reached"]));
    let rate: f64 = tags
        .iter()
        .find(|t| attr(t, "id") == "reply-rate")
        .map(|t| attr(t, "data-value").parse().unwrap())
        .unwrap();
    assert!(
        (rate - replied as f64 / n(&r["reached"]) as f64).abs() < 1e-9 && replied > 0,
        "{rate} against {replied} of {}",
        r["reached"]
    );
    assert_eq!(count_by_id(&tags, "count-opt_outs"), n(&r["opt_outs"]));
    let clicks = r["clicks"].as_object().unwrap();
    let total: u64 = clicks.values().map(n).sum();
    assert_eq!(count_by_id(&tags, "count-clicks"), total);
    let shown: Vec<(String, u64)> = tags
        .iter()
        .filter(|t| attr(t, "class") == "click-count")
        .map(|t| {
            (
                attr(t, "data-button").to_string(),
                attr(t, "data-count").parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(shown.len(), clicks.len(), "{shown:?}");
    for (button, count) in &shown {
        assert_eq!(*count, n(&clicks[button]), "{button}");
    }
    assert!(total > 0 && n(&r["opt_outs"]) > 0, "{r}");
    let failures: u64 = tags
        .iter()
        .filter(|t| attr(t, "class") == "failure-count")
        .map(|t| attr(t, "data-count").parse::<u64>().unwrap())
        .sum();
    assert_eq!(failures, n(&counts["failed"]) + n(&counts["unknown"]));

    // Screenshots for people to look at: a desktop window and a phone's width.
    let wide = target_dir().join("report.png");
    let phone = target_dir().join("report-phone.png");
    for (file, size) in [(&wide, "1280,2400"), (&phone, "390,3200")] {
        let _ = std::fs::remove_file(file);
        chromium_run(
            &report,
            &[
                format!("--screenshot={}", file.display()),
                format!("--window-size={size}"),
            ],
        );
        let png = std::fs::read(file).unwrap();
        assert!(
            png.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            file.display()
        );
    }
}

/// A campaign of one rich row (phone written as people write it) and a second plain one.
fn preview_fixture() -> Fixture {
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone\nC1,Ana,+55 (11) 99999-0042\nC2,Bia,5511988887777\n",
    )
    .write(
        "templates/hello.txt.j2",
        "Hi {{ first_name }},\n\nyour plan renews soon.",
    );
    let messages = "  - type: text\n    template: hello.txt.j2\n  - type: buttons\n    text: \"Keep your plan?\"\n    buttons:\n      - { title: \"Yes\", type: payload, value: \"renew-yes\" }\n      - { title: \"See plans\", type: url, value: \"https://shop.example.com/plans\" }\n  - type: media\n    media: image\n    url: \"https://cdn.example.com/card.png\"\n    name: \"Your card\"\n";
    f.write(
        "campaign.yaml",
        &campaign_yaml("http://127.0.0.1:9/messages/v1/send", messages, ""),
    );
    f
}

/// The report shows the message of a customer who is sent it: row 1 is on the suppression
/// list, so the preview is row 2's.
#[test]
fn the_reports_preview_is_of_a_row_that_is_sent() {
    let f = preview_fixture();
    let add = f
        .cmd()
        .args(["optouts", "add", "+55 11 99999-0042"])
        .output()
        .unwrap();
    assert_eq!(add.status.code(), Some(0), "{}", stderr_of(&add));
    let page = f.report_page();
    assert!(page.contains("Row 2 of the contact file"), "{page}");
    assert!(page.contains("Hi Bia"), "{page}");
    assert!(
        page.contains("opt-outs by reply to this campaign"),
        "{page}"
    );
}

#[test]
fn preview_shows_the_customer_view_keeps_its_json_and_writes_only_its_html() {
    let f = preview_fixture();
    let before = listing(f.dir.path());

    let out = f
        .cmd()
        .args(["preview", "campaign.yaml", "--row", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.starts_with("── row 1 (contacts.csv:2) key 5511999990042\n"),
        "{text}"
    );
    assert!(text.contains("[ Yes ]"), "{text}");
    assert!(
        text.contains("[ See plans → https://shop.example.com/plans ]"),
        "{text}"
    );
    assert!(
        text.contains("+55 (11) 99999-0042 → 5511999990042"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let hi = lines.iter().position(|l| l.contains("Hi Ana,")).unwrap();
    assert!(lines[hi + 1].contains("│ ") && lines[hi + 1].trim_matches(['│', ' ']).is_empty());
    assert!(lines[hi + 2].contains("your plan renews soon."), "{text}");
    assert!(!text.contains("\\n") && !text.contains(TOKEN), "{text}");
    assert!(
        text.contains("image") && text.contains("Your card"),
        "{text}"
    );
    assert!(
        lines.iter().all(|l| l.chars().count() <= 80),
        "wider than 80 columns:\n{text}"
    );

    // --json: the bare request, exactly as `run --dry-run` would send it.
    let json = f
        .cmd()
        .args(["preview", "campaign.yaml", "--row", "1", "--json"])
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(0), "{}", stderr_of(&json));
    let dry = f
        .cmd()
        .args(["run", "campaign.yaml", "--dry-run"])
        .output()
        .unwrap();
    let first = stdout_of(&dry).lines().next().unwrap().to_string();
    assert_eq!(stdout_of(&json), format!("{first}\n"));
    let request: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(request["contact"]["mobile_phone"], "5511999990042");

    let out = f
        .cmd()
        .args(["preview", "campaign.yaml", "--html", "chats.html"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("chats.html"),
        "{}",
        stdout_of(&out)
    );
    let page = std::fs::read_to_string(f.path("chats.html")).unwrap();
    assert_self_contained(&page);
    for needle in [
        "Ana",
        "Bia",
        "Keep your plan?",
        ">Yes<",
        "5511999990042",
        "class=\"bubble\"",
    ] {
        assert!(page.contains(needle), "{needle:?} missing from the page");
    }
    assert!(!page.contains(TOKEN));

    let both = f
        .cmd()
        .args(["preview", "campaign.yaml", "--json", "--html", "x.html"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));

    let mut expected = before;
    expected.push("chats.html".into());
    expected.sort();
    assert_eq!(
        listing(f.dir.path()),
        expected,
        "preview wrote only its page"
    );
}

#[test]
fn a_report_before_any_run_writes_only_itself_and_says_so() {
    let f = preview_fixture();
    let before = listing(f.dir.path());
    let out = f
        .cmd()
        .args(["report", "campaign.yaml", "-o", "first.html"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let mut expected = before.clone();
    expected.push("first.html".into());
    expected.sort();
    assert_eq!(listing(f.dir.path()), expected, "no ledger was created");
    let page = std::fs::read_to_string(f.path("first.html")).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("the campaign has not run yet"), "{page}");
    let (tags, _) = tokens(&page);
    assert_eq!(count_by_id(&tags, "count-rows"), 2);
    assert_eq!(count_by_id(&tags, "count-not_yet_sent"), 2);
    assert_eq!(count_by_id(&tags, "count-sent"), 0);
    assert!(page.contains("Keep your plan?"), "the preview is row 1");

    // An output that names one of the campaign's own files is refused, and left alone.
    let yaml = std::fs::read(f.campaign()).unwrap();
    let out = f
        .cmd()
        .args(["report", "campaign.yaml", "-o", "campaign.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("one of the campaign's own files"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(std::fs::read(f.campaign()).unwrap(), yaml);
    assert_eq!(listing(f.dir.path()), expected);

    // So is `export -o` or `replies -o` naming the contacts, the campaign, the ledger or the
    // journal a listener writes beside it, and `report -o` naming a template or a file beside
    // one (an include).
    f.write("workspace.sqlite", "");
    f.write("workspace.sqlite-wal", "journal");
    f.write("templates/footer.txt", "footer");
    let mut expected = listing(f.dir.path());
    let contacts = std::fs::read(f.path("contacts.csv")).unwrap();
    let template = std::fs::read(f.path("templates/hello.txt.j2")).unwrap();
    for (command, target) in [
        ("export", "contacts.csv"),
        ("export", "workspace.sqlite"),
        ("export", "workspace.sqlite-wal"),
        ("replies", "campaign.yaml"),
        ("replies", "./contacts.csv"),
        ("report", "templates/hello.txt.j2"),
        ("report", "templates/footer.txt"),
    ] {
        let out = f
            .cmd()
            .args([command, "campaign.yaml", "-o", target])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{command} -o {target}");
        assert!(
            stderr_of(&out).contains("one of the campaign's own files"),
            "{command} -o {target}: {}",
            stderr_of(&out)
        );
    }
    assert_eq!(std::fs::read(f.path("contacts.csv")).unwrap(), contacts);
    assert_eq!(std::fs::read(f.campaign()).unwrap(), yaml);
    assert_eq!(
        std::fs::read(f.path("templates/hello.txt.j2")).unwrap(),
        template
    );
    assert_eq!(
        std::fs::read_to_string(f.path("workspace.sqlite-wal")).unwrap(),
        "journal"
    );
    expected.sort();
    assert_eq!(
        listing(f.dir.path()),
        expected,
        "nothing written beside them"
    );
}

#[test]
fn the_report_names_the_status_command_that_reads_its_ledger() {
    let f = preview_fixture();
    let status = |args: &[&str]| {
        let mut all = vec!["report", "campaign.yaml", "-o", "r.html"];
        all.extend(args);
        let out = f.cmd().args(&all).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        let page = std::fs::read_to_string(f.path("r.html")).unwrap();
        let at = page.find("<code>cosmocast status").expect("the command") + 6;
        page[at..].split('<').next().unwrap().to_string()
    };
    assert_eq!(status(&[]), "cosmocast status campaign.yaml --json");
    assert_eq!(
        status(&["--sandbox"]),
        "cosmocast status campaign.yaml --sandbox --json"
    );
    // Both flags: the rehearsal's ledger beside the one --ledger names, not the workspace's.
    assert_eq!(
        status(&["--ledger", "other.sqlite", "--sandbox"]),
        "cosmocast status campaign.yaml --ledger other.sqlite --sandbox --json"
    );
}

#[test]
fn the_reports_failures_are_the_files_failed_contacts_at_their_rows_now() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = crate::common::sandbox::Sandbox::start(dir.path(), &["--first-attempt-503"]);
    let f = crate::common::sandbox::fixture(&sandbox.url, 5, "send:\n  retries: 0\n");
    assert_eq!(f.run().status.code(), Some(3));
    // Rows deleted: K1 and K3 leave the file, K5 moves up to row 3.
    f.drop_rows(&["K1", "K3"]);
    let page = f.report_page();
    let (tags, _) = tokens(&page);
    assert_eq!(count_by_id(&tags, "count-failed"), 3, "the funnel");
    let group: Vec<&Tag> = tags
        .iter()
        .filter(|t| attr(t, "class") == "failure-count")
        .collect();
    assert_eq!(group.len(), 1);
    assert_eq!(attr(group[0], "data-count"), "3", "as the funnel counts");
    let rows: Vec<&str> = page
        .split("<td class=\"num\">")
        .skip(1)
        .filter_map(|s| s.split('<').next())
        .collect();
    assert_eq!(rows, ["1", "2", "3"], "K2, K4 and K5 at their rows now");
    assert!(
        page.contains("the 2 no longer in the contact file included"),
        "the sends over time say they count the deleted rows' contacts"
    );
    assert!(
        !page.contains(">K1<") && !page.contains(">K3<"),
        "gone from the file"
    );
}

#[test]
fn a_run_that_died_ends_at_its_last_renewal_in_the_report() {
    let server = TestServer::sent_ok();
    let f = crate::common::sandbox::fixture(&server.url(), 2, "");
    assert_eq!(f.run().status.code(), Some(0), "no run yet");
    // A run killed an hour ago, whose lease ran out 30 s after its last renewal: as the runs
    // table holds it until the next run of the campaign closes it.
    f.sql(
        "INSERT INTO runs (campaign, pid, started_at, lease_until, requests)
         SELECT name, 1, '2026-01-01T10:00:00.000Z', '2026-01-01T10:05:30.000Z', 0 FROM campaigns",
    );
    let page = f.report_page();
    let row = page
        .split("<tr>")
        .find(|r| r.contains("killed"))
        .unwrap_or_else(|| panic!("no killed run in the runs table"));
    assert!(
        !row.contains("—</td><td>killed") && row.contains("10:05"),
        "it ended at 10:05, its last renewal, not now: {row}"
    );
}
