//! The binary: `--version`, `check-config`, startup errors (exit 2 naming the problem), and
//! a clean stop on SIGTERM.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::support::process::{BIN, Node, run_ending};

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

/// clap's help shows a variable's value beside its flag (`[env: ACCESS_BROKER_STORE=…]`): the
/// store URL's password was printed by `--help`.
#[test]
fn help_keeps_the_store_url_to_itself() {
    for args in [&["--help"][..], &["serve", "--help"], &["backup", "--help"]] {
        let out = Command::new(BIN)
            .args(args)
            .env(
                "ACCESS_BROKER_STORE",
                "postgres://u:SECRETPW@127.0.0.1/x?password=SECRETQ",
            )
            .output()
            .expect("runs");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && help.contains("ACCESS_BROKER_STORE"),
            "{help}"
        );
        assert!(!help.contains("SECRET"), "{args:?}: {help}");
    }
}

/// Loopback written as an IPv4-mapped IPv6 address is loopback: no warning about serving
/// beyond it (there was one).
#[test]
fn a_mapped_loopback_address_is_loopback() {
    let node = Node::serve(
        ["--listen", "[::ffff:127.0.0.1]:0", "--store", "memory://"],
        &[],
    );
    let log = node.start_log.join("\n");
    assert!(log.contains("listening on [::ffff:127.0.0.1]:"), "{log}");
    assert!(!log.contains("beyond loopback"), "{log}");
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
    // No host: nothing to wait for (it was retried for ever).
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--store", "postgres://"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("postgres://"));
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ACCESS_BROKER_STORE", "sqlite:///proc/forbidden/x.db")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "env var is read too");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/proc/forbidden/x.db"));
}

/// A SQLite file that holds another application's tables is refused in one line, untouched:
/// it was taken over (our tables added beside the others, the file switched to WAL), and a
/// table whose name clashed with ours printed migration 1 whole.
#[test]
fn another_applications_sqlite_file_is_refused_untouched() {
    let dir = tempfile::tempdir().expect("dir");
    for table in ["customers (id INTEGER, name TEXT)", "numbers (x INTEGER)"] {
        let path = dir.path().join("theirs.db");
        let _ = std::fs::remove_file(&path);
        let db = rusqlite::Connection::open(&path).expect("file");
        db.execute_batch(&format!("CREATE TABLE {table}; PRAGMA user_version = 0;"))
            .expect("their table");
        drop(db);
        let url = format!("sqlite://{}", path.display());
        let out = run_ending(Command::new(BIN).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &url,
        ]));
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{said}");
        assert_eq!(said.trim_end().lines().count(), 1, "{said}");
        assert!(
            said.contains(&url) && said.contains("not access-broker's"),
            "{said}"
        );
        let db = rusqlite::Connection::open(&path).expect("file");
        let tables: Vec<String> = db
            .prepare("SELECT name FROM sqlite_schema")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("tables");
        assert_eq!(tables.len(), 1, "{tables:?}");
        let mode: String = db
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "delete");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, ["theirs.db"]);
    }
}

#[test]
fn serves_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("dir");
    let store = format!("sqlite://{}", dir.path().join("a.db").display());
    let mut node = Node::serve(["--listen", "127.0.0.1:0", "--store", &store], &[]);
    let line = node.start_line();
    assert!(line.contains("DNIS=100") && line.contains(&store), "{line}");
    assert!(
        !node.addr().ends_with(":0"),
        "the real port is shown: {line}"
    );
    assert_eq!(node.terminate(), Some(0));
}

