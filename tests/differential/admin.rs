//! Admin operations and views, and the final comparison of everything the stores hold.

use access_broker::domain::{Allocation, BookingTimeout, GroupName};
use access_broker::store::{AddNumbers, ReservationFilter};
use rand::Rng;

use crate::answers::fmt_detail;
use crate::driver::{Grp, Run};
use crate::on_all;
use crate::stores::put_group;

impl Run {
    /// Changes a group's allocation and booking time, or creates a group. A random group
    /// stays random: its numbers are aliased across stores, so their positions no longer
    /// line up for round-robin or least-recently-used.
    pub async fn put_group(&mut self) -> Result<(), String> {
        let timeout = self
            .chance(0.6)
            .then(|| BookingTimeout::from_secs_lenient(self.rng.random_range(5..=120)));
        let (name, allocation) = if self.groups.len() < 5 && self.chance(0.15) {
            let name = GroupName::parse(&format!("G{}", self.groups.len())).expect("name");
            let allocation = Allocation::ALL[self.index(3)];
            self.groups.push(Grp {
                name: name.clone(),
                numbers: Vec::new(),
                allocation,
            });
            (name, allocation)
        } else {
            let g = self.index(self.groups.len());
            let current = self.groups[g].allocation;
            let allocation = match current {
                Allocation::Random => Allocation::Random,
                _ if self.chance(0.1) => Allocation::Random,
                _ if self.chance(0.5) => Allocation::RoundRobin,
                _ => Allocation::LeastRecentlyUsed,
            };
            self.groups[g].allocation = allocation;
            (self.groups[g].name.clone(), allocation)
        };
        let what = format!(
            "put_group {name} {allocation} booking_timeout={:?}",
            timeout.map(|t| t.secs())
        );
        let name = &name;
        let answers = on_all!(self.stores, |s| format!(
            "{:?}",
            put_group(&s.t.store, name, allocation, timeout).await
        ));
        self.check(&what, answers)
    }

    pub async fn add_numbers(&mut self) -> Result<(), String> {
        let (g, name) = self.pick_group();
        // Pools stay small (at most 8): a full group only gets a number that is taken.
        let room = g.is_some_and(|g| self.groups[g].numbers.len() < 8);
        let mut numbers = Vec::new();
        for _ in 0..if room {
            self.rng.random_range(1..=2)
        } else {
            1
        } {
            numbers.push(self.fresh_number(&name));
        }
        let taken = self.pick_existing();
        if let Some(n) = taken.filter(|_| !room || self.chance(0.2)) {
            numbers.push(n);
        }
        let what = format!("add_numbers {name} {numbers:?}");
        let (name, list) = (&name, &numbers);
        let answers = on_all!(self.stores, |s| {
            let local = list.iter().map(|n| s.local(n)).collect();
            match s.t.store.add_numbers(name, local).await {
                Ok(AddNumbers::Taken(n, group)) => format!("Taken({}, {group})", s.to_ref(&n)),
                other => format!("{other:?}"),
            }
        });
        self.check(&what, answers)?;
        let added = self.stores.sides[0].t.store.group(name).await;
        if let (Some(g), Ok(Some(detail))) = (g, added) {
            let now: Vec<_> = detail.numbers.iter().map(|n| n.number.clone()).collect();
            let known = &mut self.groups[g].numbers;
            for n in numbers {
                // A number the group had already is left as it is, not added twice.
                if now.contains(&n) && !known.contains(&n) {
                    known.push(n);
                }
            }
        }
        Ok(())
    }

    pub async fn remove_number(&mut self) -> Result<(), String> {
        let (g, name) = self.pick_group();
        let number = match g {
            Some(g) if self.chance(0.6) && !self.groups[g].numbers.is_empty() => {
                let i = self.index(self.groups[g].numbers.len());
                self.groups[g].numbers[i].clone()
            }
            _ => self.pick_number(),
        };
        let (name_ref, n) = (&name, &number);
        let answers = on_all!(self.stores, |s| format!(
            "{:?}",
            s.t.store.remove_number(name_ref, &s.local(n)).await
        ));
        self.check(&format!("remove_number {name} {number}"), answers)?;
        if let Some(g) = g {
            self.groups[g].numbers.retain(|x| x != &number);
        }
        Ok(())
    }

