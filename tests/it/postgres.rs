//! The test server of `common::postgres`: a database of its own for each test; a cluster that
//! stops, resumes, and goes with its process however that process ends. The tests that stop a
//! server start a cluster of their own from the installed binaries, whatever
//! `COSMOCAST_TEST_POSTGRES` says.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::postgres::{self, Cluster};
use crate::common::*;

#[test]
fn each_test_gets_a_database_of_its_own() {
    let (a, b) = (postgres::database(), postgres::database());
    assert_ne!(a.name, b.name);
    a.execute("CREATE TABLE mine (v TEXT); INSERT INTO mine VALUES ('a')");
    assert_eq!(
        a.query("SELECT current_database(), v FROM mine"),
        [[a.name.clone(), "a".into()]]
    );
    let other = b.try_query("SELECT v FROM mine").unwrap_err();
    assert!(other.starts_with("42P01"), "{other}");
    assert_eq!(b.query("SELECT current_database()"), [[b.name.clone()]]);
    assert!(a.url.ends_with(&format!("/{}", a.name)), "{}", a.url);
    if let postgres::Server::Local(cluster) = postgres::server() {
        let at = format!("postgres://postgres@127.0.0.1:{}/{}", cluster.port, a.name);
        assert_eq!(a.url, at);
        assert_eq!(a.query("SELECT host(inet_server_addr())"), [["127.0.0.1"]]);
        let listen = a.query("SHOW listen_addresses");
        assert_eq!(listen, [["127.0.0.1"]], "loopback only");
    }
}

#[test]
fn a_cluster_of_a_tests_own_stops_resumes_and_goes_with_it() {
    let cluster = Cluster::start();
    let db = cluster.database();
    db.execute("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('committed')");
    cluster.stop();
    let refused = db.try_query("SELECT 1").unwrap_err();
    assert!(refused.contains("cannot connect"), "{refused}");
    cluster.resume();
    assert_eq!(db.query("SELECT v FROM t"), [["committed"]]);
    let (dir, port) = (cluster.dir.clone(), cluster.port);
    drop(cluster);
    assert!(!dir.exists(), "{} is gone", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server stopped"
    );
}

/// Set in a copy of this test binary that starts the shared cluster and then ends as this
/// variable says: `kill` (waits to be killed) or `panic`.
const CHILD: &str = "COSMOCAST_TEST_POSTGRES_CHILD";

#[test]
fn the_shared_cluster_goes_with_the_test_process_however_it_ends() {
    if let Ok(how) = std::env::var(CHILD) {
        return start_then_end(&how);
    }
    for how in ["kill", "panic"] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "postgres::the_shared_cluster_goes_with_the_test_process_however_it_ends",
            ])
            .args(["--nocapture", "--test-threads", "1"])
            .env(CHILD, how)
            .env_remove(postgres::ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let line = cluster_line(child.stdout.take().unwrap());
        let (dir, port) = line.rsplit_once(' ').unwrap();
        let (dir, port) = (PathBuf::from(dir), port.parse::<u16>().unwrap());
        assert!(dir.join("data").exists(), "{line}");
        if how == "kill" {
            child.kill().unwrap();
        }
        let status = sandbox::wait_with_timeout(&mut child, Duration::from_secs(60));
        assert!(!status.success(), "{how}: {status}");
        wait_until(
            &format!("{} to go ({how})", dir.display()),
            Duration::from_secs(60),
            || !dir.exists(),
        );
        let refused = std::net::TcpStream::connect(("127.0.0.1", port)).is_err();
        assert!(refused, "{how}: the server on port {port} stopped");
    }
}

/// The `DIR PORT` after the child's `cluster ` (libtest writes the test's name before it on the
/// same line); the rest of its output is read to its end.
fn cluster_line(stdout: std::process::ChildStdout) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the child names its cluster within 60 s");
        if let Some((_, found)) = line.split_once("cluster ") {
            return found.to_string();
        }
    }
}

/// The child's part: a database on the shared cluster, the cluster named, then the end.
fn start_then_end(how: &str) {
    let db = postgres::database();
    assert_eq!(db.query("SELECT 1"), [["1"]]);
    let postgres::Server::Local(cluster) = postgres::server() else {
        panic!("{} is set in the child", postgres::ENV);
    };
    println!("cluster {} {}", cluster.dir.display(), cluster.port);
    if how == "panic" {
        panic!("a failing test ends its process");
    }
    // Killed by the parent long before this.
    std::thread::sleep(Duration::from_secs(120));
}
