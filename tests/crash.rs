//! Crash test: a real process on a SQLite file takes many parallel request-access calls and is
//! killed with SIGKILL in the middle; restarted on the same file, every reservation it had
//! answered is still there and matches (with its code), and no number was answered twice.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::process::{Node, load_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_reservations_survive_sigkill() {
    support::limit::within(kill_and_restart()).await;
}

async fn kill_and_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("crash.toml");
    std::fs::write(&config, load_config("5000000-5001999")).expect("config");
    let store = format!("sqlite://{}", dir.path().join("crash.db").display());
    let mut node = Node::start(&config, &store, &[]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");

    // number -> (session, code), only for answers the client fully received.
    let answered: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, answered) = (client.clone(), node.url.clone(), answered.clone());
            tokio::spawn(async move {
                for _ in 0..10_000 {
                    let Ok(r) = client
                        .post(format!("{url}/genesys/1/service/callback"))
                        .form(&[("who", "crash")])
                        .send()
                        .await
                    else {
                        return;
                    };
                    let Ok(s) = r.json::<serde_json::Value>().await else {
                        return;
                    };
                    let id = s["_id"].as_str().unwrap_or_default().to_owned();
                    let req = client
                        .post(format!("{url}/genesys/1/service/request-access"))
                        .form(&[("_id", id.as_str())]);
                    let Ok(r) = req.send().await else { return };
                    if r.status() != 200 {
                        continue;
                    }
                    let Ok(body) = r.json::<serde_json::Value>().await else {
                        return;
                    };
                    let number = body["_access_number"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let code = body["_access_code"].as_str().unwrap_or_default().to_owned();
                    let previous = answered
                        .lock()
                        .expect("lock")
                        .insert(number.clone(), (id, code));
                    assert!(previous.is_none(), "number {number} answered twice");
                }
            })
        })
        .collect();
    // Let the load run, then kill the process mid-flight.
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if answered.lock().expect("lock").len() >= 600 {
            break;
        }
    }
    node.kill9();
    for w in workers {
        w.await.expect("worker");
    }
    let answered = answered.lock().expect("lock").clone();
    assert!(answered.len() >= 600, "load ran: {}", answered.len());

    let node = Node::start(&config, &store, &[]);
    for (number, (id, code)) in &answered {
        let url = format!("{}/genesys/1/service/match-interaction", node.url);
        let r = client
            .post(url)
            .form(&[
                ("_access_number", number.as_str()),
                ("_access_code", code.as_str()),
            ])
            .send()
            .await
            .expect("match");
        assert_eq!(
            r.status(),
            200,
            "answered reservation on {number} lost after SIGKILL"
        );
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["_id"].as_str(), Some(id.as_str()));
    }
    eprintln!(
        "crash test: {} answered reservations all matched after SIGKILL and restart",
        answered.len()
    );
}
