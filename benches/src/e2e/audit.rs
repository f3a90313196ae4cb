//! The end-of-run audit against the store: every device's committed energy, compared with its
//! ground truth by the simulator's own [`Audit`] (the same check `sunledger sim --audit` makes
//! through the API).

use sunledger_billing::store::Store;
use sunledger_sim::DeviceTruth;
use sunledger_sim::audit::Audit;

/// Compares every device's truth with its committed unit state.
pub fn audit(store: &Store, truths: &[DeviceTruth]) -> anyhow::Result<Audit> {
    let mut audit = Audit::default();
    for truth in truths {
        let stored_wh = store
            .unit_state(&truth.serial)?
            .map_or(0, |state| state.consumed_wh);
        audit.check_energy(truth, stored_wh);
    }
    Ok(audit)
}
