//! The real binary as a child process: started on 127.0.0.1:0, its port read from the log
//! line it prints, killed with SIGKILL or stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_access-broker");

pub struct Node {
    pub child: Child,
    pub url: String,
}

impl Node {
    /// Starts `access-broker serve` with a config file and a store URL; waits for its
    /// listening line (at most 30 s).
    pub fn start(config: &Path, store: &str, env: &[(&str, &str)]) -> Node {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            store,
            "--config",
        ])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && line.contains("listening on ") {
                    let addr = line
                        .split("listening on ")
                        .nth(1)
                        .and_then(|s| s.split_whitespace().next())
                        .map(str::to_owned);
                    let _ = tx.send(addr);
                    sent = true;
                }
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("[node] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten()
            .expect("node printed its address");
        Node {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// Sends SIGTERM and waits for the exit; its code (`None`: ended by a signal).
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().ok().and_then(|s| s.code())
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
