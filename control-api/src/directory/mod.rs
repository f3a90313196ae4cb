//! The durable directory of organisations, team members, API tokens, customers,
//! installations, plans, control units and the audit log, in tables of the platform's one redb
//! file (beside the billing engine's).
//!
//! - [`records`]: the organisation and team tables and their records; every record carries its
//!   organisation's id, and every key starts with it, so a read confined to one
//!   organisation's key range cannot reach another's data. `org_records` is the one scan of
//!   such a key range behind every paginated list.
//! - [`organisations`], [`members`], [`tokens`]: the operations, each validating its input
//!   (through [`crate::validate`]) before it touches storage.
//! - [`customers`], [`customer_updates`], [`approval`]: contacts, their edits and the credit
//!   approval workflow; `customer_fields` validates their fields and installations'.
//! - [`installations`] (the tables and records), [`registration`] (registration in two steps,
//!   opening the billing account) and [`projects`] (editing, reassigning and deleting
//!   installations, changing and closing their accounts).
//! - [`plans`], [`units`], [`payments`]: payment plans; control units (claimed per
//!   organisation, registered with the billing store); money and load switches on
//!   installations' accounts through the billing engine.
//! - [`reports`]: the directory's counts for the dashboard.
//! - `audit`: the audit log, appended by every change in the change's own transaction and
//!   read with [`Directory::audit_events`]; `error`: [`DirectoryError`].
//!
//! Reads are one redb read transaction; each change is one write transaction (`Change`)
//! committed durably before the call returns, so a change and its audit event are stored
//! together or not at all. Nothing is cached in memory: several [`Directory`] handles on the
//! same store (the server's, the `admin` command's) always agree. Calls that also change the
//! billing engine (which commits its own transactions on the same file) validate first, call
//! the engine, then write the directory, as [`registration`] explains.

pub mod approval;
mod command_keys;
pub mod customer_updates;
pub mod customers;
pub mod installations;
pub mod members;
pub mod organisations;
pub mod payments;
pub mod plans;
pub mod projects;
pub mod records;
pub mod registration;
pub mod reports;
pub mod tokens;
pub mod units;

mod audit;
mod customer_fields;
mod error;
mod org_records;
mod reminders;

use std::sync::Arc;

use rand::RngCore;
use redb::{ReadTransaction, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sunledger_billing::clock::Clock;
use sunledger_billing::store::Store;

pub use approval::{Approval, ApprovalChange, ApprovalStatus};
pub use customer_updates::CustomerChanges;
pub use customers::{
    ContactPreference, Customer, CustomerFilter, CustomerType, NewCustomer, UserDetails,
};
pub use error::DirectoryError;
pub use members::NewMember;
pub use organisations::{Founded, NewOrganisation, OrganisationChanges};
pub use payments::{BilledAccount, BilledInstallation, NewPayment};
pub use plans::{NewPlan, NewTariff, Plan, PlanFilter, TariffKind};
pub use records::{AuditEvent, Member, Organisation, TermsAcceptance, Token};
pub use tokens::{IssuedToken, TokenSecret};
pub use units::{
    ControlUnit, EnableStatus, HeldUnit, KeypadInput, NewUnit, RotatedKey, StatusChange, TokenSent,
    UnitChanges, UnitFilter, UnitPosition,
};

/// Random bytes in a record id: enough that ids never collide, across organisations too.
const ID_BYTES: usize = 16;

/// Handle on the directory tables; cheap to clone, one per service.
#[derive(Clone)]
pub struct Directory {
    store: Arc<Store>,
    /// Timestamps of records and audit events.
    clock: Arc<dyn Clock>,
}

/// One write transaction made by one team member of one organisation: the changes and the
/// audit events describing them commit together or not at all.
struct Change<'a> {
    txn: WriteTransaction,
    org_id: &'a str,
    actor_id: &'a str,
    at_ms: i64,
}

impl Directory {
    /// Opens the directory in `store`'s file, creating its tables on first use.
    pub fn open(store: Arc<Store>, clock: Arc<dyn Clock>) -> Result<Directory, DirectoryError> {
        let txn = store.begin_write()?;
        records::create_tables(&txn)?;
        txn.commit()?;
        Ok(Directory { store, clock })
    }

    fn read(&self) -> Result<ReadTransaction, DirectoryError> {
        use redb::ReadableDatabase;
        Ok(self.store.database()?.begin_read()?)
    }

    /// A write transaction on the platform's file; refused (UNAVAILABLE) while the disk is
    /// full or the file unavailable.
    fn begin_write(&self) -> Result<WriteTransaction, DirectoryError> {
        Ok(self.store.begin_write()?)
    }

    /// Runs `apply` in one write transaction for `actor_id` of `org_id` and commits it; an
    /// error anywhere leaves the file unchanged.
    fn change<T>(
        &self,
        org_id: &str,
        actor_id: &str,
        apply: impl FnOnce(&Change) -> Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        let change = Change {
            txn: self.begin_write()?,
            org_id,
            actor_id,
            at_ms: self.clock.now().timestamp_millis(),
        };
        let outcome = apply(&change)?;
        change.txn.commit()?;
        Ok(outcome)
    }
}

/// A fresh random id such as `mem_3f…`; the prefix tells what it names.
fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; ID_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, DirectoryError> {
    Ok(postcard::to_allocvec(record)?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DirectoryError> {
    Ok(postcard::from_bytes(bytes)?)
}

#[cfg(test)]
mod tests;
