//! Identifiers: the node, service sessions (`<node>-<uuid>`), stored data, groups and services.

use std::fmt;

use super::ParseError;

/// A fresh UUID (v4 layout) from the thread's generator: rand's `ThreadRng`, a CSPRNG seeded
/// from the kernel, rather than `Uuid::new_v4`, which asks the kernel (one `getrandom`
/// system call) for every id. Request and event ids are made on every request; the system
/// call showed in the profiles (`docs/performance.md`).
pub fn uuid_v4() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// A node's short id: 1 to 16 ASCII letters, digits or `_` (no `-`: it separates the id parts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId(String);

impl NodeId {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty()
            || s.len() > 16
            || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ParseError::new(format!(
                "{s:?} is not a node id (1 to 16 letters, digits or _)"
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for NodeId {
    fn default() -> Self {
        Self("1".into())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Ids that arrive in URLs and parameters: 1 to 128 visible ASCII characters, no `/`.
fn parse_opaque_id(s: &str, what: &str) -> Result<String, ParseError> {
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        return Err(ParseError::new(format!("{s:?} is not a {what} id")));
    }
    Ok(s.to_owned())
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh id, `<node>-<uuid v4>`.
            pub fn generate(node: &NodeId) -> Self {
                Self(format!("{node}-{}", uuid::Uuid::new_v4()))
            }

            pub fn parse(s: &str) -> Result<Self, ParseError> {
                parse_opaque_id(s, $what).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

opaque_id!(
    /// A service session's id, e.g. `1-887ad635-22b1-49c5-ae7b-3b271bc10289`.
    SessionId,
    "session"
);
opaque_id!(
    /// The id of a record in the storage API (a session's data has one too).
    DataId,
    "storage"
);

/// What ends a session's data id: `<session id>.data`.
const SESSION_DATA_SUFFIX: &str = ".data";

impl DataId {
    /// The id of a session's data: `<session id>.data`. Why derived and not random: the
    /// storage API must know whose data an id names (a service's own credentials guard its
    /// sessions' data), and an id the server derives is one no client can choose.
    pub fn of_session(session: &SessionId) -> DataId {
        DataId(format!("{session}{SESSION_DATA_SUFFIX}"))
    }

    /// The session whose data this is, when it is a session's (see [`DataId::of_session`]).
    pub fn session(&self) -> Option<SessionId> {
        let id = self.0.strip_suffix(SESSION_DATA_SUFFIX)?;
        SessionId::parse(id).ok()
    }
}

/// Names from the config file or the admin API: 1 to 64 characters, no `/` or control
/// characters, not `.` or `..`: a name is a segment of its routes' paths, and those two are
/// not segments a browser or a proxy keeps (`/admin/groups/..` becomes `/admin/`: the page
/// could list such a group and never open or delete it).
///
/// A name read back from a store is held to the rules it was written under (`stored`): `.`
/// and `..` were allowed before, and a store holding one must still open.
fn parse_name(s: &str, what: &str, stored: bool) -> Result<String, ParseError> {
    if s.is_empty()
        || (!stored && (s == "." || s == ".."))
        || s.chars().count() > 64
        || s.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(ParseError::new(format!(
            "{s:?} is not a {what} name (1 to 64 characters, no / or control characters, \
             not . or ..)"
        )));
    }
    Ok(s.to_owned())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                parse_name(s, $what, false).map(Self)
            }

            /// A name as a store keeps it (see `parse_name`).
            pub fn from_stored(s: &str) -> Result<Self, ParseError> {
                parse_name(s, $what, true).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A resource group's name (case-sensitive), e.g. `DNIS`.
    GroupName,
    "resource group"
);
name_type!(
    /// A configured service's name (case-sensitive), e.g. `request-access` or `callback`.
    ServiceName,
    "service"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids() {
        assert!(NodeId::parse("1").is_ok());
        assert!(NodeId::parse("node_7").is_ok());
        for bad in ["", "a-b", "x y", "12345678901234567"] {
            assert!(NodeId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn session_ids_carry_the_node() {
        let node = NodeId::parse("42").expect("valid");
        let id = SessionId::generate(&node);
        assert!(id.as_str().starts_with("42-"));
        assert_eq!(id.as_str().len(), 3 + 36);
        assert_eq!(SessionId::parse(id.as_str()), Ok(id));
        assert!(SessionId::parse("a/b").is_err());
        assert!(SessionId::parse("").is_err());
    }

    #[test]
    fn names() {
        assert!(GroupName::parse("DNIS").is_ok());
        assert!(GroupName::parse("Ventes été").is_ok());
        assert!(GroupName::parse("a/b").is_err());
        for dots in [".", ".."] {
            assert!(GroupName::parse(dots).is_err(), "{dots}");
            assert!(ServiceName::parse(dots).is_err(), "{dots}");
        }
        assert!(GroupName::parse("...").is_ok());
        assert!(
            GroupName::from_stored("..").is_ok(),
            "a store that holds one still opens"
        );
        assert!(ServiceName::parse("").is_err());
    }
}