/// SIGHUP (a closed terminal, a supervisor's "reload") stops the node as SIGTERM does, exit
/// 0: it killed the node by its default action (status 129), requests in flight dropped.
#[test]
fn sighup_stops_the_node_cleanly() {
    let mut node = Node::serve(["--listen", "127.0.0.1:0", "--store", "memory://"], &[]);
    let line = node.start_line().to_owned();
    assert!(
        line.contains("(http)"),
        "the line says what it serves: {line}"
    );
    let sent = Command::new("kill")
        .args(["-HUP", &node.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let status = node.child.wait().expect("exits");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// An address that is taken is named by where it came from: the flag (and its variable) or
/// the file's key (the flag's was named `server.listen`).
#[test]
fn a_taken_address_names_where_it_came_from() {
    let node = Node::serve(["--listen", "127.0.0.1:0", "--store", "memory://"], &[]);
    let taken = node.addr().to_owned();
    let out =
        run_ending(Command::new(BIN).args(["serve", "--listen", &taken, "--store", "memory://"]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!("--listen (ACCESS_BROKER_LISTEN) {taken}: ")),
        "{said}"
    );
    let dir = tempfile::tempdir().expect("dir");
    let path = write(
        &dir,
        "c.toml",
        &format!("[server]\nlisten = \"{taken}\"\nstore = \"memory://\"\n{ONE}{SERVICE}"),
    );
    let out = run_ending(Command::new(BIN).arg("serve").arg("--config").arg(&path));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains(&format!("server.listen {taken}: ")), "{said}");
}

/// The start line gives each group's size as the store holds it: a number the file lists
/// that stays in another group is not counted (the line said G=3 here), and the store's
/// groups the file does not define are listed too (they were left out).
#[test]
fn the_start_line_counts_what_the_store_holds() {
    let dir = tempfile::tempdir().expect("dir");
    let store = format!("sqlite://{}", dir.path().join("a.db").display());
    let first = write(
        &dir,
        "a.toml",
        "[resource_groups.G]\nnumbers = [\"100-101\"]\n[resource_groups.H]\nnumbers = [\"200\"]\n",
    );
    let second = write(
        &dir,
        "b.toml",
        "[resource_groups.G]\nnumbers = [\"100-101\", \"200\"]\n",
    );
    let mut lines = Vec::new();
    for config in [&first, &second] {
        let mut node = Node::start(config, &store, &[]);
        lines.push(node.start_line().to_owned());
        if lines.len() == 2 {
            // An operator adds a number the file does not list: the next start retires it
            // (free, it leaves at once), and the line counts what is left (it said G=3).
            let body = "numbers=300";
            let mut http = std::net::TcpStream::connect(node.addr()).expect("connect");
            write!(
                http,
                "POST /genesys/1/admin/groups/G/numbers HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .expect("send");
            let mut answer = String::new();
            http.read_to_string(&mut answer).expect("answer");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
        assert_eq!(node.terminate(), Some(0));
    }
    let mut node = Node::start(&second, &store, &[]);
    lines.push(node.start_line().to_owned());
    assert_eq!(node.terminate(), Some(0));
    assert!(lines[0].contains("groups=G=2,H=1"), "{}", lines[0]);
    // 200 stayed in H, which the second file does not define: listed after the file's.
    assert!(lines[1].ends_with("groups=G=2,H=1"), "{}", lines[1]);
    assert!(lines[2].ends_with("groups=G=2,H=1"), "{}", lines[2]);
}

/// A SIGTERM at any moment of the start (here 50 ms in, while the config file's 2,000,000
/// numbers are read, and later while they are written to a new SQLite file) stops the node
/// cleanly: exit 0, not the signal's default action, within `shutdown_timeout_ms` (500 ms
/// here): the start is abandoned, not awaited (the runtime waited for the store's loading
/// thread, seconds past the bound).
#[test]
fn sigterm_during_the_start_exits_0_within_the_shutdown_timeout() {
    let dir = tempfile::tempdir().expect("dir");
    let config = write(
        &dir,
        "big.toml",
        "[server]\nshutdown_timeout_ms = 500\n[resource_groups.BIG]\nnumbers = [\"10000000-11999999\"]\n",
    );
    let store = format!("sqlite://{}", dir.path().join("big.db").display());
    for wait_ms in [50, 300, 1500] {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--store",
                &store,
                "--config",
            ])
            .arg(&config)
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        let sent = std::time::Instant::now();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        let status = child.wait().expect("exits");
        let took = sent.elapsed();
        assert_eq!(status.code(), Some(0), "{wait_ms} ms in: {status:?}");
        assert!(
            took < std::time::Duration::from_millis(1500),
            "SIGTERM {wait_ms} ms into the start: exited {took:?} later"
        );
    }
}

/// A start that fails writes nothing: a taken address stops it before the store is made,
/// and a store that cannot open leaves no lock file behind.
#[test]
fn a_failed_start_leaves_no_files() {
    let dir = tempfile::tempdir().expect("dir");
    let config = write(
        &dir,
        "c.toml",
        "[resource_groups.G]\nnumbers = [\"100-101\"]\n",
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let store = dir.path().join("new.db");
    let out = Command::new(BIN)
        .args(["serve", "--listen", &addr, "--store"])
        .arg(format!("sqlite://{}", store.display()))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
    let folder = dir.path().join("a-folder");
    std::fs::create_dir(&folder).expect("folder");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(format!("sqlite://{}", folder.display()))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["a-folder", "c.toml"],
        "nothing but what the test made"
    );
}

/// Runs `check-config` on `text`; (exit code, stdout, stderr).
fn check_config(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(&dir, "c.toml", text);
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("ACCESS_BROKER_AUTH_USERNAME")
        .env_remove("ACCESS_BROKER_AUTH_PASSWORD")
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const ONE: &str = "[resource_groups.DNIS]\nnumbers = [\"6504660000\"]\n";
const SERVICE: &str = "[services.ra]\ntype = \"request-access\"\n_resource_group = \"DNIS\"\n";

#[test]
fn check_config_messages_say_what_is_wrong_plainly() {
    // (config, what stderr must say, what it must not say)
    let cases = [
        (
            format!("{ONE}[services.ra]\ntype = \"request-access\"\n_resource_group = \"DNSI\"\n"),
            "services.ra._resource_group: unknown resource group \"DNSI\"",
            "GroupName",
        ),
        (
            "[server]\nlisen = \"127.0.0.1:1\"\n".to_owned(),
            "server.lisen (line 2): unknown key",
            "unknown field",
        ),
        (
            "server.lisen = 1\n".to_owned(),
            "server.lisen (line 1): unknown key",
            "unknown field",
        ),
        (
            "[server]\nshutdown_timeout_ms = \"abc\"\n".to_owned(),
            "server.shutdown_timeout_ms (line 2): invalid type: string \"abc\"",
            "GroupName",
        ),
        (
            "server.tls.cert = 5\n".to_owned(),
            "server.tls.cert (line 1): invalid type",
            "GroupName",
        ),
        (
            "[auth]\nusername = \"u\"\npasword = \"p\"\n".to_owned(),
            "auth.pasword (line 3): unknown key",
            "unknown field",
        ),
        (
            "[resource_groups.DNIS]\nnumbers = [\"1\"]\ncolour = \"red\"\n".to_owned(),
            "resource_groups.DNIS.colour: unknown key",
            "unknown field",
        ),
        // A key in the wrong case is unknown, not the lower-case key missing.
        (
            "[services.s]\nType = \"session\"\n".to_owned(),
            "services.s.Type: unknown key (keys are lower case: type)",
            "required",
        ),
        // A service's unknown key names the keys its type takes (`_ttl` here), also when
        // the lower-case key is there too.
        (
            "[services.s]\ntype = \"session\"\n_tll = 5\n".to_owned(),
            "services.s._tll: unknown key; a session service takes type, _type, _service, username, password, password_file, _ttl",
            "required",
        ),
        (
            "[services.s]\ntype = \"session\"\nType = \"session\"\n".to_owned(),
            "services.s.Type: unknown key; a session service takes type,",
            "required",
        ),
        (
            "[resource_groups.DNIS]\nnumbers = [\"650-466-0000\"]\n".to_owned(),
            "\"650-466-0000\" is not a number (digits only, no separators: write \"6504660000\")",
            "range \"650",
        ),
        (
            "[resource_groups.DNIS]\nnumbers = [\"650-4660000\"]\n".to_owned(),
            "write it without separators: 6504660000",
            "GroupName",
        ),
        (
            format!("{ONE}[limits]\nrequests_per_second = -5\n"),
            "limits.requests_per_second: -5: must be 0 (off) or more",
            "GroupName",
        ),
        (
            format!("{ONE}[server.tls]\ncert = \"missing-cert.pem\"\nkey = \"k.pem\"\n"),
            "server.tls.cert: ",
            "GroupName",
        ),
    ];
    for (text, says, not) in cases {
        let (code, _, stderr) = check_config(&text);
        assert_eq!(code, Some(2), "{text}");
        assert!(
            stderr.contains(says) && !stderr.contains(not),
            "{text}\n-> {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn check_config_counts_numbers_and_warns_without_services() {
    // (config, stdout must say, stderr must say; both exit 0)
    let cases = [
        (format!("{ONE}{SERVICE}"), "group DNIS: 1 number,", ""),
        (
            format!("[resource_groups.DNIS]\nnumbers = [\"100-101\"]\n{SERVICE}"),
            "group DNIS: 2 numbers,",
            "",
        ),
        (ONE.to_owned(), "group DNIS: 1 number,", "warning: "),
    ];
    for (text, out, err) in cases {
        let (code, stdout, stderr) = check_config(&text);
        assert_eq!(code, Some(0), "{text}: {stderr}");
        assert!(stdout.contains(out), "{text}\n-> {stdout}");
        if err.is_empty() {
            assert!(stderr.is_empty(), "{text}\n-> {stderr}");
        } else {
            assert!(
                stderr.contains(err) && stderr.contains("no [services.*] table"),
                "{text}\n-> {stderr}"
            );
        }
    }
}

#[test]
fn backup_refuses_stores_it_cannot_copy() {
    let dir = tempfile::tempdir().expect("dir");
    let to = dir.path().join("copy.db");
    let cases = [
        ("memory://", "memory://"),
        (
            "postgres://u:pw@127.0.0.1:1/db",
            "use pg_dump for PostgreSQL",
        ),
        (
            "sqlite:///no/such/store.db",
            "sqlite:///no/such/store.db: no such file",
        ),
        // A relative path says where it was looked for: the node's folder is not the
        // current one under `sudo` or cron.
        (
            "sqlite://no/such/store.db",
            "no such file (a relative path, read from /",
        ),
    ];
    for (store, says) in cases {
        let out = Command::new(BIN)
            .args(["backup", "--store", store, "--to"])
            .arg(&to)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{store}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(says) && !stderr.contains("pw@"),
            "{store}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!to.exists(), "nothing written");
    }
    // The store URL comes from the environment too, and from the config file.
    let out = Command::new(BIN)
        .args(["backup", "--to"])
        .arg(&to)
        .env("ACCESS_BROKER_STORE", "memory://")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let config = write(
        &dir,
        "pg.toml",
        "[server]\nstore = \"postgres://u@127.0.0.1:1/db\"\n",
    );
    let out = Command::new(BIN)
        .args(["backup", "--to"])
        .arg(&to)
        .arg("--config")
        .arg(&config)
        .env_remove("ACCESS_BROKER_STORE")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
}

/// Two backups to one target at once: one writes it, the other is refused naming the file
/// (both failed, writing one hidden file between them, and no copy was left); neither leaves
/// its hidden file behind.
#[test]
fn two_backups_to_one_target_leave_one_copy() {
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("store.db");
    {
        let conn = rusqlite::Connection::open(&store).expect("store");
        conn.execute_batch(
            "PRAGMA user_version = 6; CREATE TABLE filler (b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO filler SELECT randomblob(8192) FROM n;",
        )
        .expect("filled");
    }
    let to = dir.path().join("copy.db");
    let run = || {
        Command::new(BIN)
            .args(["backup", "--store"])
            .arg(format!("sqlite://{}", store.display()))
            .arg("--to")
            .arg(&to)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs")
    };
    let (a, b) = (run(), run());
    let outs = [a, b].map(|c| c.wait_with_output().expect("ends"));
    let codes: Vec<_> = outs.iter().map(|o| o.status.code()).collect();
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(2)),
        "one writes, one is refused: {codes:?} {:?}",
        outs.iter()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect::<Vec<_>>()
    );
    let refused = outs
        .iter()
        .find(|o| o.status.code() == Some(2))
        .expect("refused");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("copy.db") && said.contains("exists"),
        "{said}"
    );
    let copy = rusqlite::Connection::open(&to).expect("copy opens");
    let rows: i64 = copy
        .query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
        .expect("copy reads");
    assert_eq!(rows, 2000);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "hidden files left: {left:?}");
}

/// A backup killed outright (`kill -9`) leaves its hidden files; the next backup to the same
/// target removes them, and leaves those of a backup whose process still runs.
#[test]
fn a_backup_removes_what_killed_backups_left() {
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("store.db");
    rusqlite::Connection::open(&store)
        .and_then(|c| c.execute_batch("PRAGMA user_version = 6; CREATE TABLE t (x);"))
        .expect("store");
    // No process has an id past the kernel's largest (2^22); this test's own runs.
    let (dead, alive) = (4_194_304 + 17, std::process::id());
    let hidden =
        |pid: u32, suffix: &str| dir.path().join(format!(".copy.db.partial-{pid}{suffix}"));
    for path in [
        hidden(dead, ""),
        hidden(dead, "-journal"),
        hidden(alive, ""),
    ] {
        std::fs::write(&path, b"half a copy").expect("hidden file");
    }
    backed_up(&store, &dir.path().join("copy.db"), &[]);
    assert!(!hidden(dead, "").exists() && !hidden(dead, "-journal").exists());
    assert!(hidden(alive, "").exists(), "a running process's file stays");
}

/// `check-config` reports the store and address `serve` would use: the environment's beat the
/// file's (it printed the file's), and a bad one is named.
#[test]
fn check_config_applies_the_environment_as_serve_does() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(&dir, "c.toml", &format!("{ONE}{SERVICE}"));
    let run = |store: &str| {
        Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&path)
            .env("ACCESS_BROKER_STORE", store)
            .env("ACCESS_BROKER_LISTEN", "127.0.0.1:9911")
            .output()
            .expect("runs")
    };
    let out = run("memory://");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("store memory://") && said.contains("127.0.0.1:9911"),
        "{said}"
    );
    let out = run("redis://x");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("ACCESS_BROKER_STORE"), "{said}");
}

