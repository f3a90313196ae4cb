//! The counters a partition bumps on every reading, registered once when it opens.
//!
//! `metrics::counter!` finds its counter by name and labels on every call: in the server's
//! Prometheus recorder that is a hash of the key and a map read, twice per reading, about a
//! tenth of the engine's rate. A handle made once is bumped directly, and only once per
//! commit: readings and entries are tallied in place, then added ([`HotCounters::publish`]).

use metrics::Counter;

use crate::ledger::EntryKind;
use crate::meter::MeterOutcome;

/// Every ledger entry kind, each at the index of its discriminant.
const ENTRY_KINDS: [EntryKind; 6] = [
    EntryKind::Payment,
    EntryKind::UsageCharge,
    EntryKind::InstalmentCharge,
    EntryKind::Adjustment,
    EntryKind::Reversal,
    EntryKind::TokenTime,
];

/// Handles of `sunledger_billing_readings_total{outcome}` and
/// `sunledger_billing_entries_total{kind}`, one per label value.
pub(super) struct HotCounters {
    readings: [Counter; MeterOutcome::LABELS.len()],
    entries: [Counter; ENTRY_KINDS.len()],
    /// Readings and entries counted since the last publish, by label.
    readings_tallied: [u64; MeterOutcome::LABELS.len()],
    entries_tallied: [u64; ENTRY_KINDS.len()],
}

impl HotCounters {
    /// Registers the counters with the recorder installed now (with none, they count nothing).
    pub(super) fn registered() -> HotCounters {
        HotCounters {
            readings: MeterOutcome::LABELS.map(|outcome| {
                metrics::counter!("sunledger_billing_readings_total", "outcome" => outcome)
            }),
            entries: ENTRY_KINDS.map(|kind| {
                metrics::counter!("sunledger_billing_entries_total", "kind" => entry_kind_label(kind))
            }),
            readings_tallied: [0; MeterOutcome::LABELS.len()],
            entries_tallied: [0; ENTRY_KINDS.len()],
        }
    }

    /// Counts a reading metered with `outcome`.
    pub(super) fn reading(&mut self, outcome: MeterOutcome) {
        self.readings_tallied[outcome.label_index()] += 1;
    }

    /// Counts a ledger entry of `kind`.
    pub(super) fn entry(&mut self, kind: EntryKind) {
        self.entries_tallied[kind as usize] += 1;
    }

    /// Adds what was counted since the last call to the counters.
    pub(super) fn publish(&mut self) {
        let readings = self.readings.iter().zip(&mut self.readings_tallied);
        let entries = self.entries.iter().zip(&mut self.entries_tallied);
        for (counter, tally) in readings.chain(entries) {
            if *tally > 0 {
                counter.increment(std::mem::take(tally));
            }
        }
    }
}

/// The `kind` label of an entry.
fn entry_kind_label(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Payment => "payment",
        EntryKind::UsageCharge => "usage_charge",
        EntryKind::InstalmentCharge => "instalment_charge",
        EntryKind::Adjustment => "adjustment",
        EntryKind::Reversal => "reversal",
        EntryKind::TokenTime => "token_time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_kind_sits_at_its_discriminant() {
        for (index, kind) in ENTRY_KINDS.into_iter().enumerate() {
            assert_eq!(kind as usize, index, "{kind:?}");
        }
    }
}
