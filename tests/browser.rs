//! Browser test: the management page in a real headless Chromium (Debian's chromium and
//! chromium-driver), driven over WebDriver. It opens the overview, adds a number through the
//! form, sees a reservation made through the GMS API appear with a countdown, releases it from
//! the page, and sees the number free. A second test serves the app behind a reverse proxy
//! under `/broker/` (as nginx's `location /broker/ { proxy_pass http://…/; }` does) and makes
//! a change from the page through it.
//!
//! It runs in a build with `ACCESS_BROKER_BROWSER_TESTS=1` (`.ci/run` sets it) and is listed as
//! ignored otherwise; once asked for, a missing chromedriver is a failure, not a skip.
//! Screenshots go to `target/screenshots/`; `ACCESS_BROKER_SCREENSHOT_DIR=docs/screenshots`
//! (relative to the crate) refreshes the README's images instead.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use access_broker::app::App;
use access_broker::config::Config;
use access_broker::store::{self, StoreOptions, StoreUrl};
use fantoccini::{Client, ClientBuilder, Locator};

mod support;

const CONFIG: &str = r#"
[resource_groups.DNIS]
numbers = ["6504660000-6504660004"]
booking_expiration_timeout = 120
[resource_groups.SALES]
numbers = ["6504661000-6504661019"]
allocation = "least-recently-used"
[services.request-access]
type = "request-access"
_resource_group = "DNIS"
[services.callback]
type = "session"
_ttl = 600
"#;

/// chromedriver and the browser profile folder, both gone when the test ends.
struct Driver {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test that drives Chromium: run only with `ACCESS_BROKER_BROWSER_TESTS=1` (else listed as
/// ignored, with how to enable it), two runtime threads, within the suite's time limit.
macro_rules! browser_test {
    ($name:ident, $flow:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(
            not(browser_tests),
            ignore = "needs Chromium and chromium-driver: set ACCESS_BROKER_BROWSER_TESTS=1 to run"
        )]
        async fn $name() {
            support::limit::within($flow()).await;
        }
    };
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn start_browser() -> (Driver, Client) {
    assert!(
        Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_ok(),
        "ACCESS_BROKER_BROWSER_TESTS is set but chromedriver is not on PATH: \
         apt-get install -y chromium chromium-driver"
    );
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver");
    let profile = tempfile::tempdir().expect("profile");
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                     format!("--user-data-dir={}", profile.path().display())]
        }
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let driver = Driver {
        child,
        _profile: profile,
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let started = Instant::now();
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (driver, client),
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver did not start a session: {e}"),
        }
    }
}

async fn start_app() -> String {
    let (config, _) = Config::from_toml(CONFIG, "browser.toml").expect("config");
    let store = store::open(&StoreUrl::Memory, &StoreOptions::default())
        .await
        .expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = App::build(config, listener, store).await.expect("app");
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(app.run(std::future::pending()));
    url
}

/// A session (`callback` with `fields`) and its request-access, through the GMS API: the
/// session's id and the access answer.
async fn reserve(
    http: &reqwest::Client,
    base: &str,
    fields: &[(&str, &str)],
) -> (String, serde_json::Value) {
    let session: serde_json::Value = http
        .post(format!("{base}/genesys/1/service/callback"))
        .form(fields)
        .send()
        .await
        .expect("session")
        .json()
        .await
        .expect("json");
    let id = session["_id"].as_str().expect("id").to_owned();
    let access = request_access(http, base, &id).await;
    (id, access)
}

/// A request-access for session `id`; its answer.
async fn request_access(http: &reqwest::Client, base: &str, id: &str) -> serde_json::Value {
    http.post(format!("{base}/genesys/1/service/request-access"))
        .form(&[("_id", id)])
        .send()
        .await
        .expect("access")
        .json()
        .await
        .expect("json")
}

/// Finds and clicks an element, again if the page re-rendered it in between (the page
/// refreshes itself, so a found element can go stale before the click lands).
async fn click(c: &Client, css: &str) {
    let clicked = soon(c, css, Duration::from_secs(10), |e| async move {
        e.click().await.map(drop)
    });
    clicked.await
}

