//! Administration: groups with their counts and history, numbers, reservations. Every change
//! goes through the store, so it applies to every node sharing it and never breaks a live
//! reservation (a removed busy number retires when its reservation ends).

use crate::advisor::{Advice, advise};
use crate::domain::{AccessNumber, GroupName, SessionId};
use crate::metrics::Window;
use crate::store::{
    AddNumbers, DeleteGroup, FreeNumber, GroupChange, GroupDetail, GroupStats, NumberState,
    NumberView, NumbersFilter, PutGroup, RemoveNumber, ReservationFilter, ReservationView,
};

use super::audit::{Actor, AuditAction, AuditEntry, AuditTarget};
use super::{Broker, BrokerError, now_minute};

/// A group as the admin API shows it: counts, utilisation and the last hour's refusals.
/// (Plain data: the JSON shape is `http::admin_views`'s.)
#[derive(Debug, Clone)]
pub struct GroupOverview {
    pub stats: GroupStats,
    /// The config file defines the group: every start applies the file to it again, so an
    /// admin change to it lasts until the next start (README, "Admin API").
    pub defined_in_config: bool,
    pub utilisation: f64,
    pub refusals: u64,
    pub last_hour: Window,
}

#[derive(Debug, Clone)]
pub struct GroupPage {
    pub overview: GroupOverview,
    pub advice: Advice,
    /// Numbers that passed the page's filter, before its limit.
    pub listed: u64,
    pub numbers: Vec<NumberView>,
}

/// What `/ready` reports: the store answered.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// The backend's name: `memory`, `sqlite` or `postgres`.
    pub store: &'static str,
}

impl Broker {
    fn overview(&self, stats: GroupStats) -> GroupOverview {
        let last_hour = self.metrics.last_hour(stats.name.as_str(), now_minute());
        let utilisation = if stats.size == 0 {
            0.0
        } else {
            stats.reserved as f64 / stats.size as f64
        };
        GroupOverview {
            refusals: last_hour.refusals,
            utilisation,
            last_hour,
            defined_in_config: self.is_config_group(&stats.name),
            stats,
        }
    }

    /// Every group; also refreshes the pool gauges and the advisor's occupancy samples.
    pub async fn admin_groups(&self) -> Result<Vec<GroupOverview>, BrokerError> {
        let groups = self.store.groups().await?;
        self.metrics.sample_pools(&groups, now_minute());
        Ok(groups.into_iter().map(|g| self.overview(g)).collect())
    }

    /// A group's page: its overview, advice, and the numbers `filter` lets through.
    pub async fn admin_group(
        &self,
        name: &GroupName,
        filter: &NumbersFilter,
    ) -> Result<GroupPage, BrokerError> {
        let GroupDetail {
            stats,
            listed,
            numbers,
        } = self
            .store
            .group_page(name, filter)
            .await?
            .ok_or_else(|| unknown_group(name))?;
        let overview = self.overview(stats);
        let advice = advise(&overview.last_hour);
        Ok(GroupPage {
            overview,
            advice,
            listed,
            numbers,
        })
    }

    /// Creates a group (with its first numbers) or changes its settings and adds numbers, in
    /// one store operation (why: a read-merge-write here could lose a concurrent change, and a
    /// taken number after the settings were written would leave the change half-made).
    /// Answers whether it was created, and the group as it is now. Audited: the settings read
    /// just before serve only the `old→new` of the audit detail, never the change itself.
    pub async fn admin_put_group(
        &self,
        user: &Actor,
        change: GroupChange,
    ) -> Result<(bool, GroupOverview), BrokerError> {
        let name = change.name.clone();
        let result = self.put_group(change).await;
        self.audit.outcome(
            user,
            target(AuditAction::PutGroup, Some(&name), None),
            result,
        )
    }

    async fn put_group(
        &self,
        change: GroupChange,
    ) -> Result<((bool, GroupOverview), String), BrokerError> {
        let name = change.name.clone();
        let sent = listed(&change.numbers);
        let before = self.stats_of(&name).await?;
        let created = match self.store.put_group(change).await? {
            PutGroup::Created => true,
            PutGroup::Changed => false,
            PutGroup::Taken(number, owner) => {
                return Err(BrokerError::NumberTaken { number, owner });
            }
        };
        let overview = self
            .admin_group(&name, &NumbersFilter::none())
            .await?
            .overview;
        // Numbers the group had already are not added again (`Store::put_group`).
        let added = overview
            .stats
            .size
            .saturating_sub(before.as_ref().map_or(0, |b| b.size));
        let detail = put_detail(before.as_ref(), &overview.stats, added, &sent);
        Ok(((created, overview), detail))
    }

