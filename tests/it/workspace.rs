//! One workspace: the ledger every command finds the same way (`--ledger`, `COSMOCAST_LEDGER`,
//! the default data folder), the suppression list, exclusion lists by column, cool-downs and a
//! channel's daily limit. Real binary, real ledger files, a real HTTP server on loopback.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::server::Server;
use crate::common::*;

/// A campaign folder of its own: campaign.yaml and contacts.csv, in `dir`.
fn folder(dir: &Path, name: &str, url: &str, contacts: &str, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    let yaml = campaign_yaml(
        url,
        "  - type: text\n    text: \"Oi {{ first_name }}\"\n",
        extra,
    )
    .replace("name: test-campaign", &format!("name: {name}"))
    .replace(
        "  file: contacts.csv\n",
        "  file: contacts.csv\n  country: BR\n  key: \"{{ customer_id }}\"\n",
    );
    std::fs::write(dir.join("campaign.yaml"), yaml).unwrap();
    std::fs::write(dir.join("contacts.csv"), contacts).unwrap();
    dir.join("campaign.yaml")
}

/// The real binary in `dir`, with the API's credentials and the given data folder (the default
/// ledger's home), and no `COSMOCAST_LEDGER` unless the test sets one.
fn cosmocast(dir: &Path, data: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("cosmocast").unwrap();
    c.current_dir(dir)
        .env_remove("COSMOCAST_LEDGER")
        .env("XDG_DATA_HOME", data)
        .env("COSMOBOTS_TOKEN", TOKEN)
        .env("COSMOBOTS_CHANNEL_ID", CHANNEL)
        .env("COSMOCAST_WEBHOOK_SECRET", crate::common::server::SECRET)
        .timeout(Duration::from_secs(60));
    c
}

/// `status campaign.yaml --json` in `dir`, parsed.
fn status_json(dir: &Path, data: &Path) -> serde_json::Value {
    let out = cosmocast(dir, data)
        .args(["status", "campaign.yaml", "--json"])
        .output()
        .unwrap();
    serde_json::from_str(&stdout_of(&out)).unwrap()
}

fn run(dir: &Path, data: &Path) -> std::process::Output {
    cosmocast(dir, data)
        .args(["run", "campaign.yaml", "--progress", "none"])
        .output()
        .unwrap()
}

/// The customer at +55 11 98765-4321 replies PARAR (Portuguese for STOP) to the listener.
fn reply_parar(listener: &Server) {
    let body = serde_json::json!({
        "contact": {"mobile_phone": "5511987654321"},
        "message": [{"type": "text", "data": {"text": "PARAR"}}],
    });
    assert_eq!(post_status(&listener.webhook(), &body.to_string()), 200);
}

fn default_ledger(data: &Path) -> PathBuf {
    data.join("cosmocast/cosmocast.sqlite")
}

#[test]
fn an_opt_out_received_by_listen_stops_a_campaign_in_another_folder() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let listener_dir = root.path().join("listener");
    std::fs::create_dir_all(&listener_dir).unwrap();
    // A listener in a folder of its own, on the default ledger, with no flag at all.
    let mut listener = Server::start_with(
        &["listen", "--addr", "127.0.0.1:0"],
        &listener_dir,
        &[("XDG_DATA_HOME", data.as_os_str())],
    );
    assert!(
        listener.lines()[0].contains(&default_ledger(&data).display().to_string()),
        "listen names its ledger: {:?}",
        listener.lines()
    );
    reply_parar(&listener);
    assert_eq!(listener.stop(), Some(0));

    // Next month's campaign, written in another folder, with the phone the Brazilian way.
    let server = TestServer::sent_ok();
    let campaign = root.path().join("next-month");
    folder(
        &campaign,
        "next-month",
        &server.url(),
        "customer_id,first_name,phone\n1,Ana,(11) 98765-4321\n2,Bia,(11) 98765-0002\n",
        "",
    );
    let out = run(&campaign, &data);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.phones(), ["5511987650002"]);
    let rows = sql(
        &default_ledger(&data),
        "SELECT key, status, reason FROM contacts WHERE campaign = 'next-month' ORDER BY key",
    );
    assert_eq!(rows[0], ["1", "skipped", "opted_out"]);
    assert!(stdout_of(&out).contains(&default_ledger(&data).display().to_string()));
}

/// `/proc/self/environ` read as a list of phones would print the environment (the token with
/// it) as the header: it is refused before it is read, directly or through a link.
#[test]
fn an_import_from_the_systems_files_is_refused_unread() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::os::unix::fs::symlink("/proc/self/environ", root.path().join("crm.csv")).unwrap();
    for file in ["/proc/self/environ", "crm.csv"] {
        let out = cosmocast(root.path(), &data)
            .args([
                "optouts",
                "import",
                file,
                "--column",
                "X",
                "--encoding",
                "utf-16le",
            ])
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("in /proc, which holds the system's own files"),
            "{err}"
        );
        assert!(!err.contains("the header has"), "{err}");
        assert!(
            !err.contains(TOKEN) && !stdout_of(&out).contains(TOKEN),
            "{err}"
        );
    }
    assert!(!data.exists(), "nothing was imported");
}

