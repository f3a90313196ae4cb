//! The end-of-run audit against the store: every device's committed energy, compared with its
//! ground truth by the simulator's own [`Audit`] (the same check `sunledger sim --audit` makes
//! through the API).

use std::collections::HashMap;

use sunledger_billing::store::Store;
use sunledger_sim::DeviceTruth;
use sunledger_sim::audit::Audit;

/// Compares every device's truth with its committed unit state, read in one pass over the
/// store (checkpoints and the unit log).
pub fn audit(store: &Store, truths: &[DeviceTruth]) -> anyhow::Result<Audit> {
    let stored: HashMap<String, u64> = store
        .units_hot(|_| true)?
        .into_iter()
        .map(|(serial, unit)| (serial, unit.state.consumed_wh))
        .collect();
    let mut audit = Audit::default();
    for truth in truths {
        audit.check_energy(truth, stored.get(&truth.serial).copied().unwrap_or(0));
    }
    Ok(audit)
}
