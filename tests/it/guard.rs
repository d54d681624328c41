//! The ordinary mistakes of the people who run campaigns (issue 14): each test is named for the
//! mistake, drives the real binary against a real SQLite file and a real HTTP server on
//! 127.0.0.1, and checks that it neither messages everyone again nor no one.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use crate::common::sandbox::*;
use crate::common::*;

/// Every file under `dir` with its size and contents' hash: what a read-only command must leave
/// exactly as it was.
fn listing(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, u64)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(format!("{name}/"), (0, 0));
                walk(root, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
                });
                out.insert(name, (bytes.len() as u64, hash));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Waits until the sandbox has accepted at least `n` requests.
fn wait_accepted(dir: &Path, n: usize, child: &mut Child) {
    wait_until(
        &format!("the sandbox to accept {n} requests"),
        Duration::from_secs(30),
        || {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before the sandbox accepted {n} requests"
            );
            accepted(dir).values().map(|v| *v as usize).sum::<usize>() >= n
        },
    );
}

fn total(accepted: &std::collections::HashMap<String, u32>) -> u32 {
    accepted.values().sum()
}

fn output_of(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code(), stderr_of(&out))
}

#[test]
fn a_renamed_key_column_whose_recorded_keys_still_match_goes_on_with_a_note() {
    let server = TestServer::sent_ok();
    let f = fixture(&server.url(), 3, "");
    assert_eq!(f.run().status.code(), Some(0));
    // The header `customer_id` becomes `Codigo`, the key template follows, a signup is appended:
    // every recorded key still matches, so only the new row is keyed the new way.
    let yaml = std::fs::read_to_string(f.campaign()).unwrap();
    let csv = std::fs::read_to_string(f.path("contacts.csv")).unwrap();
    f.write("campaign.yaml", &yaml.replace("customer_id", "Codigo"))
        .write(
            "contacts.csv",
            &(csv.replace("customer_id", "Codigo") + "K4,Name4,5511900000004\n"),
        );
    let out = f.run();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("recorded the new identity"), "{err}");
    assert_eq!(server.count(), 4, "only the new signup is sent");
}

#[test]
fn changed_key_refuses_to_start_and_accept_change_goes_on() {
    changed_key_refuses_to_start_and_accept_change_goes_on_with(Backend::Sqlite);
}

#[test]
fn changed_key_refuses_to_start_and_accept_change_goes_on_postgres() {
    changed_key_refuses_to_start_and_accept_change_goes_on_with(Backend::Postgres);
}

