//! What the unit log holds for one unit changed by one commit: its whole record, or, when
//! the commit only metered its readings, just the fields metering changes. A reading is most
//! of what a partition commits, and its entry is then a sixth of a whole record.
//!
//! An entry sets fields to the values the commit left, never adds to them, so replaying a
//! unit's entries in order over its checkpoint gives its state (see [`crate::store`]'s
//! `unit_log` for why the order and the checkpoint suffice).

use std::borrow::Cow;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Unit;
use crate::meter::MeterState;

/// How a commit changed a unit: what its log entry must hold. A unit changed both ways in
/// one batch is logged whole (the larger).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Change {
    /// Only readings were metered (and charged, with no load decision).
    Readings,
    /// Anything else: commands, acks, events, money movements, account changes.
    Whole,
}

/// One unit's entry in a unit log row.
#[derive(Debug, Serialize, Deserialize)]
#[expect(
    clippy::large_enum_variant,
    reason = "entries are made and consumed one at a time, never held in bulk"
)]
pub(crate) enum LoggedUnit<'a> {
    /// The whole record.
    Whole(Cow<'a, Unit>),
    /// The fields metering readings changes.
    Readings(MeteredFields),
}

/// The fields that metering readings (and charging them) change, as a commit left them.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MeteredFields {
    meter: Option<MeterState>,
    consumed_wh: u64,
    last_seen_ms: i64,
    account: Option<ChargedFields>,
}

/// The account fields a usage charge changes.
#[derive(Debug, Serialize, Deserialize)]
struct ChargedFields {
    #[serde(with = "crate::compact::decimal")]
    balance: Decimal,
    ledger_len: u64,
    ledger_head: Option<u64>,
    below_limit_since_ms: Option<i64>,
}

impl<'a> LoggedUnit<'a> {
    /// The entry for `unit`, changed as `change` says.
    pub(crate) fn of(unit: &'a Unit, change: Change) -> LoggedUnit<'a> {
        match change {
            Change::Whole => LoggedUnit::Whole(Cow::Borrowed(unit)),
            Change::Readings => LoggedUnit::Readings(MeteredFields {
                meter: unit.state.meter,
                consumed_wh: unit.state.consumed_wh,
                last_seen_ms: unit.state.last_seen_ms,
                account: unit.account.as_ref().map(|record| ChargedFields {
                    balance: record.account.balance(),
                    ledger_len: record.ledger_len,
                    ledger_head: record.ledger_head,
                    below_limit_since_ms: record.below_limit_since_ms,
                }),
            }),
        }
    }

    /// Replays the entry over `unit`, the unit's state before it.
    pub(crate) fn replay(self, unit: &mut Unit) {
        let fields = match self {
            LoggedUnit::Whole(whole) => {
                *unit = whole.into_owned();
                return;
            }
            LoggedUnit::Readings(fields) => fields,
        };
        unit.state.meter = fields.meter;
        unit.state.consumed_wh = fields.consumed_wh;
        unit.state.last_seen_ms = fields.last_seen_ms;
        // An entry's account is the unit's account at the time; a later whole entry settles
        // any account opened or closed since.
        if let (Some(charged), Some(record)) = (fields.account, unit.account.as_mut()) {
            record.account.restore_balance(charged.balance);
            record.ledger_len = charged.ledger_len;
            record.ledger_head = charged.ledger_head;
            record.below_limit_since_ms = charged.below_limit_since_ms;
        }
    }
}
