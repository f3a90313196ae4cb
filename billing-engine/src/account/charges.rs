//! Credit consumed by the tariff: usage charges from device readings and instalments from the
//! calendar.
//!
//! Usage is charged on a usage-based tariff only, whatever the plan state (a unit draws power
//! before its first deposit too), unless the reading is dated at or after the plan's completion.
//! Instalments are charged on an instalment-based tariff only, from the first deposit on, for
//! every instalment due before completion; each index is applied once.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::{Account, ChargeError, Effects, PlanState};
use crate::ledger::{EntryKind, EntryReason, EntryRef, LedgerEntry, ReadingId};
use crate::meter::EnergyDelta;
use crate::schedule::{self, DueInstalments};
use crate::tariff::{self, Tariff};

impl Account {
    /// Charges the energy of one reading, taken at `at`, under a usage-based tariff: exactly
    /// (load + USB) Wh × price per kWh / 1000. No entry when the charge is zero, the tariff is
    /// instalment-based, or the plan completed at or before `at`. May switch the load off.
    pub fn apply_usage(
        &mut self,
        reading: ReadingId,
        energy: EnergyDelta,
        at: DateTime<Utc>,
    ) -> Result<Effects, ChargeError> {
        let Tariff::Usage { price_per_kwh } = self.tariff else {
            return Ok(Effects::default());
        };
        if self.is_completed_by(at) {
            return Ok(Effects::default());
        }
        let energy_wh = energy.total_wh().ok_or(ChargeError::WouldOverflow)?;
        let charge =
            tariff::usage_charge(price_per_kwh, energy_wh).ok_or(ChargeError::WouldOverflow)?;
        if charge.is_zero() {
            return Ok(Effects::default());
        }
        let balance = self
            .balance
            .checked_sub(charge)
            .ok_or(ChargeError::WouldOverflow)?;

        self.balance = balance;
        let entry = LedgerEntry {
            kind: EntryKind::UsageCharge,
            amount: -charge,
            reason: EntryReason::Usage {
                energy_wh,
                price_per_kwh,
            },
            at,
            reference: EntryRef::Reading(reading),
            entered_by: None,
        };
        Ok(self.effects(vec![entry], false))
    }

    /// Every instalment due by `now` (in the organisation's time zone `tz`) and not yet
    /// applied, stopping at the plan's completion; empty for a usage-based tariff or before the
    /// first deposit.
    pub fn due_instalments(&self, now: DateTime<Utc>, tz: Tz) -> DueInstalments {
        let Tariff::Instalment { period, .. } = self.tariff else {
            return DueInstalments::default();
        };
        let Some(anchor) = self.first_deposit_at else {
            return DueInstalments::default();
        };
        let stop = match self.plan_state {
            PlanState::Completed { at } => Some(at),
            PlanState::PendingFirstDeposit | PlanState::Active => None,
        };
        schedule::due_instalments(anchor, period, tz, self.instalments_applied, now, stop)
    }

    /// When the next unapplied instalment falls due, for the engine's timer: `None` for a
    /// usage-based tariff, before the first deposit, or when the plan completes before it.
    pub fn next_instalment_at(&self, tz: Tz) -> Option<DateTime<Utc>> {
        let Tariff::Instalment { period, .. } = self.tariff else {
            return None;
        };
        let anchor = self.first_deposit_at?;
        let due = schedule::due_at(anchor, period, self.instalments_applied.checked_add(1)?, tz)?;
        match self.plan_state {
            PlanState::Completed { at } if due >= at => None,
            PlanState::Completed { .. } | PlanState::PendingFirstDeposit | PlanState::Active => {
                Some(due)
            }
        }
    }

    /// Charges every instalment that has fallen due by `now` and not been applied, one entry
    /// each, dated when it fell due. Idempotent: the applied count moves past them, so calling
    /// again (say, after a restart) charges nothing twice and misses nothing. If more than
    /// [`schedule::INSTALMENTS_PER_CALL_MAX`] are due, `more_due` asks for another call.
    pub fn apply_due_instalments(
        &mut self,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Result<Effects, ChargeError> {
        let Tariff::Instalment {
            amount_per_period, ..
        } = self.tariff
        else {
            return Ok(Effects::default());
        };
        let due = self.due_instalments(now, tz);
        let Some(last) = due.instalments.last() else {
            return Ok(Effects::default());
        };
        let count = Decimal::from(due.instalments.len());
        let total = amount_per_period
            .checked_mul(count)
            .ok_or(ChargeError::WouldOverflow)?;
        let balance = self
            .balance
            .checked_sub(total)
            .ok_or(ChargeError::WouldOverflow)?;

        self.balance = balance;
        self.instalments_applied = last.index;
        let entries = due
            .instalments
            .iter()
            .map(|instalment| LedgerEntry {
                kind: EntryKind::InstalmentCharge,
                amount: -amount_per_period,
                reason: format!("instalment {} due {}", instalment.index, instalment.due_at).into(),
                at: instalment.due_at,
                reference: EntryRef::Instalment(instalment.index),
                entered_by: None,
            })
            .collect();
        let mut effects = self.effects(entries, false);
        effects.more_due = due.more_due;
        Ok(effects)
    }

    /// Turns `amount` of credit into `days` of time on a keypad unit's token `count`, at `at`:
    /// one `TokenTime` entry taking the amount off the balance (see [`crate::keypad`]). The
    /// caller decides how much (the positive balance) and what it buys.
    pub fn convert_to_time(
        &mut self,
        amount: Decimal,
        days: u64,
        count: u32,
        at: DateTime<Utc>,
    ) -> Result<Effects, ChargeError> {
        let balance = self
            .balance
            .checked_sub(amount)
            .ok_or(ChargeError::WouldOverflow)?;
        self.balance = balance;
        let entry = LedgerEntry {
            kind: EntryKind::TokenTime,
            amount: -amount,
            reason: format!("{days} days of credit on token {count}").into(),
            at,
            reference: EntryRef::Token(count),
            entered_by: None,
        };
        Ok(self.effects(vec![entry], false))
    }
}
