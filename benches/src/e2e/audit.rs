//! The end-to-end audit against the store: every device's committed energy, compared with its
//! ground truth by the simulator's own [`Audit`] (the same check `sunledger sim --audit` makes
//! through the API). The fleet's process audits its devices against [`stored_wh`]; the probes
//! are audited here with [`check`].

use std::collections::HashMap;

use sunledger_billing::store::Store;
use sunledger_sim::DeviceTruth;
use sunledger_sim::audit::Audit;

/// Every unit's committed energy, Wh by serial, read in one pass over the store
/// (checkpoints and the unit log).
pub fn stored_wh(store: &Store) -> anyhow::Result<HashMap<String, u64>> {
    Ok(store
        .units_hot(|_| true)?
        .into_iter()
        .map(|(serial, unit)| (serial, unit.state.consumed_wh))
        .collect())
}

/// Adds the devices in `truths` to `audit`.
pub fn check(audit: &mut Audit, truths: &[DeviceTruth], stored_wh: &HashMap<String, u64>) {
    for truth in truths {
        audit.check_energy(truth, stored_wh.get(&truth.serial).copied().unwrap_or(0));
    }
}
