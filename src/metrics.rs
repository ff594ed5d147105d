//! Metrics: the Prometheus registry (owned by `AppState`, so parallel tests never share
//! counters) and a per-minute history of each group for the last hour, which the admin API
//! and the pool-size advisor read.

use parking_lot::{Mutex, RwLock};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::GroupStats;

/// A label value as the text format needs it: `\\`, `"` and line feeds escaped.
/// prometheus-client writes a value as it is, and a group or service named with one quote
/// (names may hold any character but `/`) made the whole page unreadable to a scraper.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct LabelText(String);

impl From<&str> for LabelText {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl EncodeLabelValue for LabelText {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        let mut rest = self.0.as_str();
        while let Some(i) = rest.find(['\\', '"', '\n']) {
            encoder.write_str(&rest[..i])?;
            encoder.write_str(match rest.as_bytes()[i] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[i + 1..];
        }
        encoder.write_str(rest)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub service: LabelText,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    pub group: LabelText,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ServiceLabel, Histogram, fn() -> Histogram>,
    reservations: Family<GroupLabel, Counter>,
    refusals: Family<GroupLabel, Counter>,
    matches: Family<OutcomeLabel, Counter>,
    pool_size: Family<GroupLabel, Gauge>,
    pool_free: Family<GroupLabel, Gauge>,
    pool_reserved: Family<GroupLabel, Gauge>,
    pool_cooling: Family<GroupLabel, Gauge>,
    pool_quarantined: Family<GroupLabel, Gauge>,
    lockouts: Family<GroupLabel, Counter>,
    strays: Family<GroupLabel, Counter>,
    events_delivered: Counter,
    events_failed: Counter,
    events_given_up: Counter,
    events_backlog: Gauge,
    store_rebuilds: Counter,
    store_up: Gauge,
    /// hashbrown's map (foldhash) rather than std's (SipHash): every reservation looks its
    /// group up here.
    history: Mutex<hashbrown::HashMap<String, History>>,
    /// `matches` of each outcome, found once (as `by_service` below): one per match.
    matches_by_outcome: RwLock<Vec<(&'static str, Counter)>>,
    /// `reservations` of each group, found once (as `by_service` below): one per request-access.
    reservations_by_group: RwLock<hashbrown::HashMap<String, Counter>>,
    /// The request counters and latency histogram of each service, found once: the families'
    /// own lookup wants an owned label set (a `String` built per request, twice) and hashes
    /// it on every request. Bounded like the labels (configured services, statuses).
    by_service: RwLock<hashbrown::HashMap<String, ServiceHandles>>,
}

/// One service's series: its latency histogram and its counter per status seen so far.
struct ServiceHandles {
    latency: Histogram,
    statuses: Vec<(u16, Counter)>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Names the node in the metrics, as the contract asks of `node_id`:
    /// `access_broker_node_info{node="…"} 1`, the series a dashboard joins on to tell the
    /// nodes of a cluster apart (an info metric rather than a label on every series).
    pub fn for_node(mut self, node: &str) -> Self {
        let info =
            prometheus_client::metrics::info::Info::new(vec![("node", LabelText::from(node))]);
        self.registry.register(
            "node",
            "The node these metrics come from ([server] node_id)",
            info,
        );
        self
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("access_broker");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<ServiceLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let (reservations, refusals) = (Family::default(), Family::default());
        let matches = Family::default();
        let (pool_size, pool_free, pool_reserved) =
            (Family::default(), Family::default(), Family::default());
        registry.register(
            "http_requests",
            "HTTP requests by service and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by service",
            latency.clone(),
        );
        registry.register(
            "reservations",
            "Numbers handed out (new or renewed) by group",
            reservations.clone(),
        );
        registry.register(
            "refusals",
            "request-access refused because the pool was empty",
            refusals.clone(),
        );
        registry.register(
            "matches",
            "match-interaction outcomes (hit, late or miss)",
            matches.clone(),
        );
        registry.register(
            "pool_size",
            "Numbers in service per group",
            pool_size.clone(),
        );
        registry.register("pool_free", "Free numbers per group", pool_free.clone());
        let (pool_cooling, pool_quarantined) = (Family::default(), Family::default());
        let (lockouts, strays) = (Family::default(), Family::default());
        registry.register(
            "pool_cooling",
            "Numbers resting after a reservation (cool_down) per group",
            pool_cooling.clone(),
        );
        registry.register(
            "pool_quarantined",
            "Numbers in quarantine per group",
            pool_quarantined.clone(),
        );
        registry.register(
            "code_lockouts",
            "Reservations cancelled by too many wrong codes, by group",
            lockouts.clone(),
        );
        registry.register(
            "stray_calls",
            "Calls on a number of the group that no live or recently ended reservation expected (stray calls)",
            strays.clone(),
        );
        registry.register(
            "pool_reserved",
            "Reserved numbers per group",
            pool_reserved.clone(),
        );
        let (events_delivered, events_failed, events_given_up) =
            (Counter::default(), Counter::default(), Counter::default());
        let events_backlog = Gauge::default();
        registry.register(
            "events_delivered",
            "Webhook events delivered (answered 2xx)",
            events_delivered.clone(),
        );
        registry.register(
            "events_failed",
            "Webhook delivery attempts that failed and will be retried",
            events_failed.clone(),
        );
        registry.register(
            "events_given_up",
            "Webhook events given up after 24 h of failed deliveries",
            events_given_up.clone(),
        );
        let store_rebuilds = Counter::default();
        registry.register(
            "store_rebuilds",
            "Times the embedded store rebuilt its state from the file after a failed write",
            store_rebuilds.clone(),
        );
        let store_up = Gauge::default();
        registry.register(
            "store_up",
            "1 when the store answered this scrape's pool reading, else 0 (the pool gauges then keep their last values)",
            store_up.clone(),
        );
        registry.register(
            "events_backlog",
            "Webhook events waiting in the store's outbox",
            events_backlog.clone(),
        );
        Self {
            registry,
            events_delivered,
            events_failed,
            events_given_up,
            events_backlog,
            store_rebuilds,
            store_up,
            requests,
            latency,
            reservations,
            refusals,
            matches,
            pool_size,
            pool_free,
            pool_reserved,
            pool_cooling,
            pool_quarantined,
            lockouts,
            strays,
            history: Mutex::default(),
            matches_by_outcome: RwLock::default(),
            reservations_by_group: RwLock::default(),
            by_service: RwLock::default(),
        }
    }

    pub fn observe_request(&self, service: &str, status: u16, seconds: f64) {
        if let Some(handles) = self.by_service.read().get(service)
            && let Some((_, counter)) = handles.statuses.iter().find(|(s, _)| *s == status)
        {
            counter.inc();
            handles.latency.observe(seconds);
            return;
        }
        // First request of this service with this status: register its series.
        let mut by_service = self.by_service.write();
        let handles = by_service
            .entry_ref(service)
            .or_insert_with(|| ServiceHandles {
                latency: self
                    .latency
                    .get_or_create(&ServiceLabel {
                        service: LabelText::from(service),
                    })
                    .clone(),
                statuses: Vec::new(),
            });
        let counter = self
            .requests
            .get_or_create(&RequestLabels {
                service: LabelText::from(service),
                status,
            })
            .clone();
        if !handles.statuses.iter().any(|(s, _)| *s == status) {
            handles.statuses.push((status, counter.clone()));
        }
        counter.inc();
        handles.latency.observe(seconds);
    }

    pub fn reserved(&self, group: &str, now_minute: i64) {
        if let Some(counter) = self.reservations_by_group.read().get(group) {
            counter.inc();
        } else {
            let counter = self.reservations.get_or_create(&group_label(group)).clone();
            counter.inc();
            self.reservations_by_group
                .write()
                .insert(group.to_owned(), counter);
        }
        // One lookup; the name is copied only the first time.
        let mut history = self.history.lock();
        history
            .entry_ref(group)
            .or_default()
            .bucket(now_minute)
            .requests += 1;
    }

    pub fn refused(&self, group: &str, now_minute: i64) {
        self.refusals
            .get_or_create(&GroupLabel {
                group: LabelText::from(group),
            })
            .inc();
        let mut history = self.history.lock();
        let bucket = history
            .entry(group.to_owned())
            .or_default()
            .bucket(now_minute);
        bucket.requests += 1;
        bucket.refusals += 1;
    }

    /// A match-interaction's outcome: `hit`, `late` or `miss`.
    pub fn matched(&self, outcome: &'static str) {
        let seen = self.matches_by_outcome.read();
        if let Some((_, counter)) = seen.iter().find(|(o, _)| *o == outcome) {
            counter.inc();
            return;
        }
        drop(seen);
        let counter = self
            .matches
            .get_or_create(&OutcomeLabel { outcome })
            .clone();
        counter.inc();
        let mut seen = self.matches_by_outcome.write();
        if !seen.iter().any(|(o, _)| *o == outcome) {
            seen.push((outcome, counter));
        }
    }

    pub fn code_lockout(&self, group: &str) {
        self.lockouts.get_or_create(&group_label(group)).inc();
    }

    pub fn event_delivered(&self) {
        self.events_delivered.inc();
    }

    pub fn event_failed(&self) {
        self.events_failed.inc();
    }

    pub fn event_given_up(&self) {
        self.events_given_up.inc();
    }

    /// Brings the rebuild counter up to the store's own count (read at each scrape).
    pub fn set_store_rebuilds(&self, total: u64) {
        let seen = self.store_rebuilds.get();
        if total > seen {
            self.store_rebuilds.inc_by(total - seen);
        }
    }

    pub fn set_store_up(&self, up: bool) {
        self.store_up.set(i64::from(up));
    }

    pub fn set_event_backlog(&self, backlog: u64) {
        self.events_backlog
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
    }

    /// Records the current pool counts: gauges for Prometheus, and one occupancy sample per
    /// group for the advisor.
    pub fn sample_pools(&self, groups: &[GroupStats], now_minute: i64) {
        for g in [
            &self.pool_size,
            &self.pool_free,
            &self.pool_reserved,
            &self.pool_cooling,
            &self.pool_quarantined,
        ] {
            g.clear();
        }
        let mut history = self.history.lock();
        for stats in groups {
            let label = group_label(stats.name.as_str());
            self.pool_size.get_or_create(&label).set(stats.size as i64);
            self.pool_free.get_or_create(&label).set(stats.free as i64);
            self.pool_reserved
                .get_or_create(&label)
                .set(stats.reserved as i64);
            self.pool_cooling
                .get_or_create(&label)
                .set(stats.cooling as i64);
            self.pool_quarantined
                .get_or_create(&label)
                .set(stats.quarantined as i64);
            // The group's counters exist from its first sample, at 0: one that appeared only
            // with its first increment hid that increment from `rate()` and `increase()`.
            for counter in [
                &self.reservations,
                &self.refusals,
                &self.lockouts,
                &self.strays,
            ] {
                drop(counter.get_or_create(&label));
            }
            let bucket = history
                .entry(stats.name.to_string())
                .or_default()
                .bucket(now_minute);
            // Occupied = not lendable: reserved, and resting after a reservation (cooling),
            // which the stores count as neither free nor reserved. What the advisor needs is
            // how many numbers the traffic keeps from being lent, and a resting number is one.
            bucket.reserved_sum += stats.size.saturating_sub(stats.free);
            bucket.samples += 1;
        }
        // A group gone from the store (deleted) takes its series and history with it: its
        // counters stayed until a restart, so a node whose groups come and go grew its
        // scrape without end. (Deleted and made again between two samples, it keeps them.)
        let gone: Vec<String> = history
            .keys()
            .filter(|name| !groups.iter().any(|g| g.name.as_str() == name.as_str()))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        let mut cached = self.reservations_by_group.write();
        for name in gone {
            let label = group_label(&name);
            for counter in [
                &self.reservations,
                &self.refusals,
                &self.lockouts,
                &self.strays,
            ] {
                counter.remove(&label);
            }
            cached.remove(&name);
            history.remove(&name);
        }
    }

    /// A late match (within `late_match_grace`) in a group, for the charts' history. The
    /// Prometheus counter for it is the matching code's; this only fills the minute bucket.
    pub fn late_match(&self, group: &str, now_minute: i64) {
        self.history
            .lock()
            .entry(group.to_owned())
            .or_default()
            .bucket(now_minute)
            .late += 1;
    }

    /// A stray call on a number of a group: the counter, and the charts' history.
    pub fn stray_call(&self, group: &str, now_minute: i64) {
        self.strays.get_or_create(&group_label(group)).inc();
        self.history
            .lock()
            .entry(group.to_owned())
            .or_default()
            .bucket(now_minute)
            .stray += 1;
    }

    /// Requests, refusals and mean occupancy of a group over the last hour.
    pub fn last_hour(&self, group: &str, now_minute: i64) -> Window {
        self.history
            .lock()
            .get(group)
            .map(|h| h.window(now_minute))
            .unwrap_or_default()
    }

    /// OpenMetrics text, as `prometheus_client` writes it.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The Prometheus text format (0.0.4), which the contract names for `/metrics`.
    pub fn encode_prometheus(&self) -> String {
        prometheus_text(&self.encode())
    }
}

/// OpenMetrics text rewritten as the Prometheus text format: the two differ only in a
/// counter's family name (OpenMetrics names `x`, whose samples are `x_total`; Prometheus names
/// the family after its samples), in `# UNIT` lines and in the closing `# EOF`.
fn prometheus_text(openmetrics: &str) -> String {
    let of_type = |kind: &'static str| -> std::collections::HashSet<&str> {
        openmetrics
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(kind))
            .collect()
    };
    // Counters are named after their `_total` samples; an info family (no such type in the
    // text format) is the gauge its `_info` sample is.
    let (counters, infos) = (of_type(" counter"), of_type(" info"));
    let mut out = String::with_capacity(openmetrics.len() + 8 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let family = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match family {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) && !name.ends_with("_total") {
                    out.push_str("_total");
                }
                let tail = match infos.contains(name) {
                    true => {
                        out.push_str("_info");
                        if prefix == "# TYPE " { "gauge" } else { tail }
                    }
                    false => tail,
                };
                if !tail.is_empty() {
                    out.push(' ');
                    out.push_str(tail);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// One minute of a group's activity.
#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    minute: i64,
    requests: u64,
    refusals: u64,
    reserved_sum: u64,
    samples: u64,
    late: u64,
    stray: u64,
}

impl Bucket {
    fn point(&self) -> Point {
        Point {
            at: self.minute * 60_000,
            requests: self.requests,
            refusals: self.refusals,
            occupied: (self.samples > 0).then(|| self.reserved_sum as f64 / self.samples as f64),
            late: self.late,
            stray: self.stray,
        }
    }
}

/// One minute of a group's history, as the charts and the advisor show it.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Point {
    /// The minute's start, in milliseconds since the Unix epoch.
    pub at: i64,
    pub requests: u64,
    pub refusals: u64,
    /// Mean numbers not lendable (reserved or resting) in the minute's samples; `None` when
    /// no sample was taken in it.
    pub occupied: Option<f64>,
    pub late: u64,
    pub stray: u64,
}

/// The last 60 minutes, one bucket per minute, reused as a ring.
#[derive(Debug, Default)]
struct History {
    buckets: Vec<Bucket>,
}

impl History {
    fn bucket(&mut self, minute: i64) -> &mut Bucket {
        if self.buckets.is_empty() {
            self.buckets = vec![Bucket::default(); 60];
        }
        let b = &mut self.buckets[minute.rem_euclid(60) as usize];
        if b.minute != minute {
            *b = Bucket {
                minute,
                ..Bucket::default()
            };
        }
        b
    }

