//! A cosmocast server (`listen`, `sandbox`) as a child process on 127.0.0.1: its stderr is
//! collected in the background (so it never writes into a closed pipe), its first line names its
//! URL, and it is killed when the test ends, however the test ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The webhook secret the tests' servers read from the environment.
pub const SECRET: &str = "s3cret-webhook-path-0123456789";

/// A child process whose stderr is collected in the background; its first line names its URL.
pub struct Server {
    pub child: Child,
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(args: &[&str], dir: &std::path::Path) -> Server {
        Server::start_with(args, dir, &[])
    }

    /// The same, with more environment variables (`COSMOCAST_LEDGER`, `XDG_DATA_HOME`).
    pub fn start_with(
        args: &[&str],
        dir: &std::path::Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Server {
        let (child, mut lines) = spawn(args, dir, env);
        let first = lines.next().unwrap().unwrap();
        let url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .trim_end_matches(',')
            .to_string();
        Server::collecting(child, url, vec![first], lines)
    }

    /// A server that may say nothing (`-q`), on the `addr` its arguments name: ready once it
    /// accepts a connection there.
    pub fn start_at(args: &[&str], dir: &std::path::Path, addr: &str) -> Server {
        let (child, lines) = spawn(args, dir, &[]);
        let server = Server::collecting(child, format!("http://{addr}"), Vec::new(), lines);
        crate::common::wait_until(addr, Duration::from_secs(20), || {
            std::net::TcpStream::connect(addr).is_ok()
        });
        server
    }

    /// Collects the rest of `lines` in the background, after those already read.
    fn collecting(child: Child, url: String, read: Vec<String>, lines: Lines) -> Server {
        let log = Arc::new(Mutex::new(read));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Server { child, url, log }
    }

    /// The listener's base, `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        self.url.split("/webhook").next().unwrap().to_string()
    }

    /// `127.0.0.1:PORT`, for raw sockets.
    pub fn host(&self) -> String {
        self.base().trim_start_matches("http://").to_string()
    }

    pub fn webhook(&self) -> String {
        format!("{}/webhook/{SECRET}", self.base())
    }

    pub fn lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit code once it has stopped.
    pub fn stop(&mut self) -> Option<i32> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{:?} did not stop",
                self.url
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

type Lines = std::io::Lines<BufReader<std::process::ChildStderr>>;

/// The server's process, in `dir`, with its stderr to read.
fn spawn(args: &[&str], dir: &std::path::Path, env: &[(&str, &std::ffi::OsStr)]) -> (Child, Lines) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cosmocast"))
        .args(args)
        .current_dir(dir)
        // Never the user's ledger: the default place is inside the test's folder.
        .env_remove("COSMOCAST_LEDGER")
        .env("XDG_DATA_HOME", dir.join("xdg"))
        .env("COSMOCAST_WEBHOOK_SECRET", SECRET)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    (child, lines)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