/// An empty `ACCESS_BROKER_*` variable counts as unset, as systemd's `EnvironmentFile`s and
/// compose files write "not set": clap took it for a value, so `serve` refused to start
/// ("a value is required for '--config'", `"" is not an address`) and `check-config` with it.
#[test]
fn empty_variables_count_as_unset() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(
        &dir,
        "c.toml",
        &format!("[server]\nlisten = \"127.0.0.1:0\"\nstore = \"memory://\"\n{ONE}{SERVICE}"),
    );
    let empty = [
        ("ACCESS_BROKER_LISTEN", ""),
        ("ACCESS_BROKER_STORE", ""),
        ("ACCESS_BROKER_AUTH_USERNAME", ""),
        ("ACCESS_BROKER_AUTH_PASSWORD", ""),
    ];
    let mut node = Node::serve([OsStr::new("--config"), path.as_os_str()], &empty);
    let line = node.start_line().to_owned();
    assert!(
        line.contains("store=memory://") && line.contains("DNIS=1"),
        "{line}"
    );
    assert_eq!(node.terminate(), Some(0));

    let check = |config: &[&std::ffi::OsStr], env: &[(&str, &str)]| {
        let out = Command::new(BIN)
            .arg("check-config")
            .args(config)
            .envs(env.iter().copied())
            .output()
            .expect("runs");
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), said)
    };
    let (code, said) = check(&[OsStr::new("--config"), path.as_os_str()], &empty);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("store memory://"), "{said}");
    let (code, said) = check(&[], &[("ACCESS_BROKER_CONFIG", "")]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("ACCESS_BROKER_CONFIG is empty"), "{said}");
    // An empty value given as a flag is the user's own mistake, named.
    let (code, said) = check(&[OsStr::new("--config"), OsStr::new("")], &[]);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("--config: the config file's path is empty"),
        "{said}"
    );
}

