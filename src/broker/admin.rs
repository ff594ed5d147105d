//! Administration: groups with their counts and history, numbers, reservations. Every change
//! goes through the store, so it applies to every node sharing it and never breaks a live
//! reservation (a removed busy number retires when its reservation ends).

use crate::advisor::{Advice, advise};
use crate::domain::{AccessNumber, GroupName};
use crate::http::error::ApiError;
use crate::metrics::Window;
use crate::store::{
    AddNumbers, DeleteGroup, GroupDetail, GroupSettings, GroupStats, RemoveNumber,
    ReservationFilter, ReservationView,
};

use super::{Broker, now_minute};

/// A group as the admin API shows it: counts, utilisation and the last hour's refusals.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupOverview {
    #[serde(flatten)]
    pub stats: GroupStats,
    pub utilisation: f64,
    pub refusals: u64,
    pub last_hour: Window,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupPage {
    #[serde(flatten)]
    pub overview: GroupOverview,
    pub advice: Advice,
    pub numbers: Vec<crate::store::NumberView>,
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
    pub async fn admin_groups(&self) -> Result<Vec<GroupOverview>, ApiError> {
        let groups = self.store.groups().await?;
        self.metrics.sample_pools(&groups, now_minute());
        Ok(groups.into_iter().map(|g| self.overview(g)).collect())
    }

    pub async fn admin_group(&self, name: &GroupName) -> Result<GroupPage, ApiError> {
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

    /// Creates a group (with its first numbers) or changes its settings; `true` when created.
    pub async fn admin_put_group(
        &self,
        settings: GroupSettings,
        numbers: Vec<AccessNumber>,
    ) -> Result<bool, ApiError> {
        let name = settings.name.clone();
        let created = self.store.put_group(settings).await?;
        if !numbers.is_empty() {
            self.admin_add_numbers(&name, numbers).await?;
        }
        Ok(created)
    }

    pub async fn admin_delete_group(&self, name: &GroupName) -> Result<(), ApiError> {
        match self.store.delete_group(name).await? {
            DeleteGroup::Deleted => Ok(()),
            DeleteGroup::NotFound => Err(unknown_group(name)),
            DeleteGroup::Busy => Err(ApiError::Conflict(format!(
                "group {name} holds live reservations; release them or wait for them to end"
            ))),
        }
    }

    pub async fn admin_add_numbers(
        &self,
        name: &GroupName,
        numbers: Vec<AccessNumber>,
    ) -> Result<u64, ApiError> {
        match self.store.add_numbers(name, numbers).await? {
            AddNumbers::Added(n) => Ok(n),
            AddNumbers::UnknownGroup => Err(unknown_group(name)),
            AddNumbers::Taken(number, owner) => Err(ApiError::invalid(
                "numbers",
                format!("{number} already belongs to group {owner}"),
            )),
        }
    }

    /// Removes a number: `"removed"` at once, or `"retiring"` until its reservation ends.
    pub async fn admin_remove_number(
        &self,
        name: &GroupName,
        number: &AccessNumber,
    ) -> Result<&'static str, ApiError> {
        match self.store.remove_number(name, number).await? {
            RemoveNumber::Removed => Ok("removed"),
            RemoveNumber::Retiring => Ok("retiring"),
            RemoveNumber::UnknownGroup => Err(unknown_group(name)),
            RemoveNumber::UnknownNumber => Err(ApiError::NotFound(format!(
                "number {number} is not in group {name}"
            ))),
        }
    }

    pub async fn admin_reservations(
        &self,
        filter: ReservationFilter,
    ) -> Result<Vec<ReservationView>, ApiError> {
        Ok(self.store.find_reservations(filter).await?)
    }

    pub async fn admin_release(&self, number: &AccessNumber) -> Result<(), ApiError> {
        match self.store.release(number).await? {
            true => Ok(()),
            false => Err(ApiError::NotFound(format!(
                "number {number} holds no live reservation"
            ))),
        }
    }
}

/// A node sharing the store, and how long ago it last showed signs of life.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeSeen {
    pub node_id: String,
    pub seen_seconds_ago: u64,
    pub this_node: bool,
}

impl Broker {
    /// The nodes sharing the store (PostgreSQL), or just this one.
    pub async fn admin_nodes(&self) -> Result<Vec<NodeSeen>, ApiError> {
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
}

fn unknown_group(name: &GroupName) -> ApiError {
    ApiError::NotFound(format!("resource group {name} not found"))
}
