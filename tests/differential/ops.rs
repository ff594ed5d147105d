//! Sessions, reservations, matching and time: the operations callers perform.

use std::time::Duration;

use access_broker::domain::{AccessCode, Allocation, PhoneNumber};
use access_broker::store::{
    MatchRequest, Reservation, ReservationFilter, ReserveError, ReserveRequest,
};
use rand::Rng;

use crate::answers::{fmt_outcome, fmt_reserve, fmt_session};
use crate::driver::Run;
use crate::on_all;

impl Run {
    pub async fn one_step(&mut self) -> Result<(), String> {
        match self.index(100) {
            0..8 => self.create_session().await,
            8..12 => self.end_session().await,
            12..36 => self.reserve().await,
            36..43 => self.reserve_new_session().await,
            43..56 => self.match_number().await,
            56..60 => self.release().await,
            60..75 => {
                self.advance();
                Ok(())
            }
            75..78 => self.put_group().await,
            78..81 => self.add_numbers().await,
            81..85 => self.remove_number().await,
            85..89 => self.find().await,
            89..91 => self.groups().await,
            91..96 => self.group_detail().await,
            96..99 => self.read_session().await,
            _ => self.purge().await,
        }
    }

    async fn create_session(&mut self) -> Result<(), String> {
        let new = self.new_session();
        let what = format!(
            "create s{} ttl={}ms",
            self.sessions.len(),
            new.ttl.as_millis()
        );
        let new_ref = &new;
        let answers = on_all!(self.stores, |s| {
            match s.t.store.create_session(new_ref.clone()).await {
                Ok(session) => fmt_session(&Some(session)),
                Err(e) => format!("Err {e:?}"),
            }
        });
        self.add_session(new);
        self.check(&what, answers)
    }

    async fn end_session(&mut self) -> Result<(), String> {
        let (who, id) = self.pick_session();
        let id = &id;
        let answers = on_all!(self.stores, |s| format!(
            "{:?}",
            s.t.store.end_session(id).await
        ));
        if let Some(i) = self.sessions.iter().position(|n| &n.id == id) {
            self.session_ends[i] = self.session_ends[i].min(self.now_ms);
        }
        self.check(&format!("end {who}"), answers)
    }

    async fn read_session(&mut self) -> Result<(), String> {
        let (who, id) = self.pick_session();
        let id = &id;
        let answers = on_all!(self.stores, |s| match s.t.store.session(id).await {
            Ok(found) => {
                let data = match &found {
                    Some(f) => format!("{:?}", s.t.store.data(&f.data_id).await),
                    None => "-".into(),
                };
                format!("{} data={data}", fmt_session(&found))
            }
            Err(e) => format!("Err {e:?}"),
        });
        self.check(&format!("read {who}"), answers)
    }

    async fn reserve(&mut self) -> Result<(), String> {
        let (who, id, session, group, name) = if !self.held.is_empty() && self.chance(0.25) {
            let i = self.index(self.held.len());
            let (s, g, _) = self.held[i];
            let (id, name) = (self.sessions[s].id.clone(), self.groups[g].name.clone());
            (format!("s{s} (renewal)"), id, Some(s), Some(g), name)
        } else {
            let (who, id) = self.pick_session();
            let session = self.sessions.iter().position(|n| n.id == id);
            let (group, name) = self.pick_group();
            (who, id, session, group, name)
        };
        let req = self.request(id, name);
        let what = self.describe(&who, &req);
        let req_ref = &req;
        let answers = on_all!(self.stores, |s| s.t.store.reserve(req_ref.clone()).await);
        self.settle(&what, session, group, &req, answers).await
    }

    /// Request-interaction: a new session and its reservation in one step; when refused, no
    /// session (nor its data) may be left behind.
    async fn reserve_new_session(&mut self) -> Result<(), String> {
        let new = self.new_session();
        let (group, name) = self.pick_group();
        let req = self.request(new.id.clone(), name);
        let what = format!("new session + {}", self.describe("it", &req));
        let (new_ref, req_ref) = (&new, &req);
        let answers = on_all!(self.stores, |s| {
            s.t.store
                .reserve_new_session(new_ref.clone(), req_ref.clone())
                .await
        });
        let mut reservations = Vec::new();
        let mut sessions = Vec::new();
        for a in answers {
            match a {
                Ok((session, r)) => {
                    sessions.push(fmt_session(&Some(session)));
                    reservations.push(Ok(r));
                }
                Err(e) => {
                    sessions.push("-".into());
                    reservations.push(Err(e));
                }
            }
        }
        self.check(&format!("{what}: the session"), sessions)?;
        if reservations[0].is_ok() {
            self.add_session(new.clone());
        }
        let index = reservations[0].is_ok().then(|| self.sessions.len() - 1);
        self.settle(&what, index, group, &req, reservations).await?;
        if index.is_none() {
            let answers = on_all!(self.stores, |s| format!(
                "session {:?} data {:?}",
                s.t.store.session(&new_ref.id).await.map(|x| x.is_some()),
                s.t.store.data(&new_ref.data_id).await.map(|x| x.is_some())
            ));
            let want = "session Ok(false) data Ok(false)";
            if answers.iter().any(|a| a != want) {
                return Err(self.report(&format!("{what}: refused, yet left {want:?}?"), &answers));
            }
        }
        Ok(())
    }