    /// A group's counts and settings, without listing its numbers.
    async fn stats_of(&self, name: &GroupName) -> Result<Option<GroupStats>, BrokerError> {
        // This group's page without its numbers: on PostgreSQL every group's counts scanned
        // every number of every group.
        let page = self.store.group_page(name, &NumbersFilter::none()).await?;
        Ok(page.map(|detail| detail.stats))
    }

    /// Whether the config file defines this group (it comes back at every start).
    fn is_config_group(&self, name: &GroupName) -> bool {
        self.config.groups.iter().any(|g| g.settings.name == *name)
    }

    /// Deletes a group. A group the config file defines is refused unless `force`: it would
    /// come back at the next start, which is rarely what the operator meant.
    pub async fn admin_delete_group(
        &self,
        user: &Actor,
        name: &GroupName,
        force: bool,
    ) -> Result<(), BrokerError> {
        let result = self.delete_group(name, force).await;
        self.audit.outcome(
            user,
            target(AuditAction::DeleteGroup, Some(name), None),
            result,
        )
    }

    async fn delete_group(
        &self,
        name: &GroupName,
        force: bool,
    ) -> Result<((), String), BrokerError> {
        let configured = self.is_config_group(name);
        if configured && !force {
            // An unknown name answers 404 like any other; only a group that exists is refused,
            // and one that holds live reservations says so first: `force` would not help (the
            // page asked the operator to confirm a forced delete that was then refused).
            let Some(stats) = self.stats_of(name).await? else {
                return Err(unknown_group(name));
            };
            if stats.reserved + stats.retiring > 0 {
                return Err(BrokerError::GroupBusy(name.clone()));
            }
            return Err(BrokerError::ConfigGroup(name.clone()));
        }
        match self.store.delete_group(name).await? {
            DeleteGroup::Deleted => {}
            DeleteGroup::NotFound => return Err(unknown_group(name)),
            DeleteGroup::Busy => return Err(BrokerError::GroupBusy(name.clone())),
        }
        let detail = if configured {
            "group deleted (defined in the config file: force=true; it comes back at the next start)"
        } else {
            "group deleted"
        };
        Ok(((), detail.to_owned()))
    }

    pub async fn admin_add_numbers(
        &self,
        user: &Actor,
        name: &GroupName,
        numbers: Vec<AccessNumber>,
    ) -> Result<u64, BrokerError> {
        let sent = listed(&numbers);
        let result = match self.store.add_numbers(name, numbers).await {
            Ok(AddNumbers::Added(n)) => Ok((n, format!("{n} numbers added (of {sent})"))),
            Ok(AddNumbers::UnknownGroup) => Err(unknown_group(name)),
            Ok(AddNumbers::Taken(number, owner)) => Err(BrokerError::NumberTaken { number, owner }),
            Err(e) => Err(e.into()),
        };
        self.audit.outcome(
            user,
            target(AuditAction::AddNumbers, Some(name), None),
            result,
        )
    }

