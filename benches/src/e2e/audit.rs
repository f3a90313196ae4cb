//! The end-of-run audit: for every device, the energy the platform stored must be what the
//! device's ground truth says it reported past its baselines, give or take only readings
//! written whose PUBACK never came (the platform may or may not have received those).

use sunledger_billing::store::Store;
use sunledger_sim::DeviceTruth;

/// Devices whose stored energy is outside what their truth allows.
pub struct Audit {
    /// Devices checked.
    pub checked: usize,
    /// Energy the devices reported past their baselines, summed (Wh).
    pub billable_wh: u64,
    /// Energy the platform stored, summed (Wh).
    pub stored_wh: u64,
    /// One line per mismatching device: serial, seed, expected and stored.
    pub mismatches: Vec<String>,
}

/// Compares every device's truth with its committed unit state.
pub fn audit(store: &Store, truths: &[DeviceTruth]) -> anyhow::Result<Audit> {
    let mut audit = Audit {
        checked: truths.len(),
        billable_wh: 0,
        stored_wh: 0,
        mismatches: Vec::new(),
    };
    for truth in truths {
        let stored = store
            .unit_state(&truth.serial)?
            .map_or(0, |state| state.consumed_wh);
        let (low, high) = (
            truth.billable_wh(),
            truth.billable_wh() + truth.unacked_wh(),
        );
        audit.billable_wh += low;
        audit.stored_wh += stored;
        if !(low..=high).contains(&stored) {
            audit.mismatches.push(format!(
                "{} (seed {}): truth allows {low}..={high} Wh, platform stored {stored} Wh",
                truth.serial, truth.seed
            ));
        }
    }
    Ok(audit)
}