fn changed_key_refuses_to_start_and_accept_change_goes_on_with(backend: Backend) {
    let server = TestServer::sent_ok();
    let f = fixture(&server.url(), 3, "").on(backend);
    assert_eq!(f.run().status.code(), Some(0));
    assert_eq!(server.count(), 3);

    // The same keys written another way: nothing moves, the run goes on and sends nothing.
    let yaml = std::fs::read_to_string(f.campaign()).unwrap();
    f.write(
        "campaign.yaml",
        &yaml.replace("{{ customer_id }}\"", "{{customer_id}}\""),
    );
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.count(), 3);

    // A key that gives every contact another identity: refused, with what changed and the way out.
    f.write(
        "campaign.yaml",
        &yaml.replace("key: \"{{ customer_id }}\"", "key: \"{{ first_name }}\""),
    );
    let out = f.run();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needed in [
        "the contact key",
        "{{customer_id}}",
        "{{ first_name }}",
        "3 contacts",
        "3 rows",
        // None is new: each row's phone was messaged under the old key.
        "0 to message (any of them messaged under the old key would get it again), 3 skipped as a phone already messaged",
        "Nothing was sent",
        "--accept-change",
        "new `name:`",
    ] {
        assert!(err.contains(needed), "{needed:?} in {err}");
    }
    assert_eq!(server.count(), 3, "nothing was sent");
    // check, the pre-flight a job may run first, refuses it too.
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    let said = stderr_of(&check);
    assert_eq!(check.status.code(), Some(1), "{said}");
    assert!(said.contains("the contact key"), "{said}");
    // status and the report say so too, rather than show a campaign that sent nothing.
    let status = stdout_of(&f.cmd().args(["status", "campaign.yaml"]).output().unwrap());
    assert!(
        status.contains("note: the campaign changed since the ledger recorded it (the contact key")
            && status.contains("`cosmocast run` refuses to start"),
        "{status}"
    );
    // Its last line does not promise a send the run refuses.
    assert!(
        status.contains(
            "next run (it refuses to start until the change noted above is settled): sends"
        ),
        "{status}"
    );
    let page = f.report_page();
    assert!(page.contains("refuses to start"), "the report notes it");
    let out = f.run_cmd().arg("--accept-change").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("recorded the new identity"));
    // Accepted: the new keys are new contacts, but their phones were messaged already
    // (`contacts.unique_phone`, on by default), so no one gets the message twice.
    assert_eq!(server.count(), 3);
    let skipped = f.sql(
        "SELECT COUNT(*) FROM contacts WHERE status = 'skipped' AND reason = 'duplicate'
         AND error = 'same phone as a contact this campaign already messaged'",
    );
    assert_eq!(skipped[0][0], "3");
    assert_eq!(f.run().status.code(), Some(0));
    assert_eq!(server.count(), 3, "and the new identity holds");

    // The key taken out: the phone becomes the key, and the phones messaged under the old keys
    // are still skipped.
    let unkeyed: String = yaml
        .lines()
        .filter(|l| !l.trim_start().starts_with("key:"))
        .map(|l| format!("{l}\n"))
        .collect();
    f.write("campaign.yaml", &unkeyed);
    let out = f.run_cmd().arg("--accept-change").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.count(), 3, "no phone is messaged twice");
    let skipped = f.sql(
        "SELECT COUNT(*) FROM contacts WHERE status = 'skipped' AND reason = 'duplicate'
         AND error = 'same phone as a contact this campaign already messaged'",
    );
    assert_eq!(skipped[0][0], "6");
}

#[test]
fn endpoint_switch_after_a_rehearsal_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let rehearsal = Sandbox::start(dir.path(), &[]);
    let f = fixture(&rehearsal.url, 5, "");
    assert_eq!(f.run().status.code(), Some(0));
    assert_eq!(total(&accepted(dir.path())), 5);

    let production = TestServer::sent_ok();
    let yaml = std::fs::read_to_string(f.campaign()).unwrap();
    f.write(
        "campaign.yaml",
        &yaml.replace(&rehearsal.url, &production.url()),
    );
    let out = f.run();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the API endpoint"), "{err}");
    assert!(
        err.contains(&production.url().replace("/messages/v1/send", "")),
        "{err}"
    );
    assert!(err.contains("5 contacts"), "{err}");
    assert_eq!(production.count(), 0, "nothing went to production");

    // A ledger of its own for production sends everyone there.
    let out = f
        .run_cmd()
        .args(["--ledger", "production.sqlite"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(production.count(), 5);
}

/// Starts a run that takes a while, and a second one on `alias` once the first is sending.
/// (Through a hard link the second cannot read the holder's process id: the first's recent
/// writes sit in a write-ahead log named after the other name.)
fn two_runs_on_one_ledger(alias: &str, prepare: impl FnOnce(&Fixture), names_holder: bool) {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &["--latency", "20ms"]);
    let f = fixture(&sandbox.url, 200, "send:\n  concurrency: 2\n");
    prepare(&f);
    let mut first = run_cmd(&f, &[]).spawn().unwrap();
    wait_accepted(dir.path(), 5, &mut first);
    let second = run_cmd(&f, &["--ledger", alias, "--json"])
        .output()
        .unwrap();
    let err = stderr_of(&second);
    assert_eq!(second.status.code(), Some(5), "{err}");
    // A cron wrapper reading `--json` gets its object even so.
    let summary: serde_json::Value = serde_json::from_str(&stdout_of(&second)).unwrap();
    assert_eq!(
        (&summary["exit_code"], &summary["stopped"]["reason"]),
        (&serde_json::json!(5), &serde_json::json!("locked")),
        "{summary}"
    );
    let holder = if names_holder {
        format!("already running in process {}", first.id())
    } else {
        "already running in another process".to_string()
    };
    assert!(err.contains(&holder), "{err}");
    let (code, err) = output_of(first);
    assert_eq!(code, Some(0), "{err}");
    let accepted = accepted(dir.path());
    assert_eq!(accepted.len(), 200);
    assert!(
        accepted.values().all(|n| *n == 1),
        "a contact was sent twice"
    );
}

