//! The reservation lifecycle as events: what a store records, in the same transaction as the
//! change itself, for webhooks (`[events]`) and the live stream (`GET /genesys/1/admin/events`).
//!
//! Stores produce [`Event`]s where a reservation starts or ends (the decision core says which
//! ending it was); delivery and streaming live beside this file and never decide anything.

pub mod deliver;
mod pace;

use std::fmt;

use crate::domain::{AccessNumber, GroupName, SessionId, UnixMillis};

/// What happened to a reservation or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A new reservation (a renewal is not a new one).
    Created,
    Matched,
    /// A call matched a reservation that had ended within the group's `late_match_grace`.
    LateMatch,
    /// Ended unmatched by reaching its expiry.
    Expired,
    /// Ended by an operator, or because its session ended.
    Released,
    /// Cancelled by too many wrong codes.
    Locked,
    /// The number was put in quarantine by stray calls.
    Quarantined,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        Self::Created,
        Self::Matched,
        Self::LateMatch,
        Self::Expired,
        Self::Released,
        Self::Locked,
        Self::Quarantined,
    ];

    /// The contract's name, as sent in the `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "reservation.created",
            Self::Matched => "reservation.matched",
            Self::LateMatch => "reservation.late_match",
            Self::Expired => "reservation.expired",
            Self::Released => "reservation.released",
            Self::Locked => "reservation.locked",
            Self::Quarantined => "number.quarantined",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One lifecycle event. `id` is unique and stays the same across delivery retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    /// When it happened (an expiry is dated at the reservation's `expires_at`, even when a
    /// store notices it later).
    pub time: UnixMillis,
    pub group: GroupName,
    pub number: AccessNumber,
    /// The reservation's session; `None` for number events (quarantine).
    pub session: Option<SessionId>,
}

impl Event {
    /// A new event with a fresh id (`domain::uuid_v4`: every reservation that starts or ends
    /// makes one, memory and SQLite stores alike, whether or not anyone listens).
    pub fn new(
        kind: EventKind,
        time: UnixMillis,
        group: GroupName,
        number: AccessNumber,
        session: Option<SessionId>,
    ) -> Self {
        Self {
            id: crate::domain::uuid_v4().to_string(),
            kind,
            time,
            group,
            number,
            session,
        }
    }

    /// The JSON body posted to the webhook and sent on the stream:
    /// `{"id","type","time","group","number","session"}`, `time` in RFC 3339 UTC.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "time": rfc3339(self.time),
            "group": self.group.as_str(),
            "number": self.number.as_str(),
            "session": self.session.as_ref().map(|s| s.as_str()),
        })
    }
}

/// Committed events, live, for the admin event stream: a store publishes each event after the
/// change that made it is durable. Receivers that fall behind lose events (the stream is a
/// view; the webhook outbox is the at-least-once path).
pub type Bus = tokio::sync::broadcast::Sender<Event>;

/// A bus with room for a few seconds of events at full speed.
pub fn bus() -> Bus {
    tokio::sync::broadcast::channel(4096).0
}

/// `2026-12-04T12:00:00.123Z` for a time in milliseconds since the epoch.
fn rfc3339(t: UnixMillis) -> String {
    let secs = t.0.div_euclid(1000);
    let ms = t.0.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UnixMillis(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UnixMillis(1_796_385_600_123)),
            "2026-12-04T12:00:00.123Z"
        );
        assert_eq!(
            rfc3339(UnixMillis(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }
}
