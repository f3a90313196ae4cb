//! An organisation's command-signing key as operators see and rotate it.

use std::sync::Arc;

use sunledger_billing::store::CommandKeys;

use super::audit::AuditAction;
use super::{Directory, DirectoryError};
use crate::roles::Caller;
use crate::validate;

impl Directory {
    /// Organisation `org_id`'s command keys (current, and the next during a rotation) and the
    /// directory's present time, to tell which of them signs now.
    pub fn command_keys(&self, org_id: &str) -> Result<(Arc<CommandKeys>, i64), DirectoryError> {
        let keys = self.store.command_keys(org_id)?;
        Ok((keys, self.clock.now().timestamp_millis()))
    }

    /// Rotates the caller's organisation's command-signing key: the new key signs from
    /// `grace_seconds` from now (at once for 0, a leaked key), and the change is audited.
    pub fn rotate_command_key(
        &self,
        caller: &Caller,
        grace_seconds: i64,
    ) -> Result<(), DirectoryError> {
        let grace_seconds = validate::grace_seconds("grace_seconds", grace_seconds)?;
        let now_ms = self.clock.now().timestamp_millis();
        let outcome = self.change(&caller.org_id, &caller.member_id, |change| {
            let new = self.store.rotate_command_key_in(
                &change.txn,
                change.org_id,
                now_ms,
                grace_seconds * 1000,
            )?;
            change.record(
                AuditAction::OrganisationCommandKeyRotated,
                change.org_id,
                format!(
                    "new command-signing key {}, signing in {grace_seconds} s",
                    hex::encode(new.as_bytes())
                ),
            )
        });
        // Whether or not the commit happened, the cache must not outlive what is stored.
        self.store.forget_command_keys(&caller.org_id);
        outcome
    }
}