#[test]
fn an_import_by_column_with_one_bad_line_then_add_list_and_remove() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::write(
        root.path().join("crm.csv"),
        "Nome;Telefone;Origem\nAna;(11) 98765-4321;loja\nBo;12345;site\nCy;+55 21 99876-5432;site\n;;\nAna;11 98765 4321;site\n",
    )
    .unwrap();
    let optouts = |args: &[&str]| {
        cosmocast(root.path(), &data)
            .arg("optouts")
            .args(args)
            .output()
            .unwrap()
    };
    let out = optouts(&[
        "import",
        "crm.csv",
        "--column",
        "Telefone",
        "--country",
        "BR",
    ]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(3), "one line was left out: {err}");
    assert!(
        err.contains("crm.csv:3:"),
        "the bad line is named as file:line: {err}"
    );
    assert!(
        stdout_of(&out).contains(
            "imported 2 phones from crm.csv: 2 new, 0 already on the list (1 line of the file repeated a phone above it)"
        ),
        "{}",
        stdout_of(&out)
    );
    // Again: the same two phones, both listed now.
    let out = optouts(&[
        "import",
        "crm.csv",
        "--column",
        "Telefone",
        "--country",
        "BR",
    ]);
    assert!(
        stdout_of(&out).contains("imported 2 phones from crm.csv: 0 new, 2 already on the list"),
        "{}",
        stdout_of(&out)
    );

    let out = optouts(&["import", "crm.csv", "--column", "Phone"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("\"Telefone\""),
        "{}",
        stderr_of(&out)
    );

    let out = optouts(&[
        "add",
        "11 91234-5678",
        "--country",
        "BR",
        "--note",
        "asked by phone",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let out = optouts(&["add", "not a phone"]);
    assert_eq!(out.status.code(), Some(1));
    // A number without its country: the way out is the command's flag, not a campaign key.
    let out = optouts(&["add", "(11) 98050-1050"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_of(&out);
    assert!(
        err.contains("pass --country") && !err.contains("contacts.country"),
        "{err}"
    );

    let list = stdout_of(&optouts(&["list"]));
    assert!(list.contains("3 phones on the suppression list"), "{list}");
    assert!(
        list.contains("5511912345678") && list.contains("asked by phone"),
        "{list}"
    );

    let out = optouts(&["remove", "+55 11 98765-4321", "--note", "opted back in"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(&optouts(&["list", "--json"]))).unwrap();
    let phones: Vec<&str> = json["opt_outs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["phone"].as_str().unwrap())
        .collect();
    assert_eq!(phones.len(), 2);
    assert!(!phones.contains(&"5511987654321"));
    assert_eq!(json["removed"][0]["phone"], "5511987654321");
    assert_eq!(json["removed"][0]["removed_note"], "opted back in");
    assert_eq!(json["removed"][0]["source"], "import");
    // A phone not on the list: nothing removed, and nothing said to be kept.
    let out = optouts(&["remove", "+55 11 90000-0000"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout_of(&out).starts_with("optouts: removed 0 phones; ledger"),
        "{}",
        stdout_of(&out)
    );
    assert!(stderr_of(&out).contains("not on the list, so not removed: 5511900000000"));
    let csv = stdout_of(&optouts(&["list", "--csv"]));
    assert!(
        csv.starts_with("phone,source,added_at,campaign,note\n"),
        "{csv}"
    );
}

#[test]
fn an_exclusion_list_is_read_by_its_named_column_only() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone\n1,Ana,5511999990001\n2,Bo,5511999990002\n3,Cy,5511999990003\n",
    )
    .write(
        "descadastros.csv",
        "Telefone;Motivo;Tentativas\n+55 11 99999-0003;pediu;1\n;sem telefone;2\n",
    );
    let yaml = campaign_yaml(&server.url(), "  - type: text\n    text: oi\n", "").replace(
        "  file: contacts.csv\n",
        "  file: contacts.csv\n  key: \"{{ customer_id }}\"\n  exclude:\n    - { file: descadastros.csv, column: Telefone }\n",
    );
    f.write("campaign.yaml", &yaml);
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.phones(), ["5511999990001", "5511999990002"]);
    assert_eq!(
        f.sql("SELECT key, reason FROM contacts WHERE status = 'skipped'"),
        vec![vec!["3", "excluded"]]
    );

    // The same file named bare would take every cell for a phone or a key: refused.
    f.write(
        "campaign.yaml",
        &yaml.replace(
            "{ file: descadastros.csv, column: Telefone }",
            "descadastros.csv",
        ),
    );
    let out = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("\"Telefone\", \"Motivo\", \"Tentativas\"")
            && err.contains("{ file: descadastros.csv, column: Telefone }"),
        "{err}"
    );
}

#[test]
fn a_campaign_file_naming_its_ledger_is_refused() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone\n1,Ana,5511999990001\n",
    );
    f.write(
        "campaign.yaml",
        &campaign_yaml(
            &server.url(),
            "  - type: text\n    text: oi\n",
            "ledger: mine.sqlite\n",
        ),
    );
    for cmd in ["check", "run"] {
        let out = f.cmd().args([cmd, "campaign.yaml"]).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(
            err.contains("campaign.yaml:")
                && err.contains("`ledger` cannot be set")
                && err.contains("COSMOCAST_LEDGER"),
            "{cmd}: {err}"
        );
    }
    assert_eq!(server.count(), 0);
    assert!(!f.path("mine.sqlite").exists());
}

#[test]
fn cosmocast_ledger_is_honoured_by_run_listen_and_status() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let ledger = root.path().join("shared/team.sqlite");
    std::fs::create_dir_all(ledger.parent().unwrap()).unwrap();
    let server = TestServer::sent_ok();
    let dir = root.path().join("campaign");
    folder(
        &dir,
        "welcome",
        &server.url(),
        "customer_id,first_name,phone\n1,Ana,5511999990001\n",
        "",
    );
    let out = cosmocast(&dir, &data)
        .env("COSMOCAST_LEDGER", &ledger)
        .args(["run", "campaign.yaml", "--progress", "plain"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let first_line = stderr_of(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        first_line.contains("team.sqlite"),
        "the first plain line names the ledger: {first_line}"
    );
    assert!(ledger.is_file());
    assert!(
        !default_ledger(&data).exists(),
        "the default place is left alone"
    );

    let status = cosmocast(&dir, &data)
        .env("COSMOCAST_LEDGER", &ledger)
        .args(["status", "campaign.yaml"])
        .output()
        .unwrap();
    let text = stdout_of(&status);
    assert!(
        text.lines()
            .take(3)
            .any(|l| l.contains("team.sqlite (COSMOCAST_LEDGER)")),
        "{text}"
    );
    assert!(text.contains("sent     1"), "{text}");

    let mut listener = Server::start_with(
        &["listen", "--addr", "127.0.0.1:0"],
        &dir,
        &[("COSMOCAST_LEDGER", ledger.as_os_str())],
    );
    assert!(
        listener.lines()[0].contains("team.sqlite (COSMOCAST_LEDGER)")
            && listener.lines()[0].contains("welcome"),
        "{:?}",
        listener.lines()
    );
    assert_eq!(listener.stop(), Some(0));
}

#[test]
fn a_cooldown_defers_then_later_sends() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let first = root.path().join("promo");
    folder(
        &first,
        "promo",
        &server.url(),
        "customer_id,first_name,phone\n1,Ana,5511999990001\n",
        "",
    );
    assert_eq!(run(&first, &data).status.code(), Some(0));

    let second = root.path().join("survey");
    folder(
        &second,
        "survey",
        &server.url(),
        "customer_id,first_name,phone\n9,Ana,(11) 99999-0001\n8,Bo,5511999990002\n7,Ana,5511999990001\n",
        "",
    );
    let yaml = std::fs::read_to_string(second.join("campaign.yaml"))
        .unwrap()
        .replace("  country: BR\n", "  country: BR\n  cooldown: 3s\n");
    std::fs::write(second.join("campaign.yaml"), yaml).unwrap();
    let check = cosmocast(&second, &data)
        .args(["check", "campaign.yaml"])
        .output()
        .unwrap();
    assert!(
        stdout_of(&check)
            .lines()
            .any(|l| l.trim_start().starts_with("deferred") && l.contains(" 2 ")),
        "{}",
        stdout_of(&check)
    );
    let out = run(&second, &data);
    assert_eq!(
        out.status.code(),
        Some(4),
        "work remains: {}",
        stderr_of(&out)
    );
    // Row 7 has Ana's phone under another key: it waits with her, rather than being recorded
    // a duplicate of a row nobody messaged (which would stand if row 9 were excluded later).
    assert!(
        stdout_of(&out).contains("skipped 0") && stdout_of(&out).contains("deferred 2"),
        "{}",
        stdout_of(&out)
    );
    assert!(
        stderr_of(&out).contains("contacts.cooldown"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(server.count(), 2, "Ana waits; Bo is sent");
    // Again at once: only Ana is left, still cooling; --json says work remains.
    let again = cosmocast(&second, &data)
        .args(["run", "campaign.yaml", "--progress", "none", "--json"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(4), "{}", stderr_of(&again));
    let summary: serde_json::Value = serde_json::from_str(&stdout_of(&again)).unwrap();
    assert_eq!(
        (&summary["work_remains"], &summary["deferred"]),
        (&serde_json::json!(true), &serde_json::json!(2)),
        "{summary}"
    );
    let status = status_json(&second, &data);
    assert_eq!(
        (
            &status["next_run"]["deferred"],
            &status["next_run"]["deferred_cooldown"]
        ),
        (&serde_json::json!(2), &serde_json::json!(2)),
        "{status}"
    );

    std::thread::sleep(Duration::from_millis(3200));
    let out = run(&second, &data);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.count(), 3, "Ana's cool-down is over");
    let status = status_json(&second, &data);
    assert_eq!(
        status["rows"]["skipped_by_reason"],
        serde_json::json!({"duplicate": 1}),
        "row 7 is now a duplicate of row 9, which was sent: {status}"
    );
}

/// With `unique_phone: false`, two keys of one phone in one file: the cool-down holds between
/// them too, in one run as across runs. The second waits, and `check` says so beforehand.
#[test]
fn a_cooldown_holds_between_two_rows_of_one_phone_in_one_run() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let dir = root.path().join("accounts");
    folder(
        &dir,
        "accounts",
        &server.url(),
        "customer_id,first_name,phone\nX1,Ana,(11) 97000-0001\nX2,Ana,(11) 97000-0001\nX3,Bo,(11) 97000-0002\n",
        "",
    );
    let yaml = std::fs::read_to_string(dir.join("campaign.yaml"))
        .unwrap()
        .replace(
            "  country: BR\n",
            "  country: BR\n  cooldown: 24h\n  unique_phone: false\n",
        );
    std::fs::write(dir.join("campaign.yaml"), yaml).unwrap();
    let check = cosmocast(&dir, &data)
        .args(["check", "campaign.yaml", "--json"])
        .output()
        .unwrap();
    let check: serde_json::Value = serde_json::from_str(&stdout_of(&check)).unwrap();
    assert_eq!(
        (&check["deferred"], &check["to_send"]),
        (&serde_json::json!(1), &serde_json::json!(2)),
        "{check}"
    );
    let out = run(&dir, &data);
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert_eq!(server.count(), 2, "X1 and X3; X2 waits for X1's cool-down");
    let status = status_json(&dir, &data);
    assert_eq!(
        (&status["rows"]["sent"], &status["rows"]["deferred"]),
        (&serde_json::json!(2), &serde_json::json!(1)),
        "{status}"
    );
}

fn contacts_csv(from: usize, n: usize) -> String {
    let mut s = String::from("customer_id,first_name,phone\n");
    for i in from..from + n {
        s.push_str(&format!("{i},P{i},55119{:08}\n", 70_000_000 + i));
    }
    s
}

fn limited(root: &Path, name: &str, url: &str, from: usize, n: usize, limit: u32) -> PathBuf {
    let dir = root.join(name);
    folder(&dir, name, url, &contacts_csv(from, n), "");
    let yaml = std::fs::read_to_string(dir.join("campaign.yaml"))
        .unwrap()
        .replace(
            "  timeout: 5s\n",
            &format!("  timeout: 5s\n  daily_limit: {limit}\n"),
        );
    std::fs::write(dir.join("campaign.yaml"), yaml).unwrap();
    dir
}

/// A run stopped by the daily limit, with contacts in their cool-down too: each line says how many
/// of the file's contacts wait for which, and the two add up to the summary's `deferred`.
#[test]
fn the_daily_limit_and_the_cooldown_each_count_their_own_waiting_contacts() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    // Two people messaged by the first campaign; the second has them and four new ones, a
    // cool-down and a limit of four a day on the channel: two go out, two wait for the limit,
    // two for their cool-down.
    let first = root.path().join("first");
    folder(&first, "first", &server.url(), &contacts_csv(0, 2), "");
    assert_eq!(run(&first, &data).status.code(), Some(0));
    let second = limited(root.path(), "second", &server.url(), 0, 6, 4);
    let yaml = std::fs::read_to_string(second.join("campaign.yaml"))
        .unwrap()
        .replace("  country: BR\n", "  country: BR\n  cooldown: 1h\n");
    std::fs::write(second.join("campaign.yaml"), yaml).unwrap();
    let out = cosmocast(&second, &data)
        .args(["run", "campaign.yaml", "--progress", "none", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert_eq!(server.count(), 4);
    let err = stderr_of(&out);
    assert!(err.contains("2 contacts sent this run, 2 waiting"), "{err}");
    assert!(
        err.contains("2 contacts deferred: messaged by a campaign"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(summary["deferred"], 4, "{summary}");
    assert_eq!(
        summary["deferred_by_reason"],
        serde_json::json!({"cooldown": 2, "daily_limit": 2}),
        "{summary}"
    );
    let status = cosmocast(&second, &data)
        .args(["status", "campaign.yaml"])
        .output()
        .unwrap();
    let text = stdout_of(&status);
    assert!(
        text.contains("deferred cooldown: 2") && text.contains("deferred daily_limit: 2"),
        "{text}"
    );
}

/// Before the first run there is no ledger: status, check and export still count every row as
/// that run would, the campaign's own daily limit included, and create nothing.
#[test]
fn before_the_first_run_the_daily_limit_holds_back_the_same_rows_everywhere() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let dir = limited(root.path(), "first", &server.url(), 0, 5, 3);
    let status: serde_json::Value = status_json(&dir, &data);
    assert_eq!(
        (&status["rows"]["pending"], &status["rows"]["deferred"]),
        (&serde_json::json!(3), &serde_json::json!(2)),
        "{status}"
    );
    let check = stdout_of(
        &cosmocast(&dir, &data)
            .args(["check", "campaign.yaml"])
            .output()
            .unwrap(),
    );
    assert!(check.contains("  to send            3"), "{check}");
    let export = cosmocast(&dir, &data)
        .args(["export", "campaign.yaml"])
        .output()
        .unwrap();
    assert_eq!(export.status.code(), Some(0), "{}", stderr_of(&export));
    assert!(
        stderr_of(&export).contains("has not run yet"),
        "{}",
        stderr_of(&export)
    );
    let statuses: Vec<String> = stdout_of(&export)
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().to_string())
        .collect();
    assert_eq!(
        statuses,
        ["pending", "pending", "pending", "deferred", "deferred"],
        "{}",
        stdout_of(&export)
    );
    assert!(!data.exists(), "no ledger is created by reading");
    // The run does what they said.
    assert_eq!(run(&dir, &data).status.code(), Some(4));
    assert_eq!(server.count(), 3);
}

/// A run stopped by another campaign's smaller limit says whose it is, as check and status do.
#[test]
fn a_run_stopped_by_another_campaigns_smaller_limit_says_whose() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let a = limited(root.path(), "spring", &server.url(), 0, 4, 3);
    let b = limited(root.path(), "summer", &server.url(), 100, 4, 1000);
    assert_eq!(run(&a, &data).status.code(), Some(4));
    let out = run(&b, &data);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains(
            "declare different `api.daily_limit`s (spring 3, summer 1000): the smallest, 3, applies"
        ),
        "{err}"
    );
    assert_eq!(server.count(), 3);
}

#[test]
fn a_daily_limit_shared_by_two_campaigns_is_never_passed() {
    // One after the other.
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let a = limited(root.path(), "spring", &server.url(), 0, 4, 5);
    let b = limited(root.path(), "summer", &server.url(), 100, 4, 5);
    assert_eq!(run(&a, &data).status.code(), Some(0));
    let out = run(&b, &data);
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("daily limit"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        stderr_of(&out).contains("next slot opens"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        !stderr_of(&out).contains("cooldown"),
        "no cool-down is set: {}",
        stderr_of(&out)
    );
    assert_eq!(server.count(), 5);
    let again = run(&b, &data);
    assert_eq!(again.status.code(), Some(4), "{}", stderr_of(&again));
    assert_eq!(server.count(), 5, "a second run the same day sends nothing");
    let check = cosmocast(&b, &data)
        .args(["check", "campaign.yaml"])
        .output()
        .unwrap();
    assert!(
        stdout_of(&check).contains("daily limit: 5 of 5"),
        "{}",
        stdout_of(&check)
    );
    // A dry run holds them back too, as the run's claims would.
    let dry = cosmocast(&b, &data)
        .args(["run", "campaign.yaml", "--dry-run"])
        .output()
        .unwrap();
    let said = stderr_of(&dry);
    assert!(
        said.contains("dry run: 0 requests would be sent")
            && said.contains("3 contacts past the channel's daily limit would wait"),
        "{said}"
    );
    assert!(stdout_of(&dry).is_empty(), "{}", stdout_of(&dry));
    // check and status say the next run sends none of the three the limit holds back.
    let text = stdout_of(&check);
    assert!(text.contains("ok — 0 contacts to message"), "{text}");
    assert!(text.contains("  limited            3"), "{text}");
    assert!(text.contains("  to send            0"), "{text}");
    // status and export agree on the three the limit holds back.
    let status: serde_json::Value = status_json(&b, &data);
    assert_eq!(
        (&status["rows"]["deferred"], &status["rows"]["pending"]),
        (&serde_json::json!(3), &serde_json::json!(0)),
        "{status}"
    );
    assert_eq!(
        (
            &status["next_run"]["new"],
            &status["next_run"]["deferred_daily_limit"],
            &status["next_run"]["deferred_cooldown"],
            &status["next_run"]["deferred"],
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!(3),
            &serde_json::json!(0),
            &serde_json::json!(3)
        ),
        "the bucket is its causes' sum: {status}"
    );
    // The budget in numbers, beside its sentence.
    let budget = &status["daily_limit"];
    assert_eq!(
        (&budget["used"], &budget["limit"], &budget["left"]),
        (
            &serde_json::json!(5),
            &serde_json::json!(5),
            &serde_json::json!(0)
        ),
        "{status}"
    );
    assert!(budget["next_slot"].is_string(), "{status}");
    let text = stdout_of(
        &cosmocast(&b, &data)
            .args(["status", "campaign.yaml"])
            .output()
            .unwrap(),
    );
    assert!(text.contains("next run: sends 0 new contacts"), "{text}");
    assert!(
        text.contains("3 contacts deferred by the channel's daily limit"),
        "{text}"
    );
    let export = stdout_of(
        &cosmocast(&b, &data)
            .args(["export", "campaign.yaml"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        export.matches(",deferred,daily_limit,").count(),
        3,
        "{export}"
    );
    // The report says why the three wait, and until when.
    let out = cosmocast(&b, &data)
        .args(["report", "campaign.yaml", "-o", "r.html"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let page = std::fs::read_to_string(b.join("r.html")).unwrap();
    assert!(
        page.contains("waiting for the channel&#x27;s daily limit")
            && page.contains("daily limit: 5 of 5 unique people")
            && page.contains("the next slot opens at"),
        "{page}"
    );

    // At the same moment, on a fresh ledger, with different limits: the smallest holds.
    two_campaigns_at_once_keep_the_smallest_limit(None, |data| {
        sql(
            &default_ledger(data),
            "SELECT COUNT(DISTINCT phone) FROM contacts WHERE status IN ('sent','queued','sending','unknown')",
        )[0][0]
            .clone()
    });
}

/// Two campaigns on one channel, declaring limits of 12 and 20, run at the same moment on
/// `ledger` (`None`: the default one): both stop with contacts left, the API got 12 requests,
/// and the ledger (`messaged`, given the data folder) counts 12 phones messaged.
fn two_campaigns_at_once_keep_the_smallest_limit(
    ledger: Option<&str>,
    messaged: impl FnOnce(&Path) -> String,
) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let c = limited(root.path(), "autumn", &server.url(), 200, 30, 12);
    let d = limited(root.path(), "winter", &server.url(), 300, 30, 20);
    let start = |dir: &Path, limit: Option<&str>| {
        let extra: Vec<&str> = limit
            .map(|l| ["--limit", l])
            .into_iter()
            .flatten()
            .collect();
        spawn_run(dir, &data, ledger, &extra)
    };
    // Both declare their limits first (a run records its campaign's).
    for dir in [&c, &d] {
        let mut declare = start(dir, Some("0"));
        sandbox::wait_with_timeout(&mut declare, Duration::from_secs(60));
    }
    let (mut one, mut two) = (start(&c, None), start(&d, None));
    let codes = (
        sandbox::wait_with_timeout(&mut one, Duration::from_secs(60)).code(),
        sandbox::wait_with_timeout(&mut two, Duration::from_secs(60)).code(),
    );
    assert_eq!(codes, (Some(4), Some(4)), "both have contacts left");
    assert_eq!(
        server.count(),
        12,
        "the channel never passes its smallest limit"
    );
    assert_eq!(messaged(&data), "12");
}

#[test]
fn a_ledger_at_the_old_default_beside_the_campaign_is_not_silently_replaced() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let dir = root.path().join("welcome");
    folder(
        &dir,
        "welcome",
        &server.url(),
        "customer_id,first_name,phone\n1,Ana,5511999990001\n",
        "",
    );
    // A ledger where the previous cosmocast kept it: beside the campaign file.
    let out = cosmocast(&dir, &data)
        .env("COSMOCAST_LEDGER", dir.join("cosmocast.sqlite"))
        .args(["run", "campaign.yaml", "--progress", "none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    for cmd in [
        &["run", "campaign.yaml"][..],
        &["status", "campaign.yaml"],
        &["check", "campaign.yaml"],
    ] {
        let out = cosmocast(&dir, &data).args(cmd).output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {err}");
        assert!(
            err.contains("cosmocast.sqlite is a ledger at the old default place")
                && err.contains(&default_ledger(&data).display().to_string())
                && err.contains("export COSMOCAST_LEDGER="),
            "{cmd:?}: {err}"
        );
    }
    assert_eq!(server.count(), 1, "nobody was messaged again");
    assert!(
        !default_ledger(&data).exists(),
        "no fresh ledger was started"
    );
}

#[test]
fn the_same_campaign_name_from_a_second_file_gets_a_note() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let contacts = "customer_id,first_name,phone\n1,Ana,5511999990001\n2,Bo,5511999990002\n";
    let a = root.path().join("a");
    let b = root.path().join("b");
    folder(&a, "welcome", &server.url(), contacts, "");
    folder(&b, "welcome", &server.url(), contacts, "");
    assert_eq!(run(&a, &data).status.code(), Some(0));
    let check = cosmocast(&b, &data)
        .args(["check", "campaign.yaml"])
        .output()
        .unwrap();
    let note = stderr_of(&check);
    assert!(
        note.contains("campaign welcome was last run from")
            && note.contains(
                &a.join("campaign.yaml")
                    .canonicalize()
                    .unwrap()
                    .display()
                    .to_string()
            ),
        "{note}"
    );
    let out = run(&b, &data);
    assert_eq!(out.status.code(), Some(0), "a note, not a refusal");
    assert!(
        stderr_of(&out).contains("was last run from"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        server.count(),
        2,
        "the second file skips whom the first messaged"
    );
}

/// `postgres://user@host:port/db` with a password in it (the throwaway cluster trusts loopback,
/// so any password is accepted and none is needed).
fn with_password(url: &str, password: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_password(Some(password)).unwrap();
    u.to_string()
}

#[test]
fn on_postgres_a_listener_and_runs_in_other_folders_share_one_ledger() {
    const PASSWORD: &str = "pg-s3cret-7781x";
    let db = postgres::database();
    let url = with_password(&db.url, PASSWORD);
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let listener_dir = root.path().join("listener");
    std::fs::create_dir_all(&listener_dir).unwrap();
    let mut listener = Server::start_with(
        &["listen", "--addr", "127.0.0.1:0"],
        &listener_dir,
        &[
            ("XDG_DATA_HOME", data.as_os_str()),
            ("COSMOCAST_LEDGER", std::ffi::OsStr::new(&url)),
        ],
    );
    let named = format!(
        "127.0.0.1:{}/{}",
        url::Url::parse(&url).unwrap().port().unwrap(),
        db.name
    );
    assert!(
        listener.lines()[0].contains(&named),
        "{:?}",
        listener.lines()
    );
    reply_parar(&listener);
    assert_eq!(listener.stop(), Some(0));
    let mut shown = listener.lines().join("\n");

    // A campaign in another folder, on the same database: the opt-out holds.
    let server = TestServer::sent_ok();
    let campaign = root.path().join("next-month");
    folder(
        &campaign,
        "next-month",
        &server.url(),
        "customer_id,first_name,phone\n1,Ana,(11) 98765-4321\n2,Bia,(11) 98765-0002\n",
        "",
    );
    let on_pg = |args: &[&str]| {
        let out = cosmocast(&campaign, &data)
            .env("COSMOCAST_LEDGER", &url)
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), stdout_of(&out), stderr_of(&out))
    };
    let (code, out, err) = on_pg(&["run", "campaign.yaml", "--progress", "none"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&named),
        "the summary names the database: {out}"
    );
    shown.push_str(&out);
    shown.push_str(&err);
    assert_eq!(server.phones(), ["5511987650002"]);
    let rows = db.query(
        "SELECT key, status, reason FROM contacts WHERE campaign = 'next-month' ORDER BY key",
    );
    assert_eq!(rows, [["1", "skipped", "opted_out"], ["2", "sent", ""]]);

    // Every reader works on it, and names it.
    for args in [
        &["status", "campaign.yaml", "--json"][..],
        &["export", "campaign.yaml"],
        &["replies", "campaign.yaml"],
        &["optouts", "list"],
        &["check", "campaign.yaml"],
        &["report", "campaign.yaml", "--output", "r.html"],
    ] {
        let (code, out, err) = on_pg(args);
        assert!(matches!(code, Some(0)), "{args:?}: {err}");
        shown.push_str(&out);
        shown.push_str(&err);
    }
    let (_, export, _) = on_pg(&["export", "campaign.yaml"]);
    assert_eq!(export.lines().count(), 3, "{export}");
    let (_, optouts, _) = on_pg(&["optouts", "list"]);
    assert!(optouts.contains("5511987654321"), "{optouts}");
    assert!(campaign.join("r.html").is_file());

    // A rehearsal keeps to a schema of its own in the same database.
    let (code, _, err) = on_pg(&["run", "campaign.yaml", "--sandbox", "--progress", "none"]);
    assert_eq!(code, Some(0), "{err}");
    shown.push_str(&err);
    assert_eq!(
        db.query("SELECT COUNT(*) FROM cosmocast_sandbox.contacts")[0][0],
        "2"
    );
    assert_eq!(db.query("SELECT COUNT(*) FROM public.contacts")[0][0], "2");

    // A database that is not there is named, with its host, port and name, never the password.
    let missing = url.replace(&db.name, "no_such_db");
    let out = cosmocast(&campaign, &data)
        .env("COSMOCAST_LEDGER", &missing)
        .args(["run", "campaign.yaml", "--progress", "none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("no_such_db"),
        "{}",
        stderr_of(&out)
    );
    shown.push_str(&stderr_of(&out));
    assert!(
        !shown.contains(PASSWORD),
        "the password was shown:\n{shown}"
    );
    let stored = db.query(
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM runs) t UNION ALL
         SELECT string_agg(t::text, ' ') FROM (SELECT * FROM contacts) t",
    );
    assert!(!format!("{stored:?}").contains(PASSWORD));
}

#[test]
fn on_postgres_two_campaigns_at_once_never_pass_the_channel_limit() {
    let db = postgres::database();
    two_campaigns_at_once_keep_the_smallest_limit(Some(&db.url), |_| {
        db.query(
            "SELECT COUNT(DISTINCT phone) FROM contacts WHERE status IN ('sent','queued','sending','unknown')",
        )[0][0]
            .clone()
    });
}

/// `sslmode=require` talks to the database only over TLS, and only after verifying its
/// certificate: against `sslrootcert` here (a CA made at test time), and never with a server the
/// system's roots do not vouch for.
#[test]
fn on_postgres_sslmode_require_verifies_the_server() {
    const PASSWORD: &str = "pg-tls-s3cret-4410";
    let cluster = postgres::Cluster::start();
    let db = cluster.database();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    cluster.require_tls(&made.cert.pem(), &made.signing_key.serialize_pem());
    let root = tempfile::tempdir().unwrap();
    let ca = root.path().join("ca.pem");
    std::fs::write(&ca, made.cert.pem()).unwrap();
    let url = |query: &str| format!("{}?{query}", with_password(&db.url, PASSWORD));
    let optouts = |url: String, args: &[&str]| {
        let out = cosmocast(root.path(), &root.path().join("data"))
            .env("COSMOCAST_LEDGER", url)
            .arg("optouts")
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), stdout_of(&out), stderr_of(&out))
    };
    let verified = url(&format!("sslmode=require&sslrootcert={}", ca.display()));
    let (code, _, err) = optouts(verified.clone(), &["add", "+5511987654321"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, list, err) = optouts(verified, &["list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(list.contains("5511987654321"), "{list}");
    let mut shown = format!("{err}{list}");
    // Without TLS the server refuses; with TLS but no root that vouches for the server, cosmocast
    // refuses. Both name the database.
    for query in ["sslmode=disable", "sslmode=require"] {
        let (code, out, err) = optouts(url(query), &["list"]);
        assert_eq!(code, Some(1), "{query}: {out}{err}");
        assert!(err.contains(&db.name), "{query}: {err}");
        shown.push_str(&out);
        shown.push_str(&err);
    }
    let (_, _, unverified) = optouts(url("sslmode=require"), &["list"]);
    assert!(
        unverified.to_lowercase().contains("certificate"),
        "{unverified}"
    );
    assert!(
        !shown.contains(PASSWORD),
        "the password was shown:\n{shown}"
    );
}

/// The daily limit counts people: a phone that holds a slot already costs nothing more, and
/// status, export and the run agree on it.
#[test]
fn people_the_channel_messaged_today_are_not_counted_against_its_limit_again() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    // Three people today, on a channel that allows three a day: the budget is spent.
    let first = limited(root.path(), "first", &server.url(), 0, 3, 3);
    assert_eq!(run(&first, &data).status.code(), Some(0));
    // A second campaign for the same three (under other keys) and one newcomer.
    let second = limited(root.path(), "second", &server.url(), 0, 4, 3);
    let csv = contacts_csv(0, 4)
        .replace("\n0,", "\nA0,")
        .replace("\n1,", "\nA1,");
    std::fs::write(second.join("contacts.csv"), csv).unwrap();
    let status = status_json(&second, &data);
    let rows = &status["rows"];
    assert_eq!(
        (&rows["pending"], &rows["deferred"]),
        (&3.into(), &1.into()),
        "{status}"
    );
    let export = stdout_of(
        &cosmocast(&second, &data)
            .args(["export", "campaign.yaml"])
            .output()
            .unwrap(),
    );
    let deferred = export.lines().filter(|l| l.contains(",deferred,")).count();
    assert_eq!(deferred, 1, "{export}");
    let out = run(&second, &data);
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert_eq!(server.count(), 6, "the three again; the newcomer waits");
}

/// A campaign without a daily limit takes no slots of the channel's budget, yet a limit a
/// second campaign declares later the same day counts the people it messaged: status, the
/// run and the ledger agree. `ledger`: `None` for the default one; `query` reads it.
fn a_limit_declared_later_counts_what_an_unlimited_campaign_sent(
    ledger: Option<&str>,
    query: impl Fn(&Path, &str) -> String,
) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let with_ledger = |dir: &Path| {
        let mut c = cosmocast(dir, &data);
        if let Some(url) = ledger {
            c.env("COSMOCAST_LEDGER", url);
        }
        c
    };
    // Four people, through a channel nobody limits yet: no slot is kept.
    let free = root.path().join("free");
    folder(&free, "free", &server.url(), &contacts_csv(0, 4), "");
    let out = with_ledger(&free)
        .args(["run", "campaign.yaml", "--progress", "none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(query(&data, "SELECT COUNT(*) FROM channel_slots"), "0");
    // Six a day: two of its eight people were messaged today (no cost again), four slots of six
    // are spent, so two newcomers go and four wait.
    let capped = limited(root.path(), "capped", &server.url(), 2, 8, 6);
    let status: serde_json::Value = serde_json::from_str(&stdout_of(
        &with_ledger(&capped)
            .args(["status", "campaign.yaml", "--json"])
            .output()
            .unwrap(),
    ))
    .unwrap();
    let budget = &status["daily_limit"];
    assert_eq!(
        (&budget["used"], &budget["left"]),
        (&serde_json::json!(4), &serde_json::json!(2)),
        "{status}"
    );
    assert_eq!(
        (&status["rows"]["pending"], &status["rows"]["deferred"]),
        (&serde_json::json!(4), &serde_json::json!(4)),
        "{status}"
    );
    let out = with_ledger(&capped)
        .args(["run", "campaign.yaml", "--progress", "none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert_eq!(
        server.count(),
        8,
        "four, then the two again and two newcomers"
    );
    assert_eq!(
        query(&data, "SELECT COUNT(DISTINCT phone) FROM channel_slots"),
        "6"
    );
}

/// Once the daily limit is spent, a run stops at the first person new to the budget: people
/// the channel messaged today who come after that row wait too, and check, status, the dry run
/// and export say so, as the run does.
#[test]
fn after_the_first_person_past_the_limit_every_row_waits() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let first = limited(root.path(), "first", &server.url(), 0, 5, 5);
    assert_eq!(run(&first, &data).status.code(), Some(0));
    // Three newcomers, then the five already messaged today (under other keys).
    let second = limited(root.path(), "second", &server.url(), 0, 0, 5);
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in [5, 6, 7, 0, 1, 2, 3, 4] {
        csv.push_str(&format!("B{i},P{i},55119{:08}\n", 70_000_000 + i));
    }
    std::fs::write(second.join("contacts.csv"), csv).unwrap();
    let status: serde_json::Value = status_json(&second, &data);
    assert_eq!(
        (&status["next_run"]["new"], &status["next_run"]["deferred"]),
        (&serde_json::json!(0), &serde_json::json!(8)),
        "{status}"
    );
    let dry = cosmocast(&second, &data)
        .args(["run", "campaign.yaml", "--dry-run"])
        .output()
        .unwrap();
    assert!(
        stderr_of(&dry).contains("dry run: 0 requests would be sent"),
        "{}",
        stderr_of(&dry)
    );
    let export = stdout_of(
        &cosmocast(&second, &data)
            .args(["export", "campaign.yaml"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        export.matches(",deferred,daily_limit,").count(),
        8,
        "{export}"
    );
    let out = run(&second, &data);
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert_eq!(
        server.count(),
        5,
        "the run sent none, as every command said"
    );
    // The five first, then the newcomers: the five go (they cost nothing), the three wait.
    let mut csv = String::from("customer_id,first_name,phone\n");
    for i in [0, 1, 2, 3, 4, 5, 6, 7] {
        csv.push_str(&format!("C{i},P{i},55119{:08}\n", 70_000_000 + i));
    }
    std::fs::write(second.join("contacts.csv"), csv).unwrap();
    let check = stdout_of(
        &cosmocast(&second, &data)
            .args(["check", "campaign.yaml"])
            .output()
            .unwrap(),
    );
    assert!(check.contains("ok — 5 contacts to message"), "{check}");
    let out = run(&second, &data);
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert_eq!(server.count(), 10);
}

/// The run's daily-limit message counts as sent only what the API accepted: a definite
/// failure gives its slot back and is named apart.
#[test]
fn the_daily_limit_message_counts_failures_apart() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::start(std::sync::Arc::new(|n, body| {
        if n == 0 {
            (422, r#"{"status":"error","message":"no"}"#.into())
        } else {
            answer_sent(n, body)
        }
    }));
    let dir = limited(root.path(), "spring", &server.url(), 0, 4, 2);
    let out = run(&dir, &data);
    // A failure outranks the work left (exit 3).
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out)
            .contains("is reached: 1 contact sent this run (1 more failed or unknown), "),
        "{}",
        stderr_of(&out)
    );
}

/// A campaign that takes `daily_limit` out of its file is no longer held back by the limit
/// it declared before: status says the next run sends the rest, and it does.
#[test]
fn a_daily_limit_taken_out_of_the_file_holds_nothing_back() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let dir = limited(root.path(), "spring", &server.url(), 0, 4, 2);
    assert_eq!(run(&dir, &data).status.code(), Some(4));
    assert_eq!(server.count(), 2);
    let yaml = std::fs::read_to_string(dir.join("campaign.yaml")).unwrap();
    std::fs::write(
        dir.join("campaign.yaml"),
        yaml.replace("  daily_limit: 2\n", ""),
    )
    .unwrap();
    let status: serde_json::Value = status_json(&dir, &data);
    assert_eq!(
        (&status["next_run"]["new"], &status["next_run"]["deferred"]),
        (&serde_json::json!(2), &serde_json::json!(0)),
        "{status}"
    );
    assert!(status["daily_limit"].is_null(), "{status}");
    assert_eq!(run(&dir, &data).status.code(), Some(0));
    assert_eq!(server.count(), 4);
}

#[test]
fn a_limit_declared_later_counts_what_a_campaign_without_one_sent() {
    a_limit_declared_later_counts_what_an_unlimited_campaign_sent(None, |data, q| {
        sql(&default_ledger(data), q)[0][0].clone()
    });
}

#[test]
fn on_postgres_a_limit_declared_later_counts_what_a_campaign_without_one_sent() {
    let db = postgres::database();
    a_limit_declared_later_counts_what_an_unlimited_campaign_sent(Some(&db.url), |_, q| {
        db.query(q)[0][0].clone()
    });
}

/// `cosmocast run` in `dir`, with `extra` flags, on `ledger` (`None`: the default one, in
/// `data`), started and left running.
fn spawn_run(dir: &Path, data: &Path, ledger: Option<&str>, extra: &[&str]) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosmocast"));
    match ledger {
        Some(url) => cmd.env("COSMOCAST_LEDGER", url),
        None => cmd.env_remove("COSMOCAST_LEDGER"),
    };
    cmd.current_dir(dir)
        .env("XDG_DATA_HOME", data)
        .env("COSMOBOTS_TOKEN", TOKEN)
        .env("COSMOBOTS_CHANNEL_ID", CHANNEL)
        .args(["run", "campaign.yaml", "--progress", "none"])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn an_opt_out_added_while_a_campaign_runs_stops_it_messaging_that_phone() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    // Thirty contacts at ten a second: the last is claimed some three seconds in.
    let dir = root.path().join("spring");
    folder(
        &dir,
        "spring",
        &server.url(),
        &contacts_csv(0, 30),
        "send:\n  rate: 10/s\n",
    );
    let mut child = spawn_run(&dir, &data, None, &[]);
    wait_until("the run has sent", Duration::from_secs(30), || {
        server.count() >= 3
    });
    let out = cosmocast(&dir, &data)
        .args(["optouts", "add", "5511970000029"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let code = sandbox::wait_with_timeout(&mut child, Duration::from_secs(60)).code();
    assert_eq!(code, Some(0));
    assert!(
        !server.phones().contains(&"5511970000029".to_string()),
        "the phone that opted out mid-run is not messaged"
    );
    assert_eq!(server.count(), 29);
    assert_eq!(
        sql(
            &default_ledger(&data),
            "SELECT status, reason FROM contacts WHERE key = '29'"
        ),
        [["skipped", "opted_out"]]
    );
    let status = stdout_of(
        &cosmocast(&dir, &data)
            .args(["status", "campaign.yaml"])
            .output()
            .unwrap(),
    );
    assert!(status.contains("skipped opted_out: 1"), "{status}");
}

#[test]
fn two_campaigns_at_once_with_a_cooldown_message_each_phone_once() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    // The same twenty people in both, at twenty a second each: their claims interleave.
    let dirs: Vec<PathBuf> = ["autumn", "winter"]
        .iter()
        .map(|name| {
            let dir = root.path().join(name);
            folder(
                &dir,
                name,
                &server.url(),
                &contacts_csv(0, 20),
                "send:\n  rate: 20/s\n",
            );
            let yaml = std::fs::read_to_string(dir.join("campaign.yaml"))
                .unwrap()
                .replace("  country: BR\n", "  country: BR\n  cooldown: 1h\n");
            std::fs::write(dir.join("campaign.yaml"), yaml).unwrap();
            dir
        })
        .collect();
    let mut children: Vec<_> = dirs
        .iter()
        .map(|d| spawn_run(d, &data, None, &[]))
        .collect();
    let codes: Vec<Option<i32>> = children
        .iter_mut()
        .map(|c| sandbox::wait_with_timeout(c, Duration::from_secs(60)).code())
        .collect();
    let mut phones = server.phones();
    let all = phones.len();
    phones.dedup();
    assert_eq!(all, phones.len(), "nobody is messaged twice: {phones:?}");
    assert_eq!(all, 20, "everyone is messaged once");
    // Whoever found a phone cooling waits for a later run (exit 4).
    assert!(codes.contains(&Some(4)), "{codes:?}");
    let deferred: u64 = dirs
        .iter()
        .map(|d| status_json(d, &data)["rows"]["deferred"].as_u64().unwrap())
        .sum();
    assert_eq!(
        deferred, 20,
        "each phone waits in the campaign that did not send it"
    );
}

/// An opt-out a webhook sent without the country code, stored without `listen --country`,
/// holds for a campaign whose `contacts.country` is its country, and `export` says since when.
#[test]
fn an_opt_out_without_its_country_code_holds_for_the_campaigns_of_its_country() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = TestServer::sent_ok();
    let dir = root.path().join("promo");
    folder(
        &dir,
        "promo",
        &server.url(),
        "customer_id,first_name,phone\n1,Ana,+55 11 98033-1033\n2,Bo,5511999990002\n",
        "",
    );
    let mut bare = Server::start_with(
        &["listen", "--addr", "127.0.0.1:0"],
        &dir,
        &[("XDG_DATA_HOME", data.as_os_str())],
    );
    let body = serde_json::json!({
        "contact": {"mobile_phone": "11980331033"},
        "message": [{"type": "text", "data": {"text": "PARAR"}}],
    });
    assert_eq!(post_status(&bare.webhook(), &body.to_string()), 200);
    assert_eq!(bare.stop(), Some(0));
    assert_eq!(run(&dir, &data).status.code(), Some(0));
    assert_eq!(server.count(), 1, "Ana opted out");
    let export = stdout_of(
        &cosmocast(&dir, &data)
            .args(["export", "campaign.yaml"])
            .output()
            .unwrap(),
    );
    let ana = export.lines().find(|l| l.starts_with("1,")).unwrap();
    assert!(ana.contains(",skipped,opted_out,"), "{export}");
    let cells: Vec<&str> = ana.split(',').collect();
    assert!(cells[14].starts_with("20"), "opted_out_at: {export}");
}

#[test]
fn a_webhook_phone_without_its_country_code_is_read_with_listen_country() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let dir = root.path().join("listener");
    std::fs::create_dir_all(&dir).unwrap();
    let stop_from = |listener: &Server, phone: &str, word: &str| {
        let body = serde_json::json!({
            "contact": {"mobilePhone": phone},
            "message": [{"type": "text", "data": {"text": word}}],
        });
        assert_eq!(post_status(&listener.webhook(), &body.to_string()), 200);
    };
    // Without --country the number is kept as it came, and the log says what to do.
    let mut bare = Server::start_with(
        &["listen", "--addr", "127.0.0.1:0"],
        &dir,
        &[("XDG_DATA_HOME", data.as_os_str())],
    );
    stop_from(&bare, "11980331033", "PARAR");
    assert_eq!(bare.stop(), Some(0));
    let log = bare.lines().join("\n");
    assert!(
        log.contains("no country code") && log.contains("--country"),
        "{log}"
    );
    let listed = sql(&default_ledger(&data), "SELECT phone FROM opt_outs");
    assert_eq!(listed, [["11980331033"]]);
    // ... and it can be taken off the list as it is listed, or by the whole number.
    for (given, word) in [("11980331033", "PARE"), ("+55 11 98033-1033", "SAIR")] {
        let out = cosmocast(&dir, &data)
            .args(["optouts", "remove", given])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{given}: {}", stderr_of(&out));
        assert!(sql(&default_ledger(&data), "SELECT phone FROM opt_outs").is_empty());
        // Back on the list, as the webhook left it, for the next way of removing it.
        let mut again = Server::start_with(
            &["listen", "--addr", "127.0.0.1:0"],
            &dir,
            &[("XDG_DATA_HOME", data.as_os_str())],
        );
        stop_from(&again, "11980331033", word);
        assert_eq!(again.stop(), Some(0));
    }
    let out = cosmocast(&dir, &data)
        .args(["optouts", "remove", "11980331033"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));

    // With --country BR it is kept as every Brazilian campaign compares it.
    let mut listener = Server::start_with(
        &["listen", "--addr", "127.0.0.1:0", "--country", "BR"],
        &dir,
        &[("XDG_DATA_HOME", data.as_os_str())],
    );
    // (Another word: the same body again would be a retried delivery, stored once.)
    stop_from(&listener, "11980331033", "STOP");
    assert_eq!(listener.stop(), Some(0));
    assert!(!listener.lines().join("\n").contains("no country code"));
    assert_eq!(
        sql(&default_ledger(&data), "SELECT phone FROM opt_outs"),
        [["5511980331033"]]
    );
}

#[test]
fn export_dates_an_opt_out_a_run_has_not_recorded_yet() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let dir = root.path().join("spring");
    folder(
        &dir,
        "spring",
        "http://127.0.0.1:9/",
        &contacts_csv(0, 3),
        "",
    );
    let out = cosmocast(&dir, &data)
        .args(["optouts", "add", "5511970000001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let export = stdout_of(
        &cosmocast(&dir, &data)
            .args(["export", "campaign.yaml"])
            .output()
            .unwrap(),
    );
    let line = export
        .lines()
        .find(|l| l.contains(",skipped,opted_out,"))
        .unwrap_or_else(|| panic!("the opted-out row: {export}"));
    let cells: Vec<&str> = line.split(',').collect();
    assert_eq!(cells[0], "1", "{line}");
    // key,row_number,status,reason,...,opted_out_at,phone: the date the list holds.
    let at = cells[cells.len() - 2];
    assert!(
        at.starts_with("20") && at.len() >= 19,
        "opted_out_at {at:?} in {line}"
    );
}

/// A rehearsal keeps a suppression list of its own: `optouts --sandbox` is the one that
/// `check --sandbox` (and `run --sandbox`) reads, and the real list is left alone.
#[test]
fn optouts_with_sandbox_change_the_rehearsals_list() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let dir = root.path().join("spring");
    folder(
        &dir,
        "spring",
        "http://127.0.0.1:9/",
        &contacts_csv(0, 3),
        "",
    );
    let out = cosmocast(&dir, &data)
        .args(["optouts", "add", "--sandbox", "5511970000001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let opted_out = |sandbox: bool| {
        let mut c = cosmocast(&dir, &data);
        c.args(["check", "campaign.yaml", "--json"]);
        if sandbox {
            c.arg("--sandbox");
        }
        let out = c.output().unwrap();
        let json: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
        json["opted_out"].as_u64().unwrap()
    };
    assert_eq!((opted_out(true), opted_out(false)), (1, 0));
    let list = cosmocast(&dir, &data)
        .args(["optouts", "list", "--sandbox"])
        .output()
        .unwrap();
    assert!(
        stdout_of(&list).contains("5511970000001"),
        "{}",
        stdout_of(&list)
    );
}