    /// Lines random picks up across stores, compares the answers, remembers what they said.
    async fn settle(
        &mut self,
        what: &str,
        session: Option<usize>,
        group: Option<usize>,
        req: &ReserveRequest,
        answers: Vec<Result<Reservation, ReserveError>>,
    ) -> Result<(), String> {
        let random = group.is_some_and(|g| self.groups[g].allocation == Allocation::Random);
        if let (true, Ok(first)) = (random, &answers[0]) {
            for (side, a) in self.stores.sides.iter_mut().zip(&answers).skip(1) {
                if let Ok(r) = a {
                    side.alias(&r.number, &first.number);
                }
            }
        }
        let texts = (self.stores.sides.iter().zip(&answers))
            .map(|(side, a)| fmt_reserve(side, a, req.pool_health))
            .collect();
        self.check(what, texts)?;
        let (Ok(r), Some(s), Some(g)) = (&answers[0], session, group) else {
            return Ok(());
        };
        self.held.push((s, g, r.number.clone()));
        if self.held.len() > 40 {
            self.held.remove(0);
        }
        match &r.code {
            Some(c) => self.codes.insert(r.number.clone(), c.clone()),
            None => self.codes.remove(&r.number),
        };
        if let Some(p) = &req.phone {
            self.phones.insert(r.number.clone(), p.clone());
        }
        self.remember_deadline(r.expires_in);
        if random {
            // An alias hides which number was picked; the session's reservations show
            // whether both stores picked afresh (or both renewed).
            let filter = ReservationFilter {
                session: Some(req.session.clone()),
                ..ReservationFilter::default()
            };
            let answers = self.find_answers(filter).await;
            self.check(&format!("  reservations of s{s} after it"), answers)?;
        }
        Ok(())
    }

    async fn match_number(&mut self) -> Result<(), String> {
        let number = self.pick_number();
        let right = self.codes.get(&number).cloned();
        let code = match self.index(5) {
            0..=2 => right.clone(),
            3 => Some(
                AccessCode::parse(&format!("{}9", right.as_ref().map_or("", |c| c.as_str())))
                    .expect("code"),
            ),
            _ => None,
        };
        let phone = match self.index(5) {
            0..=2 => None,
            3 => self.phones.get(&number).cloned(),
            _ => Some(PhoneNumber::parse("+319999").expect("phone")),
        };
        let (code_required, end_session) = (self.chance(0.7), self.chance(0.25));
        let what = format!(
            "match {number} code={:?} (right: {:?}) phone={:?} code_required={code_required} end_session={end_session}",
            code.as_ref().map(|c| c.as_str()),
            right.as_ref().map(|c| c.as_str()),
            phone.as_ref().map(|p| p.as_str())
        );
        let (number, code, phone) = (&number, &code, &phone);
        let aliased = self.stores.sides.iter().any(|s| s.aliased(number));
        let answers = on_all!(self.stores, |s| {
            let req = MatchRequest {
                number: s.local(number),
                code: code.clone(),
                phone: phone.clone(),
                code_required,
                end_session,
                with_fields: true,
            };
            match s.t.store.match_reservation(req).await {
                Ok(found) => fmt_outcome(found, aliased),
                Err(e) => format!("Err {e:?}"),
            }
        });
        self.check(&what, answers)
    }

    async fn release(&mut self) -> Result<(), String> {
        let number = self.pick_number();
        let n = &number;
        let answers = on_all!(self.stores, |s| format!(
            "{:?}",
            s.t.store.release(&s.local(n)).await
        ));
        self.check(&format!("admin release {number}"), answers)
    }

    /// Moves every clock: a random amount, or exactly to (or 1 ms before) a known expiry.
    pub fn advance(&mut self) {
        let now = self.now_ms;
        let ahead: Vec<u64> = self
            .deadlines
            .iter()
            .copied()
            .filter(|&d| d > now)
            .collect();
        let by = if !ahead.is_empty() && self.chance(0.4) {
            let mut ahead = ahead;
            ahead.sort_unstable();
            let d = ahead[self.index(ahead.len().min(3))];
            d - now - u64::from(self.chance(0.3))
        } else if self.chance(0.5) {
            self.rng.random_range(0..=5_000)
        } else {
            self.rng.random_range(0..=40_000)
        };
        self.stores.advance(Duration::from_millis(by));
        self.now_ms += by;
        self.history.push(format!(
            "#{} advance {by} ms (t={} ms)",
            self.step, self.now_ms
        ));
    }

    async fn purge(&mut self) -> Result<(), String> {
        // How much each backend frees differs by design (what space it keeps); that nothing
        // visible changes is what the steps after it check.
        let answers = on_all!(self.stores, |s| s.t.store.purge_expired().await.is_ok());
        let answers = answers.iter().map(|ok| format!("ok={ok}")).collect();
        self.check("purge_expired", answers)
    }
}
