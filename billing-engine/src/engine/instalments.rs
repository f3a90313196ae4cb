//! The instalment timer: a min-heap of when each account's next instalment falls due.
//!
//! The heap is built from every account when the partition opens, so instalments that fell due
//! while the server was down are the first thing applied after start-up, each exactly once (the
//! account counts the instalments it has applied, and that count is committed with the ledger
//! entries). Heap entries can go stale (a payment reschedules an account, an account is
//! closed); a popped entry is used only if the unit still has an account whose next due
//! instant it matches. A closed account's entry is therefore dropped, and if the unit has a new
//! account by then, that account is charged only what it owes itself at that instant.

use std::cmp::Reverse;

use super::Partition;
use super::logged::Change;
use crate::store::StoreError;

impl Partition {
    /// Queues the account's next instalment, if it has one. Keypad accounts have none: their
    /// payments buy days that the unit counts down itself.
    pub(super) fn schedule(&mut self, serial: &str) {
        let next = self
            .units
            .get(serial)
            .and_then(|unit| unit.account.as_ref())
            .filter(|record| record.keypad.is_none())
            .and_then(|record| record.account.next_instalment_at(record.tz));
        if let Some(at) = next {
            self.due.push(Reverse((at, serial.into())));
        }
    }

    /// Whether an instalment has fallen due: [`Partition::apply_due_instalments`] would then
    /// first finish the commit in flight, which a caller may want to do itself, to tell that
    /// commit's failure from the instalments'.
    pub fn instalments_due(&self) -> bool {
        let now = self.clock.now();
        self.due.peek().is_some_and(|Reverse((at, _))| *at <= now)
    }

    /// Charges the instalments that have fallen due, for at most `accounts_max` accounts, in
    /// one commit; returns how many accounts were charged (call again while it is
    /// `accounts_max`).
    pub fn apply_due_instalments(&mut self, accounts_max: usize) -> Result<usize, StoreError> {
        if !self.resync() || !self.instalments_due() {
            return Ok(0);
        }
        let now = self.clock.now();
        // Charges build on committed state, and commands queued so far are committed.
        self.finish_commit()?;
        self.ready.append(&mut self.pending.outbox);
        let mut charged: Vec<Box<str>> = Vec::new();
        while charged.len() < accounts_max {
            match self.due.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((at, serial))) = self.due.pop() else {
                break;
            };
            let Some(unit) = self.units.get_mut(&serial) else {
                continue;
            };
            let is_due = unit
                .account
                .as_ref()
                .is_some_and(|record| record.account.next_instalment_at(record.tz) == Some(at));
            if !is_due {
                continue;
            }
            while let Some(record) = unit.account.as_mut() {
                match record.account.apply_due_instalments(now, record.tz) {
                    Ok(effects) => {
                        let more_due = effects.more_due;
                        self.pending.record(&serial, unit, effects, now);
                        if !more_due {
                            break;
                        }
                    }
                    Err(error) => {
                        metrics::counter!("sunledger_billing_charge_failed_total").increment(1);
                        tracing::error!(%serial, %error, "instalment not charged");
                        break;
                    }
                }
            }
            charged.push(serial);
        }
        let slots = charged
            .iter()
            .filter_map(|serial| self.units.slot(serial))
            .map(|slot| (slot, Change::Whole))
            .collect();
        self.commit(slots)?;
        for serial in &charged {
            self.schedule(serial);
        }
        Ok(charged.len())
    }
}