    /// Removes a number: `"removed"` at once, or `"retiring"` until its reservation ends.
    /// The last number in service of a group the config file defines is refused unless
    /// `force` (the group would lend nothing until the next start puts its numbers back).
    ///
    /// The last-number check reads the group before removing, so two operators removing a
    /// config group's last two numbers at the same moment could both pass: it guards against
    /// a slip of the hand, not against a race, and the next start restores the numbers anyway.
    pub async fn admin_remove_number(
        &self,
        user: &Actor,
        name: &GroupName,
        number: &AccessNumber,
        force: bool,
    ) -> Result<&'static str, BrokerError> {
        let result = self.remove_number(name, number, force).await;
        self.audit.outcome(
            user,
            target(AuditAction::RemoveNumber, Some(name), Some(number)),
            result,
        )
    }

    async fn remove_number(
        &self,
        name: &GroupName,
        number: &AccessNumber,
        force: bool,
    ) -> Result<(&'static str, String), BrokerError> {
        if !force && self.is_config_group(name) && self.is_last_in_service(name, number).await? {
            return Err(BrokerError::LastConfigNumber {
                group: name.clone(),
                number: number.clone(),
            });
        }
        let state = match self.store.remove_number(name, number).await? {
            RemoveNumber::Removed => "removed",
            RemoveNumber::Retiring => "retiring",
            RemoveNumber::UnknownGroup => return Err(unknown_group(name)),
            RemoveNumber::UnknownNumber => {
                return Err(BrokerError::NumberNotInGroup {
                    group: name.clone(),
                    number: number.clone(),
                });
            }
        };
        let detail = match state {
            "removed" => format!("number {number} removed"),
            _ => format!("number {number} retiring: it leaves when its reservation ends"),
        };
        Ok((state, detail))
    }

    /// Ends a number's cool-down or quarantine. Answers `freed`, or `unchanged` when the
    /// number was neither cooling nor quarantined (freeing twice is harmless).
    pub async fn admin_free_number(
        &self,
        user: &Actor,
        name: &GroupName,
        number: &AccessNumber,
    ) -> Result<&'static str, BrokerError> {
        let result = async {
            let state = match self.store.free_number(name, number).await? {
                FreeNumber::Freed => "freed",
                FreeNumber::NotResting => "unchanged",
                FreeNumber::UnknownGroup => return Err(unknown_group(name)),
                FreeNumber::UnknownNumber => {
                    return Err(BrokerError::NumberNotInGroup {
                        group: name.clone(),
                        number: number.clone(),
                    });
                }
            };
            Ok((state, format!("number {number} {state}")))
        }
        .await;
        self.audit.outcome(
            user,
            target(AuditAction::FreeNumber, Some(name), Some(number)),
            result,
        )
    }

    /// Whether `number` is the group's only number in service (free or reserved, not retiring).
    /// Counts first, so a large group is never listed; only a group of one number is.
    async fn is_last_in_service(
        &self,
        name: &GroupName,
        number: &AccessNumber,
    ) -> Result<bool, BrokerError> {
        match self.stats_of(name).await? {
            Some(stats) if stats.size == 1 => {}
            _ => return Ok(false),
        }
        let Some(detail) = self.store.group(name).await? else {
            return Ok(false);
        };
        Ok(detail
            .numbers
            .iter()
            .any(|n| n.number == *number && !matches!(n.state, NumberState::Retiring { .. })))
    }

    pub async fn admin_reservations(
        &self,
        filter: ReservationFilter,
    ) -> Result<Vec<ReservationView>, BrokerError> {
        Ok(self.store.find_reservations(filter).await?)
    }

    /// Releases the number's reservation; returns its session and group as read just before
    /// (`None` if that read failed or raced another end), as the audit line names them.
    pub async fn admin_release(
        &self,
        user: &Actor,
        number: &AccessNumber,
    ) -> Result<Option<(SessionId, GroupName)>, BrokerError> {
        // The reservation, for the audit line (read first: the release ends it).
        let filter = ReservationFilter {
            number: Some(number.clone()),
            ..Default::default()
        };
        let held = match self.store.find_reservations(filter).await {
            Ok(found) => found.into_iter().next().map(|r| (r.session, r.group)),
            Err(_) => None,
        };
        let group = held.as_ref().map(|(_, group)| group.clone());
        let result = match self.store.release(number).await {
            Ok(true) => Ok((held, format!("reservation on {number} released"))),
            Ok(false) => Err(BrokerError::NoReservation(number.clone())),
            Err(e) => Err(e.into()),
        };
        self.audit.outcome(
            user,
            target(AuditAction::Release, group.as_ref(), Some(number)),
            result,
        )
    }

    /// The admin changes this node saw lately, newest first (see `broker::audit`).
    pub fn admin_audit(&self) -> Vec<AuditEntry> {
        self.audit.recent()
    }
}

fn target<'a>(
    action: AuditAction,
    group: Option<&'a GroupName>,
    number: Option<&'a AccessNumber>,
) -> AuditTarget<'a> {
    AuditTarget {
        action,
        group,
        number,
    }
}