#[test]
fn symlinked_ledger_cannot_run_twice() {
    two_runs_on_one_ledger(
        "alias.sqlite",
        |f| {
            std::os::unix::fs::symlink("workspace.sqlite", f.path("alias.sqlite")).unwrap();
        },
        true,
    );
}

#[test]
fn relative_spelling_of_the_ledger_cannot_run_twice() {
    two_runs_on_one_ledger(
        "./sub/../workspace.sqlite",
        |f| {
            std::fs::create_dir(f.path("sub")).unwrap();
        },
        true,
    );
}

#[test]
fn hard_linked_ledger_cannot_run_twice() {
    two_runs_on_one_ledger(
        "hard.sqlite",
        |f| {
            // The ledger must exist to be linked: a run with nothing to send creates it.
            let out = f.run_cmd().args(["--limit", "0"]).output().unwrap();
            assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
            assert!(
                stderr_of(&out).contains("--limit 0 sends nothing: run the same command without"),
                "{}",
                stderr_of(&out)
            );
            std::fs::hard_link(f.ledger(), f.path("hard.sqlite")).unwrap();
        },
        false,
    );
}

#[test]
fn deleted_ledger_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &["--latency", "20ms"]);
    let f = fixture(&sandbox.url, 2000, "send:\n  concurrency: 4\n");
    let mut child = run_cmd(&f, &[]).spawn().unwrap();
    wait_accepted(dir.path(), 20, &mut child);
    std::fs::remove_file(f.ledger()).unwrap();
    let at_deletion = total(&accepted(dir.path()));
    let (code, err) = output_of(child);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("was deleted") && err.contains("nothing more was sent"),
        "{err}"
    );
    let after = total(&accepted(dir.path()));
    // What was in flight or claimed when the file went may still arrive; nothing after that.
    assert!(
        after < at_deletion + 100,
        "{after} accepted, {at_deletion} when the ledger was deleted"
    );
    assert!(after < 2000);
}