/// The element, once the page shows it (a page opened by address renders after its first
/// fetch: finding at once failed under load).
async fn find_soon(c: &Client, css: &str) -> fantoccini::elements::Element {
    soon(c, css, Duration::from_secs(25), |e| async move { Ok(e) }).await
}

/// Finds the element and does `act` with it, again until both succeed or `within` has
/// passed (then panics).
async fn soon<T, F, Fut>(c: &Client, css: &str, within: Duration, act: F) -> T
where
    F: Fn(fantoccini::elements::Element) -> Fut,
    Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
{
    let started = Instant::now();
    loop {
        let done = match c.find(Locator::Css(css)).await {
            Ok(e) => act(e).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(value) => return value,
            Err(_) if started.elapsed() < within => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{css}: {e:?}"),
        }
    }
}

/// Waits (at most 25 s) until the element's text satisfies `ok`.
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    // Generous: CI runs the four browser tests at once, each with its own Chromium, on two
    // cores; one search answered in 8 s locally missed a 10 s wait there once.
    const PATIENCE: Duration = Duration::from_secs(25);
    let started = Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(text) = e.text().await
        {
            if ok(&text) {
                return text;
            }
            if started.elapsed() > PATIENCE {
                panic!("{css}: text {text:?} never matched");
            }
        }
        assert!(started.elapsed() < PATIENCE, "{css} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `target/screenshots/` (beside cargo's `target/tmp`), so a test run never writes into
/// tracked files; `ACCESS_BROKER_SCREENSHOT_DIR` (relative to the crate) overrides it.
fn screenshot_dir() -> std::path::PathBuf {
    match std::env::var_os("ACCESS_BROKER_SCREENSHOT_DIR") {
        Some(dir) => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
        None => std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target directory")
            .join("screenshots"),
    }
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join(name), png).expect("write screenshot");
}

browser_test!(an_operator_sees_and_releases_a_reservation, operator_flow);

