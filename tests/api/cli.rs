//! The binary: `--version`, `check-config`, startup errors (exit 2 naming the problem), and
//! a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_access-broker");

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn version() {
    let out = Command::new(BIN).arg("--version").output().expect("runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_config_reports_groups_or_names_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    let good = write(
        &dir,
        "good.toml",
        "[resource_groups.DNIS]\nnumbers = [\"100-199\", \"7\"]\n",
    );
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("DNIS") && stdout.contains("101"),
        "{stdout}"
    );

    let cases = [
        (
            "[resource_groups.DNIS]\nnumbers = [\"199-100\"]\n",
            "resource_groups.DNIS.numbers",
        ),
        (
            "[resource_groups.DNIS]\nnumbers = [\"1\"]\nallocation = \"fifo\"\n",
            "allocation",
        ),
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ("[server]\nbogus = 1\n", "bogus"),
        ("[auth]\nusername = \"x\"\n", "auth"),
    ];
    for (text, key) in cases {
        let bad = write(&dir, "bad.toml", text);
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&bad)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("bad.toml") && stderr.contains(key),
            "{text} -> {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
    let out = Command::new(BIN)
        .args(["check-config", "--config", "/no/such/file.toml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.toml"));
}

#[test]
fn bad_store_url_exits_2_naming_it() {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--store", "mysql://x"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mysql://x"));
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ACCESS_BROKER_STORE", "sqlite:///proc/forbidden/x.db")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "env var is read too");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/proc/forbidden/x.db"));
}

#[test]
fn serves_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let store = format!("sqlite://{}", dir.path().join("a.db").display());
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--store", &store])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let line = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on"))
        .expect("a listening line");
    assert!(line.contains("DNIS=100") && line.contains(&store), "{line}");
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("address")
        .to_owned();
    assert!(!addr.ends_with(":0"), "the real port is shown: {addr}");
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = child.wait().expect("exits");
    assert_eq!(status.code(), Some(0));
}