    fn window(&self, now_minute: i64) -> Window {
        let recent = self
            .buckets
            .iter()
            .filter(|b| b.minute > now_minute - 60 && b.minute <= now_minute);
        let mut w = Window::default();
        let mut first = now_minute;
        for b in recent {
            w.points.push(b.point());
            w.requests += b.requests;
            w.refusals += b.refusals;
            w.reserved_sum += b.reserved_sum;
            w.samples += b.samples;
            first = first.min(b.minute);
        }
        w.minutes = (now_minute - first + 1) as u64;
        w.points.sort_by_key(|p| p.at);
        w
    }
}

/// A group's activity over a window of whole minutes.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Window {
    pub minutes: u64,
    pub requests: u64,
    pub refusals: u64,
    /// The minutes it sums, oldest first (minutes without any activity or sample are absent).
    pub points: Vec<Point>,
    #[serde(skip)]
    reserved_sum: u64,
    #[serde(skip)]
    samples: u64,
}

impl Window {
    pub fn mean_reserved(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.reserved_sum as f64 / self.samples as f64
        }
    }
}

fn group_label(group: &str) -> GroupLabel {
    GroupLabel {
        group: LabelText::from(group),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_one_hour() {
        let m = Metrics::new();
        m.reserved("G", 100);
        m.refused("G", 100);
        m.reserved("G", 130);
        let w = m.last_hour("G", 130);
        assert_eq!((w.requests, w.refusals, w.minutes), (3, 1, 31));
        let w = m.last_hour("G", 165);
        assert_eq!(
            (w.requests, w.refusals),
            (1, 0),
            "minute 100 is more than an hour old"
        );
        assert_eq!(m.last_hour("other", 165).requests, 0);
    }

    #[test]
    fn text_format_has_the_families() {
        let m = Metrics::new();
        m.observe_request("request-access", 200, 0.001);
        m.refused("DNIS", 1);
        m.matched("miss");
        m.matched("hit");
        m.matched("hit");
        let text = m.encode();
        assert!(
            text.contains("access_broker_matches_total{outcome=\"hit\"} 2"),
            "{text}"
        );
        for needle in [
            "access_broker_http_requests_total{service=\"request-access\",status=\"200\"} 1",
            "access_broker_refusals_total{group=\"DNIS\"} 1",
            "access_broker_matches_total{outcome=\"miss\"} 1",
            "access_broker_http_request_duration_seconds_bucket",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }

    /// A deleted group's series leave with it at the next sample (they stayed until a
    /// restart); a group still in the store keeps its counts.
    #[test]
    fn a_deleted_groups_series_leave() {
        let m = Metrics::new();
        let stats = |name: &str| crate::store::GroupStats {
            name: crate::domain::GroupName::parse(name).expect("group"),
            allocation: crate::domain::Allocation::RoundRobin,
            booking_timeout: None,
            size: 1,
            free: 1,
            reserved: 0,
            cooling: 0,
            quarantined: 0,
            retiring: 0,
            policy: crate::domain::NumberPolicy::default(),
        };
        m.sample_pools(&[stats("A"), stats("B")], 1);
        for group in ["A", "B"] {
            m.reserved(group, 1);
            m.refused(group, 1);
            m.stray_call(group, 1);
        }
        m.sample_pools(&[stats("A")], 2);
        let text = m.encode();
        assert!(!text.contains("group=\"B\""), "{text}");
        for needle in [
            "access_broker_reservations_total{group=\"A\"} 1",
            "access_broker_refusals_total{group=\"A\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        assert_eq!(m.last_hour("B", 2).requests, 0);
        m.reserved("B", 3);
        assert!(
            m.encode()
                .contains("access_broker_reservations_total{group=\"B\"} 1")
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new().for_node("n\"1");
        m.refused("q\"x\\y\nz", 1);
        m.observe_request("a\"b", 200, 0.001);
        for text in [m.encode(), m.encode_prometheus()] {
            for needle in [
                r#"access_broker_refusals_total{group="q\"x\\y\nz"} 1"#,
                r#"access_broker_http_requests_total{service="a\"b",status="200"} 1"#,
                r#"access_broker_node_info{node="n\"1"} 1"#,
            ] {
                assert!(text.contains(needle), "{needle} missing from\n{text}");
            }
        }
    }

    #[test]
    fn prometheus_text_names_counters_after_their_samples() {
        let m = Metrics::new().for_node("n7");
        m.matched("hit");
        m.set_event_backlog(7);
        let open = m.encode();
        assert!(
            open.contains("# TYPE access_broker_matches counter\n"),
            "{open}"
        );
        assert!(open.trim_end().ends_with("# EOF"), "{open}");
        let text = m.encode_prometheus();
        for needle in [
            "# HELP access_broker_matches_total match-interaction",
            "# TYPE access_broker_matches_total counter\n",
            "access_broker_matches_total{outcome=\"hit\"} 1\n",
            "# TYPE access_broker_events_backlog gauge\n",
            "access_broker_events_backlog 7\n",
            "# TYPE access_broker_http_request_duration_seconds histogram\n",
            "# TYPE access_broker_node_info gauge\naccess_broker_node_info{node=\"n7\"} 1\n",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        // Every sample line belongs to the family its TYPE line names.
        let mut family = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap_or("");
            } else if !line.starts_with('#') && !line.is_empty() {
                assert!(
                    line.starts_with(family),
                    "{line:?} outside family {family:?}"
                );
            }
        }
    }
}
