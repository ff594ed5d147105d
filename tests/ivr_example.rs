//! `docs/ivr-example.py` plays the IVR against the real binary (memory://): a session with
//! fields and a coded reservation tied to the caller's number; the script, given the dialled
//! number, the caller and the keyed code, prints the session's fields; with a wrong code it
//! prints the failure and exits 1.

mod support;

use std::path::Path;
use std::process::Command;

use support::process::Node;

async fn post(url: &str, form: &[(&str, &str)]) -> serde_json::Value {
    let r = reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.expect("json")
}

fn ivr(url: &str, args: &[&str]) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ivr-example.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--url", url])
        .args(args)
        .output()
        .expect("python3 runs (it is on the machine; apt-get install python3)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "the script wrote to stderr:\n{err}");
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn ivr_example_prints_the_session_or_the_failure() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo.toml");
    let node = Node::start(&config, "memory://", &[]);
    let b = format!("{}/genesys/1/service", node.url);

    let session = post(
        &format!("{b}/callback"),
        &[
            ("firstname", "Ann"),
            ("reason", "billing"),
            ("order", "A-1042"),
        ],
    )
    .await;
    let id = session["_id"].as_str().expect("_id").to_owned();
    let access = post(
        &format!("{b}/request-access"),
        &[
            ("_id", &id),
            ("_provide_code", "true"),
            ("_phone_number", "+1 (555) 123-4567"),
        ],
    )
    .await;
    let number = access["_access_number"]
        .as_str()
        .expect("number")
        .to_owned();
    let code = access["_access_code"].as_str().expect("code").to_owned();

    // A wrong code first: nothing matches, the reservation stays for the right one.
    let wrong = if code.ends_with('0') {
        format!("{}1", &code[..code.len() - 1])
    } else {
        format!("{}0", &code[..code.len() - 1])
    };
    let (status, out) = ivr(
        &node.url,
        &[&number, "--caller", "+15551234567", "--code", &wrong],
    );
    assert_eq!(status, 1, "{out}");
    assert!(out.starts_with("no match: "), "{out}");

    let (status, out) = ivr(
        &node.url,
        &[&number, "--caller", "+15551234567", "--code", &code],
    );
    assert_eq!(status, 0, "{out}");
    assert!(out.starts_with(&format!("matched session {id}\n")), "{out}");
    for line in [
        "  firstname = Ann",
        "  reason = billing",
        "  order = A-1042",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "{line:?} missing from\n{out}"
        );
    }

    // The match released the number; the demo group's 30 s late-call grace answers the
    // IVR's retry with the same session, marked late.
    let (status, out) = ivr(&node.url, &[&number, "--code", &code]);
    assert_eq!(status, 0, "{out}");
    assert!(
        out.starts_with(&format!("matched session {id} (late call")),
        "{out}"
    );
    // A call with the wrong code finds nothing.
    let (status, out) = ivr(&node.url, &[&number, "--code", &wrong]);
    assert_eq!(status, 1, "{out}");
    assert!(out.contains(&number), "{out}");

    // Nobody listening: an error, exit 2, not a traceback.
    let (status, out) = ivr("http://127.0.0.1:9", &[&number]);
    assert_eq!(status, 2, "{out}");
    assert!(out.starts_with("error: "), "{out}");
}