async fn operator_flow() {
    let (_driver, c) = start_browser().await;
    let base = start_app().await;
    let http = reqwest::Client::new();

    c.goto(&format!("{base}/ui")).await.expect("open overview");
    wait_text(&c, "[data-testid=group-row-DNIS] [data-testid=size]", |t| {
        t == "5"
    })
    .await;
    wait_text(
        &c,
        "[data-testid=group-row-SALES] [data-testid=free]",
        |t| t == "20",
    )
    .await;
    // Its utilisation bar is empty: the width is set through the CSSOM (a style attribute,
    // refused by the page's CSP, left every bar drawn full).
    let widths = c
        .execute(
            "const bar = document.querySelector('[data-testid=group-row-SALES] .bar');
             return [bar.getBoundingClientRect().width, bar.firstChild.getBoundingClientRect().width];",
            vec![],
        )
        .await
        .expect("bar widths");
    assert_eq!(
        widths[1].as_f64(),
        Some(0.0),
        "an unused group's bar: {widths}"
    );
    assert!(widths[0].as_f64().is_some_and(|w| w > 0.0), "{widths}");

    // Add a number through the form, and see a bad range refused with the API's message.
    click(&c, "[data-testid=group-link-DNIS]").await;
    wait_text(&c, "[data-testid=group-title]", |t| t == "Group DNIS").await;
    // The config file defines DNIS: the page says its changes last until the next start.
    wait_text(&c, "[data-testid=config-note]", |t| {
        t.contains("next start")
    })
    .await;
    let input = c
        .find(Locator::Css("[data-testid=add-input]"))
        .await
        .expect("input");
    input
        .send_keys("6504669999-6504669990")
        .await
        .expect("type");
    click(&c, "[data-testid=add-submit]").await;
    let message = wait_text(&c, "[data-testid=add-error]", |t| !t.is_empty()).await;
    assert!(
        message.starts_with("numbers:") && message.contains("start is greater than end"),
        "{message}"
    );
    let input = c
        .find(Locator::Css("[data-testid=add-input]"))
        .await
        .expect("input");
    input.clear().await.expect("clear");
    input.send_keys("6504669999").await.expect("type");
    click(&c, "[data-testid=add-submit]").await;
    wait_text(
        &c,
        "[data-testid=number-6504669999] [data-testid=state]",
        |t| t == "free",
    )
    .await;

    // A reservation made through the GMS API shows up with its session and a countdown.
    let (id, access) = reserve(&http, &base, &[("who", "Ann")]).await;
    let number = access["_access_number"]
        .as_str()
        .expect("number")
        .to_owned();
    let row = format!("[data-testid=number-{number}]");
    wait_text(&c, &format!("{row} [data-testid=state]"), |t| {
        t == "reserved"
    })
    .await;
    let first = wait_text(&c, &format!("{row} [data-testid=left]"), |t| {
        t.parse::<u32>().is_ok_and(|s| s > 100)
    })
    .await;
    let later = wait_text(&c, &format!("{row} [data-testid=left]"), |t| t != first).await;
    assert!(
        later.parse::<u32>().expect("seconds") < first.parse::<u32>().expect("seconds"),
        "the countdown ticks down"
    );
    let page = c
        .find(Locator::Css(&row))
        .await
        .expect("row")
        .text()
        .await
        .expect("text");
    assert!(
        page.contains(&id),
        "the holder's session id is shown: {page}"
    );
    screenshot(&c, "group.png").await;

    // Release it from the page: the number is free again, in the page and in the API.
    click(&c, &format!("[data-testid=release-{number}]")).await;
    wait_text(&c, &format!("{row} [data-testid=state]"), |t| t == "free").await;
    let found: serde_json::Value = http
        .get(format!(
            "{base}/genesys/1/admin/reservations?number={number}"
        ))
        .send()
        .await
        .expect("find")
        .json()
        .await
        .expect("json");
    assert_eq!(found["reservations"].as_array().map(Vec::len), Some(0));

    // The overview shows the new size; the search box finds a live reservation.
    let again = request_access(&http, &base, &id).await;
    c.goto(&format!("{base}/ui/#/")).await.expect("overview");
    wait_text(&c, "[data-testid=group-row-DNIS] [data-testid=size]", |t| {
        t == "6"
    })
    .await;
    wait_text(
        &c,
        "[data-testid=group-row-DNIS] [data-testid=reserved]",
        |t| t == "1",
    )
    .await;
    screenshot(&c, "overview.png").await;
    let search = c
        .find(Locator::Css("[data-testid=search-input]"))
        .await
        .expect("search");
    search
        .send_keys(again["_access_number"].as_str().expect("number"))
        .await
        .expect("type");
    click(&c, "[data-testid=search-form] button").await;
    let results = wait_text(&c, "[data-testid=results]", |t| t.contains(&id)).await;
    assert!(results.contains("DNIS"));
    c.close().await.expect("close");
}

/// A prefix-stripping reverse proxy: `/broker/<rest>` goes to `<upstream>/<rest>`, anything
/// else answers 404 and is noted, so a page that reached for a root path shows up.
struct Proxy {
    url: String,
    outside_prefix: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: String,
    outside_prefix: Arc<Mutex<Vec<String>>>,
}

async fn start_proxy(upstream: &str) -> Proxy {
    let outside_prefix = Arc::new(Mutex::new(Vec::new()));
    let state = Upstream {
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        url: upstream.to_owned(),
        outside_prefix: outside_prefix.clone(),
    };
    let router = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Proxy {
        url,
        outside_prefix,
    }
}

