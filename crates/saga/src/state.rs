//! The saga's identity and where it stands: its status and phase.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The id of one saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct SagaId(Uuid);

impl SagaId {
    /// A new, time-ordered (v7) id.
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The UUID underneath.
    #[must_use]
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for SagaId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for SagaId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl FromStr for SagaId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl fmt::Display for SagaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a saga is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Sending its steps forward, awaiting the current step's reply.
    Running,
    /// Undoing its completed steps, awaiting the current compensation's reply.
    Compensating,
    /// Every step completed.
    Completed,
    /// A step failed (or ran out of time) and every compensation completed.
    Failed,
    /// A compensation failed or ran out of time: an operator must look.
    Stuck,
}

impl Status {
    /// Every status.
    pub const ALL: [Self; 5] = [Self::Running, Self::Compensating, Self::Completed, Self::Failed, Self::Stuck];

    /// The name stored and shown.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Compensating => "compensating",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Stuck => "stuck",
        }
    }

    /// Whether the saga is over (completed or failed); a stuck saga is not.
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`Status`] or [`Phase`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown saga status or phase {0:?}")]
pub struct UnknownName(pub String);

impl FromStr for Status {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// Which way a saga is going: its steps, or their compensations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The current step's command is outstanding.
    Forward,
    /// The current step's compensation is outstanding.
    Compensation,
}

impl Phase {
    /// The name stored and shown.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Compensation => "compensation",
        }
    }

    /// The status of a saga awaiting a reply in this phase.
    #[must_use]
    pub const fn awaiting(self) -> Status {
        match self {
            Self::Forward => Status::Running,
            Self::Compensation => Status::Compensating,
        }
    }
}

impl FromStr for Phase {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Forward, Self::Compensation]
            .into_iter()
            .find(|phase| phase.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_owned()))
    }
}

/// A point in a saga: a step, going forward or being compensated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    /// The direction.
    pub phase: Phase,
    /// The step's index.
    pub step: usize,
}
