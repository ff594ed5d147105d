//! The seeded run: what it remembers between steps, how it picks arguments, how it compares
//! answers and reports a disagreement. The operations themselves are in `ops.rs`.

use std::collections::HashMap;
use std::time::Duration;

use access_broker::domain::{
    AccessCode, AccessNumber, Allocation, BookingTimeout, GroupName, PhoneNumber, SessionId,
};
use access_broker::store::{NewSession, Quota, ReserveRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::stores::Stores;
use crate::support::{self, new_session, number};

/// A group as the run knows it: its reference numbers (in the order they were added).
pub struct Grp {
    pub name: GroupName,
    pub numbers: Vec<AccessNumber>,
    pub allocation: Allocation,
}

pub struct Run {
    pub rng: StdRng,
    pub seed: u64,
    pub step: usize,
    pub stores: Stores,
    /// Milliseconds the clocks moved since the start.
    pub now_ms: u64,
    /// Every session created so far; ended and expired ones stay, to be asked about.
    pub sessions: Vec<NewSession>,
    /// When each session expires (ms since the start), ended or not.
    pub session_ends: Vec<u64>,
    pub groups: Vec<Grp>,
    /// (session, group, reference number) of recent reservations, newest last.
    pub held: Vec<(usize, usize, AccessNumber)>,
    pub codes: HashMap<AccessNumber, AccessCode>,
    pub phones: HashMap<AccessNumber, PhoneNumber>,
    /// Times (ms since the start) when something the stores told us about ends.
    pub deadlines: Vec<u64>,
    pub history: Vec<String>,
    next_number: u32,
    /// Every reservation of the run carries a quota of this many for one of two clients
    /// (`[limits] reservations_per_client`), in every other seed's run.
    quota_limit: Option<u64>,
}

/// The clients whose quotas a run with quotas draws from.
pub const CLIENTS: [&str; 2] = ["ip:a", "ip:b"];

/// The groups every run starts with: one per allocation, 3..=8 numbers each.
const START: [(&str, Allocation); 3] = [
    ("RR", Allocation::RoundRobin),
    ("LRU", Allocation::LeastRecentlyUsed),
    ("RAND", Allocation::Random),
];

impl Run {
    pub async fn new(seed: u64, stores: Stores) -> Run {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut groups = Vec::new();
        for (name, allocation) in START {
            let mut spec = support::group(name, rng.random_range(3..=8), allocation);
            spec.settings.booking_timeout = rng
                .random_bool(0.5)
                .then(|| BookingTimeout::from_secs_lenient(rng.random_range(5..=90)));
            for side in &stores.sides {
                side.t
                    .store
                    .apply_groups(&[spec.clone()])
                    .await
                    .expect("apply");
            }
            groups.push(Grp {
                name: spec.settings.name,
                numbers: spec.numbers,
                allocation,
            });
        }
        Run {
            rng,
            seed,
            step: 0,
            stores,
            now_ms: 0,
            sessions: Vec::new(),
            session_ends: Vec::new(),
            groups,
            held: Vec::new(),
            codes: HashMap::new(),
            phones: HashMap::new(),
            deadlines: Vec::new(),
            history: Vec::new(),
            next_number: 100,
            // From the seed, not the generator: the runs without quotas draw as they did.
            quota_limit: (seed % 2 == 1).then_some(1 + (seed / 2) % 3),
        }
    }

    /// Runs `steps` random operations, then compares everything; the result and a tally.
    pub async fn go(mut self, steps: usize) -> (Result<(), String>, String) {
        let mut result = Ok(());
        for step in 0..steps {
            self.step = step;
            result = self.one_step().await;
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            self.step = steps;
            result = self.compare_everything().await;
        }
        (result, self.tally())
    }

    /// Compares `answers` (one per store, already in reference numbers); on a difference,
    /// the report to print.
    pub fn check(&mut self, what: &str, answers: Vec<String>) -> Result<(), String> {
        let same = answers.iter().all(|a| a == &answers[0]);
        self.history
            .push(format!("#{} {what} -> {}", self.step, answers[0]));
        if same {
            return Ok(());
        }
        Err(self.report(what, &answers))
    }

    /// The failure report: each store's answer, the steps before, how to replay.
    pub fn report(&self, what: &str, answers: &[String]) -> String {
        let mut out = format!(
            "seed {} step {}: stores disagree on: {what}\n",
            self.seed, self.step
        );
        for (side, answer) in self.stores.sides.iter().zip(answers) {
            out += &format!("  {:<8} {answer}\n", side.name());
        }
        out += "  steps before it (memory's answers; DIFF_HISTORY=<n> shows n):\n";
        let keep = std::env::var("DIFF_HISTORY")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(30);
        let from = self.history.len().saturating_sub(keep);
        for line in &self.history[from..self.history.len().saturating_sub(1)] {
            out += &format!("    {line}\n");
        }
        out += &format!(
            "  replay: DIFF_SEED={} cargo test --test differential random_operation",
            self.seed
        );
        out
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.rng.random_range(0..len)
    }

    /// A session of the run (mostly one that has not expired yet), or one never created.
    pub fn pick_session(&mut self) -> (String, SessionId) {
        let now = self.now_ms;
        let alive: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| self.session_ends[i] > now)
            .collect();
        let i = if self.sessions.is_empty() || self.chance(0.04) {
            return ("ghost".into(), new_session(Duration::ZERO, vec![]).id);
        } else if !alive.is_empty() && self.chance(0.85) {
            alive[self.index(alive.len())]
        } else {
            self.index(self.sessions.len())
        };
        (format!("s{i}"), self.sessions[i].id.clone())
    }

    pub fn add_session(&mut self, new: NewSession) {
        self.session_ends
            .push(self.now_ms + new.ttl.as_millis() as u64);
        self.remember_deadline(new.ttl);
        self.sessions.push(new);
    }

    /// A group of the run, or (sometimes) one no store knows.
    pub fn pick_group(&mut self) -> (Option<usize>, GroupName) {
        if self.chance(0.06) {
            return (None, GroupName::parse("NOPE").expect("name"));
        }
        let g = self.index(self.groups.len());
        (Some(g), self.groups[g].name.clone())
    }

    /// A number to match, release or remove: recently reserved, any of a group, or unknown.
    pub fn pick_number(&mut self) -> AccessNumber {
        let roll = self.index(100);
        if roll < 60 && !self.held.is_empty() {
            let n = self.held.len();
            let i = n - 1 - self.index(n.min(8));
            return self.held[i].2.clone();
        }
        let g = self.index(self.groups.len());
        if roll < 90 && !self.groups[g].numbers.is_empty() {
            let i = self.index(self.groups[g].numbers.len());
            return self.groups[g].numbers[i].clone();
        }
        number("9990000")
    }

    /// A number some group of the run has, if any has one.
    pub fn pick_existing(&mut self) -> Option<AccessNumber> {
        let g = self.index(self.groups.len());
        let numbers = &self.groups[g].numbers;
        (!numbers.is_empty()).then(|| numbers[self.rng.random_range(0..numbers.len())].clone())
    }

    /// A number never used by any group.
    pub fn fresh_number(&mut self, group: &GroupName) -> AccessNumber {
        self.next_number += 1;
        let prefix = support::prefix(group.as_str());
        number(&format!("{prefix}{:04}", self.next_number))
    }

    pub fn new_session(&mut self) -> NewSession {
        let mut ttl = Duration::from_secs(self.rng.random_range(1..=300));
        if self.chance(0.2) {
            ttl += Duration::from_millis(self.rng.random_range(1..1000));
        }
        let fields = if self.chance(0.5) {
            vec![("firstname", "Ann"), ("reason", "billing")]
        } else {
            vec![]
        };
        new_session(ttl, fields)
    }

    /// A request with every option drawn at random.
    pub fn request(&mut self, session: SessionId, group: GroupName) -> ReserveRequest {
        let timeout = match self.index(3) {
            0 => None,
            1 => Some(self.rng.random_range(5..=60)),
            _ => Some(self.rng.random_range(5..=1800)),
        };
        let code = self.chance(0.5).then(|| {
            let digits = self.rng.random_range(4..=6);
            let c: String = (0..digits)
                .map(|_| char::from(b'0' + self.rng.random_range(0..10u8)))
                .collect();
            AccessCode::parse(&c).expect("code")
        });
        let phone = self.chance(0.4).then(|| {
            let p = format!("+3161234{:04}", self.rng.random_range(0..3));
            PhoneNumber::parse(&p).expect("phone")
        });
        let pool_health = self.chance(0.6);
        let quota = self.quota_limit.map(|limit| Quota {
            client: CLIENTS[self.index(2)].into(),
            limit,
        });
        ReserveRequest {
            session,
            group,
            timeout: timeout.map(BookingTimeout::from_secs_lenient),
            provide_code: code.is_some(),
            code,
            phone,
            pool_health,
            quota,
        }
    }

    pub fn describe(&self, who: &str, req: &ReserveRequest) -> String {
        format!(
            "reserve {who} in {} timeout={:?} code={:?} phone={:?} pool_health={} quota={:?}",
            req.group,
            req.timeout.map(|t| t.secs()),
            req.code.as_ref().map(|c| c.as_str()),
            req.phone.as_ref().map(|p| p.as_str()),
            req.pool_health,
            req.quota
        )
    }

    pub fn remember_deadline(&mut self, expires_in: Duration) {
        self.deadlines
            .push(self.now_ms + expires_in.as_millis() as u64);
        if self.deadlines.len() > 60 {
            self.deadlines.remove(0);
        }
    }
}
