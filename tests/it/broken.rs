//! The corpus of broken campaigns in tests/fixtures/broken/: each is refused by `check` and by
//! `run` with exit 1, a message that names the file and line, no panic, and no request sent.
//! The messages are snapshots (tests/snapshots/) so that their wording is reviewed.

use std::path::Path;

use crate::common::*;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// `file:line` or `file:line:col` at the start of a line.
fn located(line: &str) -> bool {
    let mut parts = line.splitn(3, ':');
    let (Some(file), Some(num)) = (parts.next(), parts.next()) else {
        return false;
    };
    !file.is_empty()
        && !file.contains(' ')
        && !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn every_broken_campaign_is_refused_with_a_located_message() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    let server = TestServer::sent_ok();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let f = Fixture::new();
        copy_dir(case, f.dir.path());
        let yaml = std::fs::read_to_string(f.campaign())
            .unwrap()
            .replace("http://SERVER", &format!("http://{}", server.addr));
        std::fs::write(f.campaign(), yaml).unwrap();

        let check = f.cmd().args(["check", "campaign.yaml"]).output().unwrap();
        let run = f.run();
        let (check_err, run_err) = (stderr_of(&check), stderr_of(&run));
        for (what, out, err) in [("check", &check, &check_err), ("run", &run, &run_err)] {
            if out.status.code() != Some(1) {
                failures.push(format!(
                    "{name}: {what} exited {:?}:\n{err}",
                    out.status.code()
                ));
            }
            if err.contains("panicked") {
                failures.push(format!("{name}: {what} panicked:\n{err}"));
            }
            if !err.lines().next().is_some_and(located) {
                failures.push(format!(
                    "{name}: {what}'s message names no file and line:\n{err}"
                ));
            }
        }
        if server.count() > 0 {
            failures.push(format!("{name}: a request reached the server"));
        }
        if f.ledger().exists() {
            failures.push(format!("{name}: a refused run created the ledger"));
        }
        insta::with_settings!({ snapshot_suffix => name.clone(), prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!("check", check_err);
        });
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
