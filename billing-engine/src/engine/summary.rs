//! Counts over the partitions' hot state, so that no report scans the file: one
//! organisation's accounts for the operators' dashboard and portfolio-at-risk report, and the
//! whole partition's census for the metrics gauges.

use serde::Serialize;

use super::{Partition, Unit};
use crate::account::{LoadState, Reason};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How one organisation's installed units stand right now. Covers the units that have an
/// account of the organisation (units in stock have none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OrgSummary {
    /// Accounts of the organisation.
    pub accounts: u64,
    /// Units whose device says it is online.
    pub online: u64,
    /// Units whose device is offline (or never connected).
    pub offline: u64,
    /// Units the billing rules switched off because the balance fell below the limit.
    pub switched_off_for_credit: u64,
    /// Units an operator holds in Offline Disable.
    pub offline_disabled: u64,
    /// Accounts below their negative charge limit for at least 7 days.
    pub below_limit_7d: u64,
    /// Accounts below their negative charge limit for at least 30 days.
    pub below_limit_30d: u64,
}

impl OrgSummary {
    /// Adds another partition's counts.
    pub fn add(&mut self, other: &OrgSummary) {
        self.accounts += other.accounts;
        self.online += other.online;
        self.offline += other.offline;
        self.switched_off_for_credit += other.switched_off_for_credit;
        self.offline_disabled += other.offline_disabled;
        self.below_limit_7d += other.below_limit_7d;
        self.below_limit_30d += other.below_limit_30d;
    }

    fn count(&mut self, unit: &Unit, since_ms: Option<i64>, now_ms: i64) {
        self.accounts += 1;
        match unit.state.online {
            true => self.online += 1,
            false => self.offline += 1,
        }
        let record = unit.account.as_ref();
        if record.is_some_and(|record| {
            record.account.desired_load() == (LoadState::Off, Reason::CreditExhausted)
        }) {
            self.switched_off_for_credit += 1;
        }
        self.offline_disabled += u64::from(unit.state.offline_disabled);
        if let Some(since_ms) = since_ms {
            let days = (now_ms - since_ms) / DAY_MS;
            self.below_limit_7d += u64::from(days >= 7);
            self.below_limit_30d += u64::from(days >= 30);
        }
    }
}

/// A partition's fleet at one moment, for the Prometheus gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Units whose device says it is online.
    pub online: u64,
    /// Accounts whose balance is below their negative charge limit.
    pub below_limit: u64,
    /// Units whose device has not acknowledged its current command.
    pub awaiting_ack: u64,
}

impl Partition {
    /// Counts this partition's online units, accounts below their limit and commands
    /// awaiting an ack.
    pub fn census(&self) -> Census {
        self.units.values().fold(Census::default(), |census, unit| {
            let below = unit
                .account
                .as_ref()
                .is_some_and(|record| record.below_limit_since_ms.is_some());
            Census {
                online: census.online + u64::from(unit.state.online),
                below_limit: census.below_limit + u64::from(below),
                awaiting_ack: census.awaiting_ack + u64::from(unit.state.awaiting_ack()),
            }
        })
    }

    /// The counts over this partition's accounts of `org`.
    pub fn org_summary(&self, org: &str) -> OrgSummary {
        let now_ms = self.clock.now().timestamp_millis();
        let mut summary = OrgSummary::default();
        for unit in self.units.values() {
            if let Some(record) = unit.account.as_ref().filter(|record| &*record.org == org) {
                summary.count(unit, record.below_limit_since_ms, now_ms);
            }
        }
        summary
    }
}
