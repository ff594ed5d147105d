//! Property test: random sequences of operations (create session, reserve, match, end session,
//! release, advance time) run on a real store and on a small reference model; every answer
//! must be the same. Round-robin allocation makes the model's choice of number deterministic.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use access_broker::domain::{AccessCode, AccessNumber, Allocation, BookingTimeout, SessionId};
use access_broker::store::{MatchRequest, ReserveError};
use proptest::prelude::*;
use support::{Backend, TestStore, group, reserve_request};

const POOL: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    NewSession {
        ttl_s: u64,
    },
    Reserve {
        session: usize,
        timeout_s: Option<i64>,
        code: bool,
    },
    Match {
        number: usize,
        right_code: bool,
    },
    End {
        session: usize,
    },
    Release {
        number: usize,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1u64..120).prop_map(|ttl_s| Op::NewSession { ttl_s }),
        4 => (0usize..8, proptest::option::of(5i64..60), any::<bool>()).prop_map(|(session, timeout_s, code)| Op::Reserve { session, timeout_s, code }),
        2 => (0usize..POOL, any::<bool>()).prop_map(|(number, right_code)| Op::Match { number, right_code }),
        1 => (0usize..8).prop_map(|session| Op::End { session }),
        1 => (0usize..POOL).prop_map(|number| Op::Release { number }),
        3 => (0u64..40_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// The reference: plain vectors and linear scans, written straight from the contract.
#[derive(Default)]
struct Model {
    now: i64,
    sessions: Vec<(SessionId, i64, bool)>, // id, expires_at, ended
    holds: HashMap<usize, (usize, i64, Option<String>)>, // number -> (session, expires_at, code)
    cursor: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Reserved {
        number: usize,
        expires_in_ms: i64,
        has_code: bool,
    },
    Refused(&'static str),
    Matched(Option<usize>),
    Done(bool),
}

impl Model {
    fn session_live(&self, s: usize) -> bool {
        self.sessions
            .get(s)
            .is_some_and(|&(_, exp, ended)| !ended && self.now < exp)
    }

    fn live_hold(&self, n: usize) -> Option<&(usize, i64, Option<String>)> {
        self.holds
            .get(&n)
            .filter(|h| self.now < h.1 && self.session_live(h.0))
    }

    fn reserve(&mut self, s: usize, timeout_s: Option<i64>, code: Option<String>) -> Answer {
        if !self.session_live(s) {
            return Answer::Refused("session");
        }
        let timeout =
            timeout_s.map_or(30, |t| BookingTimeout::from_secs_lenient(t).secs() as i64) * 1000;
        let expires_at = (self.now + timeout).min(self.sessions[s].1);
        let mine = (0..POOL).find(|&n| self.live_hold(n).is_some_and(|h| h.0 == s));
        let n = match mine {
            Some(n) => n,
            None => {
                let Some(n) = (0..POOL)
                    .map(|i| (self.cursor + i) % POOL)
                    .find(|&n| self.live_hold(n).is_none())
                else {
                    return Answer::Refused("exhausted");
                };
                self.cursor = n + 1;
                self.holds.insert(n, (s, 0, None));
                n
            }
        };
        let hold = self.holds.get_mut(&n).expect("held");
        hold.1 = expires_at;
        if hold.2.is_none() {
            hold.2 = code;
        }
        Answer::Reserved {
            number: n,
            expires_in_ms: expires_at - self.now,
            has_code: hold.2.is_some(),
        }
    }

    fn matches(&mut self, n: usize, code: Option<&str>) -> Answer {
        let Some(h) = self.live_hold(n) else {
            return Answer::Matched(None);
        };
        if h.2.as_deref().is_some_and(|c| Some(c) != code) {
            return Answer::Matched(None);
        }
        let s = h.0;
        self.holds.remove(&n);
        Answer::Matched(Some(s))
    }
}

fn number(n: usize) -> AccessNumber {
    group("DNIS", POOL as u32, Allocation::RoundRobin).numbers[n].clone()
}

async fn check(backend: Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let t = TestStore::require(backend).await;
    let g = t
        .with_group("DNIS", POOL as u32, Allocation::RoundRobin)
        .await;
    let mut model = Model::default();
    let mut codes: HashMap<usize, String> = HashMap::new();
    for op in ops {
        let (got, want) = match op {
            Op::NewSession { ttl_s } => {
                let id = t.session(Duration::from_secs(ttl_s)).await;
                model
                    .sessions
                    .push((id, model.now + ttl_s as i64 * 1000, false));
                continue;
            }
            Op::Reserve {
                session,
                timeout_s,
                code,
            } => {
                if model.sessions.is_empty() {
                    continue;
                }
                let s = session % model.sessions.len();
                let code = code.then(|| AccessCode::parse(&format!("{:06}", s)).expect("code"));
                let mut req = reserve_request(&model.sessions[s].0, &g);
                req.timeout = timeout_s.map(BookingTimeout::from_secs_lenient);
                req.code = code.clone();
                req.provide_code = req.code.is_some();
                let got = match t.store.reserve(req).await {
                    Ok(r) => {
                        let n = (0..POOL)
                            .find(|&n| number(n) == r.number)
                            .expect("a pool number");
                        if let Some(c) = &r.code {
                            codes.insert(n, c.to_string());
                        }
                        Answer::Reserved {
                            number: n,
                            expires_in_ms: r.expires_in.as_millis() as i64,
                            has_code: r.code.is_some(),
                        }
                    }
                    Err(ReserveError::SessionNotFound) => Answer::Refused("session"),
                    Err(ReserveError::Exhausted { .. }) => Answer::Refused("exhausted"),
                    Err(other) => panic!("unexpected {other:?}"),
                };
                (
                    got,
                    model.reserve(s, timeout_s, code.map(|c| c.to_string())),
                )
            }
            Op::Match {
                number: n,
                right_code,
            } => {
                let code = if right_code {
                    codes.get(&n).cloned()
                } else {
                    Some("999999".into())
                };
                let req = MatchRequest {
                    number: number(n),
                    code: code.as_deref().map(|c| AccessCode::parse(c).expect("code")),
                    phone: None,
                    code_required: true,
                    end_session: false,
                    with_fields: true,
                };
                let got = t
                    .store
                    .match_reservation(req)
                    .await
                    .expect("match")
                    .into_session();
                let got = Answer::Matched(got.map(|s| {
                    model
                        .sessions
                        .iter()
                        .position(|m| m.0 == s.id)
                        .expect("known session")
                }));
                (got, model.matches(n, code.as_deref()))
            }
            Op::End { session } => {
                if model.sessions.is_empty() {
                    continue;
                }
                let s = session % model.sessions.len();
                let got = Answer::Done(
                    t.store
                        .end_session(&model.sessions[s].0)
                        .await
                        .expect("end"),
                );
                let live = model.session_live(s);
                model.sessions[s].2 = true;
                (got, Answer::Done(live))
            }
            Op::Release { number: n } => {
                let got = Answer::Done(t.store.release(&number(n)).await.expect("release"));
                let live = model.live_hold(n).is_some();
                model.holds.remove(&n);
                (got, Answer::Done(live))
            }
            Op::Advance { ms } => {
                t.advance(Duration::from_millis(ms));
                model.now += ms as i64;
                continue;
            }
        };
        prop_assert_eq!(got, want);
    }
    Ok(())
}

fn run(backend: Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(support::limit::within(check(backend, ops)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn memory_store_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(Backend::Memory, ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn sqlite_store_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(Backend::Sqlite, ops)?;
    }

    #[test]
    #[cfg_attr(
        no_postgres,
        ignore = "needs PostgreSQL: set TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test"
    )]
    fn postgres_store_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(Backend::Postgres, ops)?;
    }
}
