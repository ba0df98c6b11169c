//! Roles, ordered: `viewer` < `officer` < `admin`. A token may use every
//! endpoint whose required role is at most its own.
//!
//! - `viewer` (người xem): indicators and sync status — aggregates only;
//! - `officer` (cán bộ): also case summaries, each read audited;
//! - `admin` (quản trị): also parked messages (which can hold raw events)
//!   and their replay.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Officer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Officer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Officer => "officer",
            Role::Admin => "admin",
        }
    }

    /// Whether a token of this role may use an endpoint that needs `need`.
    pub fn allows(self, need: Role) -> bool {
        self >= need
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}; roles are viewer, officer, admin")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_round_trip() {
        assert!(Role::Viewer < Role::Officer && Role::Officer < Role::Admin);
        assert!(Role::Admin.allows(Role::Officer) && Role::Officer.allows(Role::Officer));
        assert!(!Role::Viewer.allows(Role::Officer) && !Role::Officer.allows(Role::Admin));
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{r}\""));
        }
        assert!("root".parse::<Role>().unwrap_err().to_string().contains("viewer, officer, admin"));
    }
}
