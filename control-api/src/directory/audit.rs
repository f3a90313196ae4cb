//! The audit log: one event per change, written by `Change::record` in the change's own
//! write transaction, so the log never misses a committed change nor shows one that was
//! rolled back. Listed newest first.

use redb::ReadableTable;

use super::records::{AUDIT_EVENTS, AuditEvent};
use super::{Change, Directory, DirectoryError, decode, encode};
use crate::pagination::{Page, PageRequest};

/// What a change did; its name is stored and shown, so names never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AuditAction {
    OrganisationCreated,
    OrganisationUpdated,
    OrganisationCommandKeyRotated,
    MemberAdded,
    MemberRoleChanged,
    MemberRemoved,
    TokenCreated,
    TokenRevoked,
    PlanCreated,
    PlanRenamed,
    PlanRetired,
    UnitRegistered,
    UnitUpdated,
    UnitEnableStatusChanged,
    UnitDeviceKeyRotated,
    PaymentRecorded,
    PaymentReversed,
    LoadSwitched,
    CustomerCreated,
    CustomerUpdated,
    CustomerDeleted,
    CustomerApprovalChanged,
    RegistrationStarted,
    RegistrationCompleted,
    InstallationUpdated,
    InstallationAssigned,
    InstallationUnassigned,
    InstallationDeleted,
    KeypadCounterSynced,
    KeypadTokenResent,
}

impl AuditAction {
    fn name(self) -> &'static str {
        match self {
            AuditAction::OrganisationCreated => "organisation.created",
            AuditAction::OrganisationUpdated => "organisation.updated",
            AuditAction::OrganisationCommandKeyRotated => "organisation.command_key_rotated",
            AuditAction::MemberAdded => "member.added",
            AuditAction::MemberRoleChanged => "member.role_changed",
            AuditAction::MemberRemoved => "member.removed",
            AuditAction::TokenCreated => "token.created",
            AuditAction::TokenRevoked => "token.revoked",
            AuditAction::PlanCreated => "plan.created",
            AuditAction::PlanRenamed => "plan.renamed",
            AuditAction::PlanRetired => "plan.retired",
            AuditAction::UnitRegistered => "unit.registered",
            AuditAction::UnitUpdated => "unit.updated",
            AuditAction::UnitEnableStatusChanged => "unit.enable_status_changed",
            AuditAction::UnitDeviceKeyRotated => "unit.device_key_rotated",
            AuditAction::PaymentRecorded => "payment.recorded",
            AuditAction::PaymentReversed => "payment.reversed",
            AuditAction::LoadSwitched => "load.switched",
            AuditAction::CustomerCreated => "customer.created",
            AuditAction::CustomerUpdated => "customer.updated",
            AuditAction::CustomerDeleted => "customer.deleted",
            AuditAction::CustomerApprovalChanged => "customer.approval_changed",
            AuditAction::RegistrationStarted => "installation.registration_started",
            AuditAction::RegistrationCompleted => "installation.registration_completed",
            AuditAction::InstallationUpdated => "installation.updated",
            AuditAction::InstallationAssigned => "installation.assigned",
            AuditAction::InstallationUnassigned => "installation.unassigned",
            AuditAction::InstallationDeleted => "installation.deleted",
            AuditAction::KeypadCounterSynced => "keypad.counter_synced",
            AuditAction::KeypadTokenResent => "keypad.token_resent",
        }
    }
}

impl Change<'_> {
    /// Appends the event describing part of this change to the organisation's log.
    pub(super) fn record(
        &self,
        action: AuditAction,
        target_id: &str,
        description: String,
    ) -> Result<(), DirectoryError> {
        let mut events = self.txn.open_table(AUDIT_EVENTS)?;
        let sequence = match events
            .range((self.org_id, 0)..=(self.org_id, u64::MAX))?
            .next_back()
        {
            Some(last) => last?.0.value().1 + 1,
            None => 1,
        };
        let event = AuditEvent {
            org_id: self.org_id.to_owned(),
            sequence,
            at_ms: self.at_ms,
            actor_member_id: self.actor_id.to_owned(),
            action: action.name().to_owned(),
            target_id: target_id.to_owned(),
            description,
        };
        events.insert((self.org_id, sequence), encode(&event)?.as_slice())?;
        Ok(())
    }
}

impl Directory {
    /// One page of `org_id`'s audit log, newest first.
    pub fn audit_events(
        &self,
        org_id: &str,
        page: &PageRequest<u64>,
    ) -> Result<Page<AuditEvent>, DirectoryError> {
        let txn = self.read()?;
        let events = txn.open_table(AUDIT_EVENTS)?;
        let before = page.after.unwrap_or(u64::MAX);
        let entries = events.range((org_id, 0)..(org_id, before))?.rev();
        page.page(
            entries.map(|entry| decode::<AuditEvent>(entry?.1.value())),
            |event| event.sequence,
        )
    }
}