#[test]
fn read_only_commands_create_or_change_nothing() {
    let server = TestServer::sent_ok();
    let f = fixture(&server.url(), 4, "");
    let read_only: [&[&str]; 9] = [
        &["check", "campaign.yaml"],
        &["preview", "campaign.yaml"],
        &["preview", "campaign.yaml", "--json"],
        &["status", "campaign.yaml"],
        &["status", "campaign.yaml", "--json"],
        &["export", "campaign.yaml"],
        &["replies", "campaign.yaml"],
        &["run", "campaign.yaml", "--dry-run"],
        &[
            "status",
            "campaign.yaml",
            "--ledger",
            "typo/folder/x.sqlite",
        ],
    ];
    let check_all = |when: &str| {
        let before = listing(f.dir.path());
        for args in read_only {
            let out = f.cmd().args(args).output().unwrap();
            assert!(
                !stderr_of(&out).contains("panicked"),
                "{args:?}: {}",
                stderr_of(&out)
            );
            assert_eq!(
                listing(f.dir.path()),
                before,
                "{when}: {args:?} changed the folder"
            );
        }
    };
    // Without a ledger they say so, and status still tells what a run would do.
    check_all("no ledger yet");
    let status = f.cmd().args(["status", "campaign.yaml"]).output().unwrap();
    let text = stdout_of(&status);
    assert!(
        text.contains("no ledger at") && text.contains("workspace.sqlite"),
        "{text}"
    );
    assert!(text.contains("next run: sends 4 new contacts"), "{text}");
    // export too: every row, as pending, with a note that nothing has run yet.
    let export = f.cmd().args(["export", "campaign.yaml"]).output().unwrap();
    assert_eq!(export.status.code(), Some(0));
    assert!(
        stderr_of(&export).contains("no ledger at"),
        "{}",
        stderr_of(&export)
    );
    assert_eq!(stdout_of(&export).matches(",pending,").count(), 4);
    assert_eq!(server.count(), 0);

    // With a ledger, after a finished run.
    assert_eq!(f.run().status.code(), Some(0));
    check_all("after a run");
    let dry = f
        .cmd()
        .args(["run", "campaign.yaml", "--dry-run"])
        .output()
        .unwrap();
    assert!(stderr_of(&dry).contains("nothing was sent or written"));
    assert_eq!(server.count(), 4);
}

#[test]
fn filtered_rows_are_counted_everywhere() {
    let server = TestServer::sent_ok();
    let f = Fixture::new();
    f.write(
        "contacts.csv",
        "customer_id,first_name,phone,opt_in\nC1,Ana,5511999990001,sim\nC2,Bo,5511999990002,Sim\nC3,Cy,5511999990003,sim\nC4,Di,5511999990004,nao\n",
    )
    .write(
        "campaign.yaml",
        &campaign_yaml(&server.url(), "  - type: text\n    text: \"Hi {{ first_name }}\"\n", "")
            .replace("  file: contacts.csv\n", "  file: contacts.csv\n  where: \"opt_in == 'sim'\"\n"),
    );
    let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
    let text = stdout_of(&check);
    assert!(text.contains("filtered           2"), "{text}");
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let summary = stdout_of(&out);
    assert!(
        summary.contains("4 rows — sent 2") && summary.contains("filtered 2"),
        "{summary}"
    );
    let status = f.cmd().args(["status", "campaign.yaml"]).output().unwrap();
    assert!(
        stdout_of(&status).contains("filtered 2"),
        "{}",
        stdout_of(&status)
    );
    let v = f.status_json();
    assert_eq!(v["filtered"], 2);
    assert_eq!(v["next_run"]["filtered"], 2);
    let run_json = f.run_cmd().arg("--json").output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&run_json.stdout).unwrap();
    assert_eq!(v["filtered"], 2);
    let export = f.cmd().args(["export", "campaign.yaml"]).output().unwrap();
    let csv = stdout_of(&export);
    let filtered: Vec<&str> = csv.lines().filter(|l| l.contains(",filtered,")).collect();
    assert_eq!(filtered.len(), 2, "{csv}");
    assert!(filtered[0].starts_with("5511999990002,2,"), "{csv}");
    // A row that passes the filter later is sent then: filtered is no ledger state.
    let fixed = std::fs::read_to_string(f.path("contacts.csv"))
        .unwrap()
        .replace(",Sim", ",sim");
    f.write("contacts.csv", &fixed);
    assert_eq!(f.run().status.code(), Some(0));
    assert_eq!(server.count(), 3);
}

#[test]
fn contact_file_changed_mid_run_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path(), &["--latency", "20ms"]);
    let f = fixture(&sandbox.url, 3000, "send:\n  concurrency: 4\n");
    let mut child = run_cmd(&f, &[]).spawn().unwrap();
    wait_accepted(dir.path(), 10, &mut child);
    let mut csv = std::fs::read_to_string(f.path("contacts.csv")).unwrap();
    csv.push_str("K3001,Late,5511900003001\n");
    f.write("contacts.csv", &csv);
    let (code, err) = output_of(child);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("changed during the run"), "{err}");
    let sent = total(&accepted(dir.path()));
    assert!(sent < 3000, "the run went on to the end ({sent})");
    // The next run sends the rest, and no one twice.
    let out = run_cmd(&f, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let accepted = accepted(dir.path());
    assert_eq!(accepted.len(), 3001);
    assert!(accepted.values().all(|n| *n == 1));
}