    pub async fn find(&mut self) -> Result<(), String> {
        let mut filter = ReservationFilter::default();
        if self.chance(0.4) {
            filter.number = Some(self.pick_number());
        }
        if self.chance(0.4) {
            filter.session = Some(self.pick_session().1);
        }
        if self.chance(0.2) {
            filter.phone = self.phones.values().next().cloned();
        }
        let what = format!("find_reservations {filter:?}");
        let answers = self.find_answers(filter).await;
        self.check(&what, answers)
    }

    /// Live reservations in reference numbers, sorted (the trait promises no order);
    /// `expires_in` is whole seconds in this admin view (see `fmt_detail`).
    pub async fn find_answers(&self, filter: ReservationFilter) -> Vec<String> {
        let filter = &filter;
        on_all!(self.stores, |s| {
            let mut filter = filter.clone();
            filter.number = filter.number.map(|n| s.local(&n));
            match s.t.store.find_reservations(filter).await {
                Ok(views) => {
                    let mut lines: Vec<String> = views
                        .into_iter()
                        .map(|v| {
                            format!(
                                "{} in {} by {} phone={:?} has_code={} expires_in={}s",
                                s.to_ref(&v.number),
                                v.group,
                                v.session,
                                v.phone.map(|p| p.to_string()),
                                v.has_code,
                                v.expires_in
                            )
                        })
                        .collect();
                    lines.sort();
                    format!("{lines:?}")
                }
                Err(e) => format!("Err {e:?}"),
            }
        })
    }

    /// Every group's counts, by name (the trait promises no order).
    pub async fn groups(&mut self) -> Result<(), String> {
        let answers = on_all!(self.stores, |s| match s.t.store.groups().await {
            Ok(mut stats) => {
                stats.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
                format!("{stats:?}")
            }
            Err(e) => format!("Err {e:?}"),
        });
        self.check("groups", answers)
    }

    pub async fn group_detail(&mut self) -> Result<(), String> {
        let (g, name) = self.pick_group();
        self.compare_group(g, &name).await
    }

    async fn compare_group(&mut self, g: Option<usize>, name: &GroupName) -> Result<(), String> {
        let random = g.is_some_and(|g| self.groups[g].allocation == Allocation::Random);
        let answers = on_all!(self.stores, |s| match s.t.store.group(name).await {
            Ok(detail) => fmt_detail(s, detail, random),
            Err(e) => format!("Err {e:?}"),
        });
        self.check(&format!("group {name}"), answers)
    }

    /// After the last step: every group, every session, every reservation.
    pub async fn compare_everything(&mut self) -> Result<(), String> {
        self.groups().await?;
        for g in 0..self.groups.len() {
            let name = self.groups[g].name.clone();
            self.compare_group(Some(g), &name).await?;
        }
        let answers = self.find_answers(ReservationFilter::default()).await;
        self.check("find_reservations (all)", answers)?;
        // Each client's live reservations as its quota counts them (sorted: no order promised).
        for client in crate::driver::CLIENTS {
            let answers = on_all!(
                self.stores,
                |s| match s.t.store.client_holds(client).await {
                    Ok(mut holds) => {
                        holds.sort();
                        format!("{holds:?}")
                    }
                    Err(e) => format!("Err {e:?}"),
                }
            );
            self.check(&format!("client_holds {client}"), answers)?;
        }
        for i in 0..self.sessions.len() {
            let id = &self.sessions[i].id;
            let answers = on_all!(self.stores, |s| format!(
                "{:?}",
                s.t.store.session(id).await
            ));
            self.check(&format!("read s{i}"), answers)?;
        }
        Ok(())
    }
}