/// `backup --force` over an earlier copy leaves no WAL of that copy beside the new one: a
/// node that served the old copy (a restore drill, killed) left its `-wal`, and SQLite
/// replayed it onto the new copy, so the restore read the drill's data.
#[test]
fn a_forced_backup_leaves_no_old_wal_beside_the_copy() {
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("store.db");
    let to = dir.path().join("copy.db");
    {
        let conn = rusqlite::Connection::open(&store).expect("store");
        conn.execute_batch(
            "PRAGMA user_version = 6; CREATE TABLE filler (n INTEGER);
             INSERT INTO filler VALUES (1), (2), (3);",
        )
        .expect("filled");
    }
    // The old copy, with writes still in its WAL when its node died.
    let stale = dir.path().join("stale-wal");
    {
        let conn = rusqlite::Connection::open(&to).expect("old copy");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE filler (n INTEGER); INSERT INTO filler VALUES (7), (8), (9), (10);",
        )
        .expect("written");
        std::fs::copy(dir.path().join("copy.db-wal"), &stale).expect("wal kept");
    }
    std::fs::copy(&stale, dir.path().join("copy.db-wal")).expect("wal left behind");
    backed_up(&store, &to, &["--force"]);
    let copy = rusqlite::Connection::open(&to).expect("copy opens");
    let rows: Vec<i64> = copy
        .prepare("SELECT n FROM filler ORDER BY n")
        .expect("query")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("read");
    assert_eq!(rows, vec![1, 2, 3], "the copy is the store's, nothing else");
}

/// Runs `backup` of the SQLite store at `store` to `to` (with `extra` flags); it must succeed.
fn backed_up(store: &std::path::Path, to: &std::path::Path, extra: &[&str]) {
    let out = Command::new(BIN)
        .arg("backup")
        .args(extra)
        .arg("--store")
        .arg(format!("sqlite://{}", store.display()))
        .arg("--to")
        .arg(to)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
