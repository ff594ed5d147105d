//! The real binary as a child process: started on 127.0.0.1:0, its port read from the log
//! line it prints, killed with SIGKILL or stopped with SIGTERM.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_access-broker");

pub struct Node {
    pub child: Child,
    pub url: String,
    /// The node's log lines up to and including its listening line.
    pub start_log: Vec<String>,
    /// Its first [`MAX_KEPT`] log lines after the listening line, for a test to check.
    later: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Its first [`MAX_ERRORS`] `ERROR` lines after it, however long it ran: why it answered
    /// a 5xx, for a failing test's message.
    errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// How many of a node's log lines after the listening line are kept.
const MAX_KEPT: usize = 10_000;
/// How many `ERROR` lines [`Node::errors`] gives.
const MAX_ERRORS: usize = 20;

impl Node {
    /// Starts `access-broker serve` with a config file and a store URL; waits for its
    /// listening line (at most 30 s).
    pub fn start(config: &Path, store: &str, env: &[(&str, &str)]) -> Node {
        let args = [
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--store"),
            OsStr::new(store),
            OsStr::new("--config"),
            config.as_os_str(),
        ];
        Node::serve(args, env)
    }

    /// Starts `access-broker serve ARGS` and waits for its listening line (at most 30 s).
    /// Its log is read to the end (a closed pipe would fail the node's last lines) and
    /// echoed with `TEST_LOG` set.
    pub fn serve<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>, env: &[(&str, &str)]) -> Node {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let later = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
        let errors = std::sync::Arc::<std::sync::Mutex<Vec<String>>>::default();
        let (kept, kept_errors) = (later.clone(), errors.clone());
        std::thread::spawn(move || {
            let mut start_log = Some(Vec::new());
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("[node] {line}");
                }
                let Some(mut log) = start_log.take() else {
                    if line.contains("ERROR") {
                        let mut errors = kept_errors.lock().expect("errors");
                        if errors.len() < MAX_ERRORS {
                            errors.push(line.clone());
                        }
                    }
                    let mut kept = kept.lock().expect("log");
                    if kept.len() < MAX_KEPT {
                        kept.push(line);
                    }
                    continue;
                };
                let listening = line.contains("listening on ");
                log.push(line);
                match listening {
                    true => {
                        let _ = tx.send(log);
                    }
                    false => start_log = Some(log),
                }
            }
        });
        let start_log = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("node printed its address");
        let addr = start_log
            .last()
            .and_then(|line| line.split("listening on ").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .expect("an address in the listening line")
            .to_owned();
        Node {
            child,
            url: format!("http://{addr}"),
            start_log,
            later,
            errors,
        }
    }

    /// The node's first `ERROR` lines after its start (at most [`MAX_ERRORS`]).
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().expect("errors").clone()
    }

    /// The node's log lines after its listening line, so far (the first [`MAX_KEPT`]).
    pub fn log_after_start(&self) -> Vec<String> {
        self.later.lock().expect("log").clone()
    }

    /// The listening line.
    pub fn start_line(&self) -> &str {
        self.start_log.last().map_or("", String::as_str)
    }

    /// The listening address, `host:port`.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Sends SIGTERM and waits for the exit; its code (`None`: ended by a signal).
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().ok().and_then(|s| s.code())
    }

    /// Stops (`true`: SIGSTOP) or resumes (SIGCONT) the process: a node that does not run,
    /// its connections left open.
    pub fn pause(&self, stopped: bool) {
        let signal = if stopped { "-STOP" } else { "-CONT" };
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal}");
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs a command that must end by itself (a start that must be refused) for at most 20 s: a
/// binary that serves instead is killed and the test fails then, not at the runner's limit.
pub fn run_ending(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after 20 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// The config of the load tests that run the binary: group DNIS of `numbers` (a range), coded
/// 1800 s reservations, and the match and session services.
pub fn load_config(numbers: &str) -> String {
    format!(
        r#"
[resource_groups.DNIS]
numbers = ["{numbers}"]
[services.request-access]
type = "request-access"
_resource_group = "DNIS"
_provide_code = true
_booking_expiration_timeout = 1800
[services.match-interaction]
type = "match-interaction"
[services.callback]
type = "session"
_ttl = 3600
"#
    )
}