#[test]
fn finished_campaign_outside_the_window_exits_0() {
    let server = TestServer::sent_ok();
    let f = fixture(&server.url(), 3, "");
    assert_eq!(f.run().status.code(), Some(0));
    // Now the window is closed (it opens in two hours): nothing is left, so the run is done.
    let h = (jiff::Timestamp::now().as_second() / 3600 % 24) as u32;
    let yaml = std::fs::read_to_string(f.campaign()).unwrap();
    f.write(
        "campaign.yaml",
        &format!(
            "{yaml}send:\n  window:\n    from: \"{:02}:00\"\n    until: \"{:02}:00\"\n    timezone: UTC\n",
            (h + 2) % 24,
            (h + 3) % 24
        ),
    );
    let out = f.run();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(server.count(), 3);
    // A new contact outside the window is work that remains.
    let mut csv = std::fs::read_to_string(f.path("contacts.csv")).unwrap();
    csv.push_str("K4,Name4,5511900000004\n");
    f.write("contacts.csv", &csv);
    let out = f.run();
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
}

#[test]
fn newer_or_damaged_ledger_is_read_where_possible_and_named() {
    let server = TestServer::sent_ok();
    let f = fixture(&server.url(), 2, "");
    assert_eq!(f.run().status.code(), Some(0));
    {
        let conn = rusqlite::Connection::open(f.ledger()).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    // Read-only commands still read it, and say why figures may be missing.
    let status = f.cmd().args(["status", "campaign.yaml"]).output().unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", stderr_of(&status));
    let text = stdout_of(&status);
    assert!(
        text.contains("newer cosmocast") && text.contains("sent     2"),
        "{text}"
    );
    let export = f.cmd().args(["export", "campaign.yaml"]).output().unwrap();
    assert_eq!(export.status.code(), Some(0), "{}", stderr_of(&export));
    assert_eq!(stdout_of(&export).lines().count(), 3);
    // A run does not write into a ledger it does not know.
    let run = f.run();
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr_of(&run).contains("upgrade cosmocast"),
        "{}",
        stderr_of(&run)
    );

    // Not a ledger at all: named, not a panic.
    f.write(
        "workspace.sqlite",
        "this is not a database, just text someone saved here\n",
    );
    for args in [
        &["status", "campaign.yaml"][..],
        &["export", "campaign.yaml"],
    ] {
        let out = f.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr_of(&out);
        assert!(
            err.contains("not a cosmocast ledger") && !err.contains("panicked"),
            "{err}"
        );
    }
    assert_eq!(server.count(), 2);
}

#[test]
fn a_ledger_of_a_development_build_is_named_and_left_as_it_is() {
    let server = TestServer::sent_ok();
    let f = fixture(&server.url(), 2, "");
    {
        // As a build before 0.1.0 left it: WAL, a schema number, no mark of a release.
        let conn = rusqlite::Connection::open(f.ledger()).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE contacts (key TEXT); PRAGMA user_version = 9;")
            .unwrap();
    }
    let before = std::fs::read(f.ledger()).unwrap();
    for args in [
        &["status", "campaign.yaml"][..],
        &["export", "campaign.yaml"],
        &["run", "campaign.yaml", "--progress", "none"],
    ] {
        let out = f.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr_of(&out);
        assert!(
            err.contains("development build") && err.contains("COSMOCAST_LEDGER"),
            "{err}"
        );
    }
    assert_eq!(server.count(), 0);
    assert_eq!(
        std::fs::read(f.ledger()).unwrap(),
        before,
        "the file is untouched"
    );
}