/// What a PUT changed, `old→new` for each setting that moved: `allocation round-robin→random,
/// booking_expiration_timeout 30 (default)→90, cool_down 5→0, 5 numbers added`; a new group
/// lists every setting.
fn put_detail(before: Option<&GroupStats>, after: &GroupStats, added: u64, sent: &str) -> String {
    let now = settings(after);
    let Some(before) = before else {
        let all: Vec<String> = now.iter().map(|(k, v)| format!("{k} {v}")).collect();
        return format!(
            "group created: {}, {added} numbers ({sent})",
            all.join(", ")
        );
    };
    let mut changes = crate::store::setting_changes(settings(before), now);
    if added > 0 {
        changes.push(format!("{added} numbers added (of {sent})"));
    }
    if changes.is_empty() {
        "no change".to_owned()
    } else {
        changes.join(", ")
    }
}

/// A group's settings as the admin API names them, each with its value as the log shows it.
fn settings(g: &GroupStats) -> [(&'static str, String); 7] {
    crate::store::described_settings(g.allocation, g.booking_timeout, &g.policy)
}

/// A node sharing the store, and how long ago it last showed signs of life.
#[derive(Debug, Clone)]
pub struct NodeSeen {
    pub node_id: String,
    pub seen_seconds_ago: u64,
    pub this_node: bool,
}

impl Broker {
    /// The nodes sharing the store (PostgreSQL), or just this one.
    pub async fn admin_nodes(&self) -> Result<Vec<NodeSeen>, BrokerError> {
        let me = self.config.server.node_id.to_string();
        let mut nodes: Vec<NodeSeen> = self
            .store
            .nodes()
            .await?
            .into_iter()
            .map(|(node_id, seen_seconds_ago)| NodeSeen {
                this_node: node_id == me,
                node_id,
                seen_seconds_ago,
            })
            .collect();
        if !nodes.iter().any(|n| n.this_node) {
            nodes.push(NodeSeen {
                node_id: me,
                seen_seconds_ago: 0,
                this_node: true,
            });
        }
        Ok(nodes)
    }

    /// Whether the store answers, for `/ready`.
    pub async fn ready(&self) -> Result<Ready, BrokerError> {
        self.store.ping().await?;
        Ok(Ready {
            store: self.store.kind(),
        })
    }
}

fn unknown_group(name: &GroupName) -> BrokerError {
    BrokerError::GroupNotFound(name.clone())
}

/// Most runs an audit line lists of the numbers a request sent.
const LISTED_RUNS: usize = 10;

/// The numbers a request sent, as the audit line names them: runs of consecutive numbers as
/// ranges (`4000-4002, 4005`), at most [`LISTED_RUNS`] of them, then how many more.
fn listed(numbers: &[AccessNumber]) -> String {
    let mut runs: Vec<(&str, &str)> = Vec::new();
    for n in numbers {
        let next = |last: &str| {
            last.len() == n.as_str().len()
                && matches!((last.parse::<u128>(), n.as_str().parse::<u128>()), (Ok(a), Ok(b)) if b == a + 1)
        };
        match runs.last_mut() {
            Some((_, last)) if next(last) => *last = n.as_str(),
            _ => runs.push((n.as_str(), n.as_str())),
        }
    }
    let mut parts: Vec<String> = runs
        .iter()
        .take(LISTED_RUNS)
        .map(|&(a, b)| {
            if a == b {
                a.to_owned()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    if runs.len() > LISTED_RUNS {
        parts.push(format!("and {} more runs", runs.len() - LISTED_RUNS));
    }
    match parts.is_empty() {
        true => "none".to_owned(),
        false => parts.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_numbers_run_as_ranges() {
        let n = |s: &str| AccessNumber::parse(s).expect("number");
        let sent: Vec<AccessNumber> = ["4000", "4001", "4002", "4005", "0999", "1000"]
            .iter()
            .map(|s| n(s))
            .collect();
        assert_eq!(listed(&sent), "4000-4002, 4005, 0999-1000");
        let many: Vec<AccessNumber> = (0..30).map(|i| n(&format!("5{:03}", i * 2))).collect();
        assert_eq!(
            listed(&many),
            "5000, 5002, 5004, 5006, 5008, 5010, 5012, 5014, 5016, 5018, and 20 more runs"
        );
        assert_eq!(listed(&[]), "none");
    }
}
