//! Secrets outside the config file: `password_file` (first line of a file) and the
//! `ACCESS_BROKER_*_USERNAME` / `_PASSWORD` variables, on the real binary with HTTP Basic.

use std::process::Command;
use std::time::Duration;

use crate::support::limit::within;
use crate::support::process::{BIN, Node};

const GROUP: &str = "[resource_groups.DNIS]\nnumbers = [\"6504660000\"]\n";

/// POST /genesys/1/storage/30 (guarded by `[auth]`) with these credentials; the status.
async fn store_with(url: &str, user: &str, password: Option<&str>) -> u16 {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut req = client
        .post(format!("{url}/genesys/1/storage/30"))
        .form(&[("a", "b")]);
    if let Some(p) = password {
        req = req.basic_auth(user, Some(p));
    }
    req.send().await.expect("answer").status().as_u16()
}

#[tokio::test]
async fn a_password_from_a_file_opens_basic_auth() {
    within(async {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("gms.pw"), "from-the-file\n").expect("write");
        let config = dir.path().join("c.toml");
        // Relative to the config file's folder, not to the working directory.
        std::fs::write(
            &config,
            format!("{GROUP}[auth]\nusername = \"gms\"\npassword_file = \"gms.pw\"\n"),
        )
        .expect("write");
        let node = Node::start(&config, "memory://", &[]);
        assert_eq!(
            store_with(&node.url, "gms", Some("from-the-file")).await,
            200
        );
        assert_eq!(
            store_with(&node.url, "gms", Some("from-the-file\n")).await,
            401
        );
        assert_eq!(store_with(&node.url, "gms", None).await, 401);
    })
    .await
}

#[tokio::test]
async fn credentials_from_the_environment_beat_the_file() {
    within(async {
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("c.toml");
        std::fs::write(&config, GROUP).expect("write");
        let node = Node::start(
            &config,
            "memory://",
            &[
                ("ACCESS_BROKER_AUTH_USERNAME", "envuser"),
                ("ACCESS_BROKER_AUTH_PASSWORD", "from-env"),
            ],
        );
        assert_eq!(
            store_with(&node.url, "envuser", Some("from-env")).await,
            200
        );
        assert_eq!(
            store_with(&node.url, "envuser", None).await,
            401,
            "env created [auth]"
        );
        drop(node);

        std::fs::write(
            &config,
            format!("{GROUP}[auth]\nusername = \"gms\"\npassword = \"in-file\"\n"),
        )
        .expect("write");
        let node = Node::start(
            &config,
            "memory://",
            &[("ACCESS_BROKER_AUTH_PASSWORD", "from-env")],
        );
        assert_eq!(store_with(&node.url, "gms", Some("from-env")).await, 200);
        assert_eq!(store_with(&node.url, "gms", Some("in-file")).await, 401);
    })
    .await
}

/// (config text, extra environment, what stderr must name)
type Case = (String, Vec<(&'static str, &'static str)>, Vec<String>);

#[test]
fn bad_secret_settings_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("pw"), "x\n").expect("write");
    let missing = dir.path().join("missing.pw");
    let cases: [Case; 4] = [
        (
            format!("{GROUP}[auth]\nusername = \"u\"\npassword = \"p\"\npassword_file = \"pw\"\n"),
            vec![],
            vec!["auth.password_file".into(), "auth.password".into()],
        ),
        (
            format!(
                "{GROUP}[auth.admin]\nusername = \"u\"\npassword_file = \"{}\"\n",
                missing.display()
            ),
            vec![],
            vec![
                "auth.admin.password_file".into(),
                missing.display().to_string(),
            ],
        ),
        (
            GROUP.to_owned(),
            vec![("ACCESS_BROKER_ADMIN_USERNAME", "ops")],
            vec!["ACCESS_BROKER_ADMIN_PASSWORD".into()],
        ),
        (
            format!(
                "{GROUP}[services.s]\ntype = \"session\"\nusername = \"u\"\npassword_file = \"{}\"\n",
                missing.display()
            ),
            vec![],
            vec![
                "services.s.password_file".into(),
                missing.display().to_string(),
            ],
        ),
    ];
    let config = dir.path().join("c.toml");
    for (text, env, names) in cases {
        std::fs::write(&config, &text).expect("write");
        for sub in ["serve", "check-config"] {
            let mut cmd = Command::new(BIN);
            cmd.arg(sub).arg("--config").arg(&config);
            if sub == "serve" {
                cmd.args(["--listen", "127.0.0.1:0", "--store", "memory://"]);
            }
            for (k, v) in &env {
                cmd.env(k, v);
            }
            let out = cmd.output().expect("runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{sub} {text}: {stderr}");
            for name in &names {
                assert!(
                    stderr.contains(name.as_str()),
                    "{sub} {text}: {name} in {stderr}"
                );
            }
            assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
            assert!(!stderr.contains("\"p\""), "no secret echoed: {stderr}");
        }
    }
}