async fn forward(
    axum::extract::State(up): axum::extract::State<Upstream>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let Some(rest) = path.strip_prefix("/broker/") else {
        if let Ok(mut seen) = up.outside_prefix.lock() {
            seen.push(path.to_owned());
        }
        return (axum::http::StatusCode::NOT_FOUND, "outside /broker/").into_response();
    };
    let mut out = up
        .client
        .request(req.method().clone(), format!("{}/{rest}", up.url));
    for (name, value) in req.headers() {
        if name != axum::http::header::HOST {
            out = out.header(name, value);
        }
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), 1 << 20).await else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    let Ok(resp) = out.body(body).send().await else {
        return axum::http::StatusCode::BAD_GATEWAY.into_response();
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap_or_default();
    let mut answer = (status, body).into_response();
    for (name, value) in &headers {
        if name != axum::http::header::CONTENT_LENGTH
            && name != axum::http::header::TRANSFER_ENCODING
        {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

browser_test!(the_page_works_behind_a_proxy_under_a_prefix, prefix_flow);

async fn prefix_flow() {
    let (_driver, c) = start_browser().await;
    let base = start_app().await;
    let proxy = start_proxy(&base).await;

    // `/broker/ui` redirects to `/broker/ui/` (not `/ui/`), whose page loads its groups.
    c.goto(&format!("{}/broker/ui", proxy.url))
        .await
        .expect("open overview");
    wait_text(&c, "[data-testid=group-row-DNIS] [data-testid=size]", |t| {
        t == "5"
    })
    .await;
    let here = c.current_url().await.expect("url");
    assert_eq!(here.path(), "/broker/ui/");

    // A change made from the page goes through the prefix and shows in Recent changes.
    click(&c, "[data-testid=group-link-SALES]").await;
    wait_text(&c, "[data-testid=group-title]", |t| t == "Group SALES").await;
    c.find(Locator::Css("[data-testid=add-input]"))
        .await
        .expect("input")
        .send_keys("6504661999")
        .await
        .expect("type");
    click(&c, "[data-testid=add-submit]").await;
    wait_text(
        &c,
        "[data-testid=number-6504661999] [data-testid=state]",
        |t| t == "free",
    )
    .await;
    wait_text(
        &c,
        "[data-testid=recent-changes] [data-testid=change]",
        |t| {
            t.contains("anonymous")
                && t.contains("add numbers SALES")
                && t.contains("1 numbers added")
        },
    )
    .await;
    let page: serde_json::Value = reqwest::get(format!("{base}/genesys/1/admin/groups/SALES"))
        .await
        .expect("group")
        .json()
        .await
        .expect("json");
    assert_eq!(page["size"], 21, "the change reached the app");
    // The browser's own `/favicon.ico` guess is not the page's doing.
    let outside: Vec<String> = proxy
        .outside_prefix
        .lock()
        .expect("lock")
        .iter()
        .filter(|p| p.as_str() != "/favicon.ico")
        .cloned()
        .collect();
    assert!(
        outside.is_empty(),
        "the page asked for paths outside /broker/: {outside:?}"
    );
    c.close().await.expect("close");
}

/// Waits (at most 20 s: the page may wait for its next refresh) until an attribute of an
/// element differs from `before`, and returns it.
async fn wait_attr_change(c: &Client, css: &str, attr: &str, before: &str) -> String {
    let started = Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(Some(now)) = e.attr(attr).await
            && now != before
        {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{css} [{attr}] never changed from {before:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn attr(c: &Client, css: &str, attr: &str) -> String {
    let started = Instant::now();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(Some(value)) = e.attr(attr).await
        {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{css} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

browser_test!(the_charts_move_when_reservations_are_made, charts_flow);

async fn charts_flow() {
    let (_driver, c) = start_browser().await;
    let base = start_app().await;
    let http = reqwest::Client::new();
    c.goto(&format!("{base}/ui")).await.expect("open overview");
    let requests = "[data-testid=chart-DNIS-rates] polyline[data-series=requests]";
    let used = "[data-testid=chart-DNIS-utilisation] polyline[data-series=used]";
    let (requests_before, used_before) = (
        attr(&c, requests, "points").await,
        attr(&c, used, "points").await,
    );
    for who in ["Ann", "Bob", "Cy"] {
        let (_, access) = reserve(&http, &base, &[("who", who)]).await;
        assert!(access["_access_number"].is_string(), "{access}");
    }
    wait_attr_change(&c, requests, "points", &requests_before).await;
    let used_after = wait_attr_change(&c, used, "points", &used_before).await;
    // 3 of 5 numbers: the utilisation line ends higher than it started (y grows downwards).
    let last_y = |points: &str| -> f64 {
        points
            .split_whitespace()
            .last()
            .and_then(|p| p.split(',').nth(1))
            .and_then(|y| y.parse().ok())
            .expect("a point")
    };
    assert!(
        last_y(&used_after) < last_y(&used_before),
        "{used_before} → {used_after}"
    );
    screenshot(&c, "charts.png").await;
    c.close().await.expect("close");
}

/// The contract's demo of issue 13: a number cooling after its match and one quarantined by
/// two stray calls are shown as such, with the stray count, and freed from the page.
const RULES_CONFIG: &str = r#"
[resource_groups.DNIS]
numbers = ["6504660000-6504660004"]
cool_down = 60
quarantine_after_stray_calls = 2
[services.request-access]
type = "request-access"
_resource_group = "DNIS"
[services.match-interaction]
type = "match-interaction"
[services.callback]
type = "session"
_ttl = 600
"#;

browser_test!(
    an_operator_frees_a_cooling_and_a_quarantined_number,
    rules_flow
);

async fn rules_flow() {
    let (_driver, c) = start_browser().await;
    let (config, _) = Config::from_toml(RULES_CONFIG, "rules.toml").expect("config");
    let store = store::open(&StoreUrl::Memory, &StoreOptions::default())
        .await
        .expect("store");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = App::build(config, listener, store).await.expect("app");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run(std::future::pending()));
    let http = reqwest::Client::new();
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        http.post(format!("{base}{path}")).form(&form).send()
    };

    // A reservation matched: its number rests for 60 s.
    let session: serde_json::Value = post("/genesys/1/service/callback", vec![])
        .await
        .expect("session")
        .json()
        .await
        .expect("json");
    let id = session["_id"].as_str().expect("id").to_owned();
    let access: serde_json::Value = post("/genesys/1/service/request-access", vec![("_id", id)])
        .await
        .expect("access")
        .json()
        .await
        .expect("json");
    let cooling = access["_access_number"]
        .as_str()
        .expect("number")
        .to_owned();
    let matched = post(
        "/genesys/1/service/match-interaction",
        vec![("_access_number", cooling.clone())],
    )
    .await
    .expect("match");
    assert_eq!(matched.status(), 200);

    // Two calls on a number nobody holds: quarantined.
    let stray = "6504660004".to_owned();
    for _ in 0..2 {
        let miss = post(
            "/genesys/1/service/match-interaction",
            vec![("_access_number", stray.clone())],
        )
        .await
        .expect("stray call");
        assert_eq!(miss.status(), 404);
    }

    c.goto(&format!("{base}/ui/#/group/DNIS"))
        .await
        .expect("group page");
    let row = |n: &str| format!("[data-testid=number-{n}]");
    wait_text(&c, &format!("{} [data-testid=state]", row(&cooling)), |t| {
        t == "cooling"
    })
    .await;
    wait_text(&c, &format!("{} [data-testid=left]", row(&cooling)), |t| {
        t.parse::<u32>().is_ok_and(|s| s > 0 && s <= 60)
    })
    .await;
    wait_text(&c, &format!("{} [data-testid=state]", row(&stray)), |t| {
        t == "quarantined"
    })
    .await;
    wait_text(&c, &format!("{} [data-testid=stray]", row(&stray)), |t| {
        t == "2"
    })
    .await;
    screenshot(&c, "rules.png").await;

    click(&c, &format!("[data-testid=free-{cooling}]")).await;
    wait_text(&c, &format!("{} [data-testid=state]", row(&cooling)), |t| {
        t == "free"
    })
    .await;
    click(&c, &format!("[data-testid=free-{stray}]")).await;
    wait_text(&c, &format!("{} [data-testid=state]", row(&stray)), |t| {
        t == "free"
    })
    .await;

    // The group's rules are on its settings form, and the form changes them (it had only
    // the allocation and the booking time: a group made on the page got no cool-down, no
    // grace, no quarantine, and the page never said so; an outside audit).
    assert_eq!(
        attr(&c, "[data-testid=cool-down-input]", "value").await,
        "60"
    );
    assert_eq!(
        attr(&c, "[data-testid=quarantine-input]", "value").await,
        "2"
    );
    let mut typed = false;
    for _ in 0..5 {
        // A refresh may draw the untouched form again between finding and typing.
        let field = find_soon(&c, "[data-testid=cool-down-input]").await;
        if field.clear().await.is_ok() && field.send_keys("15").await.is_ok() {
            typed = true;
            break;
        }
    }
    assert!(typed, "typed into the cool-down field");
    // Another operator changes a rule meanwhile: the form being typed in still shows 2, and
    // saving must not put it back (the form sent every field).
    let other = http
        .put(format!("{base}/genesys/1/admin/groups/DNIS"))
        .form(&[("quarantine_after_stray_calls", "3")])
        .send()
        .await
        .expect("put");
    assert_eq!(other.status(), 200);
    click(&c, "[data-testid=settings] button[type=submit]").await;
    let started = Instant::now();
    loop {
        let group: serde_json::Value = http
            .get(format!("{base}/genesys/1/admin/groups/DNIS?limit=1"))
            .send()
            .await
            .expect("group")
            .json()
            .await
            .expect("json");
        if group["cool_down"] == 15 {
            assert_eq!(
                group["quarantine_after_stray_calls"], 3,
                "the other operator's change kept: {group}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the form's cool-down never reached the group: {group}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.close().await.expect("close");
}

browser_test!(
    forms_survive_refreshes_and_a_big_group_stays_usable,
    refresh_flow
);

/// The page re-renders on every lifecycle event and every 5 s: a form's typed text and its
/// error were wiped each time, and a 100,000-number group's page (every row rebuilt each
/// refresh) hung the tab.
async fn refresh_flow() {
    let (_driver, c) = start_browser().await;
    let base = start_app().await;
    let http = reqwest::Client::new();

    c.goto(&format!("{base}/ui#/group/DNIS"))
        .await
        .expect("open");
    wait_text(&c, "[data-testid=group-title]", |t| t == "Group DNIS").await;
    let input = c
        .find(Locator::Css("[data-testid=add-input]"))
        .await
        .expect("input");
    input.send_keys("12ab").await.expect("type");
    click(&c, "[data-testid=add-submit]").await;
    wait_text(&c, "[data-testid=add-error]", |t| t.contains("12ab")).await;
    let input = c
        .find(Locator::Css("[data-testid=add-input]"))
        .await
        .expect("input");
    input.clear().await.expect("clear");
    input.send_keys("650466").await.expect("type");
    // A reservation re-renders the page (its row turns reserved).
    let (_, access) = reserve(&http, &base, &[]).await;
    let number = access["_access_number"].as_str().expect("number");
    wait_text(
        &c,
        &format!("[data-testid=number-{number}] [data-testid=state]"),
        |t| t == "reserved",
    )
    .await;
    let kept = c
        .execute(
            "const input = document.querySelector('[data-testid=add-input]');
             return [input.value, document.activeElement === input,
                     document.querySelector('[data-testid=add-error]').textContent];",
            vec![],
        )
        .await
        .expect("form state");
    assert_eq!(kept[0], "650466", "typed text kept: {kept}");
    assert_eq!(kept[1], true, "focus kept: {kept}");
    assert!(
        kept[2].as_str().is_some_and(|t| t.contains("12ab")),
        "error kept: {kept}"
    );

    // A group of 100,000 numbers: the page lists 500 and filters the rest.
    let made = http
        .put(format!("{base}/genesys/1/admin/groups/BIG"))
        .form(&[("numbers", "7000000000-7000099999")])
        .send()
        .await
        .expect("put");
    assert_eq!(made.status(), 201);
    c.goto(&format!("{base}/ui#/group/BIG"))
        .await
        .expect("open");
    wait_text(&c, "[data-testid=numbers-shown]", |t| {
        t.contains("first 500 of 100000")
    })
    .await;
    let started = Instant::now();
    let rows = c
        .execute(
            "return document.querySelectorAll('[data-testid=numbers] tbody tr').length;",
            vec![],
        )
        .await
        .expect("rows");
    assert_eq!(rows, 500);
    // And it asked the API for those only (the whole list is 5.5 MB, fetched on every refresh).
    let biggest = c
        .execute(
            "return Math.max(...performance.getEntriesByType('resource')
                .filter((e) => e.name.includes('groups/BIG')).map((e) => e.encodedBodySize));",
            vec![],
        )
        .await
        .expect("sizes");
    assert!(
        biggest.as_f64().is_some_and(|b| b > 0.0 && b < 500_000.0),
        "{biggest} bytes"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the tab answered after {:?}",
        started.elapsed()
    );
    // A refresh leaves the operator where they were: scrolled down the list, on a row's
    // button (it went back up to the page's start, and the focus to the body).
    let place =
        "return [Math.round(window.scrollY), document.activeElement.getAttribute('aria-label')];";
    let before = c
        .execute(
            &format!(
                "const b = document.querySelector('[data-testid=remove-7000000499]');
                 b.scrollIntoView(); b.focus(); {place}"
            ),
            vec![],
        )
        .await
        .expect("scrolled");
    assert!(before[0].as_f64().is_some_and(|y| y > 1000.0), "{before}");
    let (id, _) = reserve(&http, &base, &[]).await;
    let held = http
        .post(format!("{base}/genesys/1/service/request-access"))
        .form(&[("_id", id.as_str()), ("_resource_group", "BIG")])
        .send()
        .await
        .expect("request-access");
    assert_eq!(held.status(), 200);
    wait_text(
        &c,
        "[data-testid=number-7000000000] [data-testid=state]",
        |t| t == "reserved",
    )
    .await;
    let after = c.execute(place, vec![]).await.expect("place");
    assert_eq!(after, before, "[scrollY, focused button] after a refresh");
    find_soon(&c, "[data-testid=filter-digits]")
        .await
        .send_keys("7000099999")
        .await
        .expect("type");
    wait_text(&c, "[data-testid=numbers-shown]", |t| {
        t.starts_with("1 of 100000")
    })
    .await;

    // Each group's page starts unfiltered (the filter above hid DNIS's numbers), also when
    // reached within the page (a navigation by address reloads it).
    click(&c, "a[href='#/']").await;
    click(&c, "[data-testid=group-link-DNIS]").await;
    wait_text(&c, "[data-testid=numbers-shown]", |t| {
        t.starts_with("5 of 5")
    })
    .await;
    // An untouched settings form follows another operator's change (saving a stale one
    // undid it).
    let before = attr(&c, "[data-testid=timeout-input]", "value").await;
    let changed = http
        .put(format!("{base}/genesys/1/admin/groups/DNIS"))
        .form(&[("booking_expiration_timeout", "77")])
        .send()
        .await
        .expect("put");
    assert_eq!(changed.status(), 200);
    let after = wait_attr_change(&c, "[data-testid=timeout-input]", "value", &before).await;
    assert_eq!(after, "77");

    // The create form creates: an existing name is refused, not changed.
    c.goto(&format!("{base}/ui#/")).await.expect("open");
    let name = find_soon(&c, "[data-testid=create-group] input[name=name]").await;
    name.send_keys("BIG").await.expect("type");
    click(&c, "[data-testid=create-group] button").await;
    wait_text(&c, "[data-testid=create-error]", |t| t.contains("exists")).await;

    // A search the API refuses says why.
    c.goto(&format!("{base}/ui#/search/zzz"))
        .await
        .expect("open");
    wait_text(&c, "[data-testid=search-error]", |t| t.contains("zzz")).await;
    c.close().await.expect("close");
}
