//! Signed commands, and the watch on every unit's `cmd` topic.
//!
//! Every command leaves signed with its unit's owner's Ed25519 key ([`Partition::signed`]), so
//! a device accepts only commands the platform made. The platform also reads back every
//! message on the `cmd` topics: behind a broker without per-topic ACLs (an external cluster)
//! anyone with MQTT credentials can publish there, and a retained forgery would sit in the
//! unit's slot. A command that is not the platform's ([`Partition::watch_command`]) is counted
//! (`sunledger_security_foreign_command_total`), flagged on the unit, and the unit's current
//! signed command is published again at once, so the retained slot heals.

use sunledger_proto::authenticity::sign_command;
use sunledger_proto::device::Command;

use super::{Partition, Slot, Unit};
use crate::store::PLATFORM_OWNER;

impl Partition {
    /// `command` signed for `serial` with its owner's key; `None` (counted) if the key cannot
    /// be read, so that nothing unsigned is ever published.
    pub fn signed(&self, serial: &str, command: Command) -> Option<Command> {
        let owner = self.directory.owner(serial);
        let now_ms = self.clock.now().timestamp_millis();
        match self
            .store
            .command_keys(owner.as_deref().unwrap_or(PLATFORM_OWNER))
        {
            Ok(keys) => Some(sign_command(keys.signing_at(now_ms), serial, command)),
            Err(error) => {
                metrics::counter!("sunledger_commands_sign_failed_total").increment(1);
                tracing::error!(serial, %error, "command not signed, not published");
                None
            }
        }
    }

    /// Checks a command seen on the `cmd` topic of `serial`, held in `slot`, at `at_ms`;
    /// returns whether the unit's state changed (a foreign command was recorded).
    pub(super) fn watch_command(
        &mut self,
        slot: Slot,
        serial: &str,
        command: &Command,
        at_ms: i64,
    ) -> bool {
        let owner = self.directory.owner(serial);
        let genuine = self
            .store
            .command_keys(owner.as_deref().unwrap_or(PLATFORM_OWNER))
            .is_ok_and(|keys| keys.signed(serial, command));
        let unit = self.units.at_mut(slot);
        let current = is_current(unit, command);
        if genuine && current {
            return false;
        }
        let kind = if genuine { "stale" } else { "foreign" };
        metrics::counter!("sunledger_security_commands_seen_total", "kind" => kind).increment(1);
        if let Some(desired) = unit.state.desired {
            // A stale one is the platform's own, superseded (or replayed): the slot must hold
            // the current one either way.
            self.pending
                .outbox
                .push((serial.into(), desired.to_proto()));
        }
        if genuine {
            return false;
        }
        metrics::counter!("sunledger_security_foreign_command_total").increment(1);
        tracing::warn!(
            serial,
            cmd_id = command.cmd_id,
            "foreign command on the unit's cmd topic; re-publishing its current command"
        );
        unit.state.foreign_commands = unit.state.foreign_commands.saturating_add(1);
        unit.state.last_foreign_command_ms = at_ms;
        true
    }
}

/// Whether `command` is the unit's current desired command.
fn is_current(unit: &Unit, command: &Command) -> bool {
    unit.state.desired.is_some_and(|desired| {
        let ours = desired.to_proto();
        (ours.cmd_id, ours.load, ours.reason, ours.ts)
            == (command.cmd_id, command.load, command.reason, command.ts)
    })
}
