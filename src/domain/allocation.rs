//! How a resource group picks the next free number.

use std::fmt;
use std::str::FromStr;

use super::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Allocation {
    /// Walk the numbers in order from where the last allocation stopped, skipping busy ones.
    #[default]
    RoundRobin,
    /// Uniformly among the free numbers.
    Random,
    /// The number that has been free the longest.
    LeastRecentlyUsed,
}

impl Allocation {
    pub const ALL: [Allocation; 3] = [Self::RoundRobin, Self::Random, Self::LeastRecentlyUsed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "round-robin",
            Self::Random => "random",
            Self::LeastRecentlyUsed => "least-recently-used",
        }
    }
}

impl FromStr for Allocation {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                ParseError::new(format!(
                    "unknown allocation {s:?}; expected round-robin, random or least-recently-used"
                ))
            })
    }
}

impl fmt::Display for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_name() {
        for a in Allocation::ALL {
            assert_eq!(a.as_str().parse::<Allocation>(), Ok(a));
        }
        assert!("LOCAL".parse::<Allocation>().is_err());
        assert!("Round-Robin".parse::<Allocation>().is_err());
    }
}
