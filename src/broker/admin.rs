//! Administration: groups with their counts and history, numbers, reservations. Every change
//! goes through the store, so it applies to every node sharing it and never breaks a live
//! reservation (a removed busy number retires when its reservation ends).

use crate::advisor::{Advice, advise};
use crate::domain::{AccessNumber, GroupName};
use crate::metrics::Window;
use crate::store::{
    AddNumbers, DeleteGroup, GroupChange, GroupDetail, GroupStats, NumberView, PutGroup,
    RemoveNumber, ReservationFilter, ReservationView,
};

use super::{Broker, BrokerError, now_minute};

/// A group as the admin API shows it: counts, utilisation and the last hour's refusals.
/// (Plain data: the JSON shape is `http::admin_views`'s.)
#[derive(Debug, Clone)]
pub struct GroupOverview {
    pub stats: GroupStats,
    pub utilisation: f64,
    pub refusals: u64,
    pub last_hour: Window,
}

#[derive(Debug, Clone)]
pub struct GroupPage {
    pub overview: GroupOverview,
    pub advice: Advice,
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
            stats,
        }
    }

    /// Every group; also refreshes the pool gauges and the advisor's occupancy samples.
    pub async fn admin_groups(&self) -> Result<Vec<GroupOverview>, BrokerError> {
        let groups = self.store.groups().await?;
        self.metrics.sample_pools(&groups, now_minute());
        Ok(groups.into_iter().map(|g| self.overview(g)).collect())
    }

    pub async fn admin_group(&self, name: &GroupName) -> Result<GroupPage, BrokerError> {
        let GroupDetail { stats, numbers } = self
            .store
            .group(name)
            .await?
            .ok_or_else(|| unknown_group(name))?;
        let overview = self.overview(stats);
        let advice = advise(&overview.last_hour);
        Ok(GroupPage {
            overview,
            advice,
            numbers,
        })
    }

    /// Creates a group (with its first numbers) or changes its settings and adds numbers, in
    /// one store operation (why: a read-merge-write here could lose a concurrent change, and a
    /// taken number after the settings were written would leave the change half-made).
    /// Answers whether it was created, and the group as it is now.
    pub async fn admin_put_group(
        &self,
        change: GroupChange,
    ) -> Result<(bool, GroupOverview), BrokerError> {
        let name = change.name.clone();
        let created = match self.store.put_group(change).await? {
            PutGroup::Created => true,
            PutGroup::Changed => false,
            PutGroup::Taken(number, owner) => {
                return Err(BrokerError::NumberTaken { number, owner });
            }
        };
        Ok((created, self.admin_group(&name).await?.overview))
    }

    pub async fn admin_delete_group(&self, name: &GroupName) -> Result<(), BrokerError> {
        match self.store.delete_group(name).await? {
            DeleteGroup::Deleted => Ok(()),
            DeleteGroup::NotFound => Err(unknown_group(name)),
            DeleteGroup::Busy => Err(BrokerError::GroupBusy(name.clone())),
        }
    }

    pub async fn admin_add_numbers(
        &self,
        name: &GroupName,
        numbers: Vec<AccessNumber>,
    ) -> Result<u64, BrokerError> {
        match self.store.add_numbers(name, numbers).await? {
            AddNumbers::Added(n) => Ok(n),
            AddNumbers::UnknownGroup => Err(unknown_group(name)),
            AddNumbers::Taken(number, owner) => Err(BrokerError::NumberTaken { number, owner }),
        }
    }

    /// Removes a number: `"removed"` at once, or `"retiring"` until its reservation ends.
    pub async fn admin_remove_number(
        &self,
        name: &GroupName,
        number: &AccessNumber,
    ) -> Result<&'static str, BrokerError> {
        match self.store.remove_number(name, number).await? {
            RemoveNumber::Removed => Ok("removed"),
            RemoveNumber::Retiring => Ok("retiring"),
            RemoveNumber::UnknownGroup => Err(unknown_group(name)),
            RemoveNumber::UnknownNumber => Err(BrokerError::NumberNotInGroup {
                group: name.clone(),
                number: number.clone(),
            }),
        }
    }

    pub async fn admin_reservations(
        &self,
        filter: ReservationFilter,
    ) -> Result<Vec<ReservationView>, BrokerError> {
        Ok(self.store.find_reservations(filter).await?)
    }

    pub async fn admin_release(&self, number: &AccessNumber) -> Result<(), BrokerError> {
        match self.store.release(number).await? {
            true => Ok(()),
            false => Err(BrokerError::NoReservation(number.clone())),
        }
    }
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
