//! The directory's tables and the records stored in them (postcard-encoded).
//!
//! Every key starts with the organisation id, so an organisation's records are one key range
//! and every lookup names the caller's organisation: another organisation's ids are simply
//! absent. The one exception is `api_tokens`, keyed by token hash because a request brings
//! nothing else; its records carry the organisation a token acts in.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::org_records::org_records;
use super::{DirectoryError, decode};
use crate::roles::Role;

/// Organisation id → [`Organisation`].
pub(super) const ORGANISATIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("api_organisations");
/// (organisation id, member id) → [`Member`]; also the order of the member list.
pub(super) const MEMBERS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("api_members");
/// (organisation id, lower-cased email) → member id: one member per email per organisation.
pub(super) const MEMBER_EMAILS: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("api_member_emails");
/// Keyed hash of the bearer token → [`Token`]: how a request finds its caller.
pub(super) const TOKENS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("api_tokens");
/// (organisation id, member id, token id) → token hash: a member's tokens, to list and
/// revoke them.
pub(super) const MEMBER_TOKENS: TableDefinition<(&str, &str, &str), [u8; 32]> =
    TableDefinition::new("api_member_tokens");
/// (organisation id, sequence) → [`AuditEvent`], sequence increasing per organisation.
pub(super) const AUDIT_EVENTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("api_audit_events");

/// Creates every directory table, so reads never meet a missing one.
pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), DirectoryError> {
    txn.open_table(ORGANISATIONS)?;
    txn.open_table(MEMBERS)?;
    txn.open_table(MEMBER_EMAILS)?;
    txn.open_table(TOKENS)?;
    txn.open_table(MEMBER_TOKENS)?;
    txn.open_table(AUDIT_EVENTS)?;
    txn.open_table(super::plans::PLANS)?;
    txn.open_table(super::units::UNITS)?;
    txn.open_table(super::units::UNIT_SERIALS)?;
    super::installations::create_tables(txn)?;
    super::customers::create_tables(txn)?;
    super::reminders::create_tables(txn)?;
    Ok(())
}

/// A PAYG solar business; every other record belongs to exactly one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    /// `org_…`, the first part of every key of its records.
    pub id: String,
    /// Display name.
    pub name: String,
    /// ISO 3166-1 alpha-2 country code, upper-case.
    pub country: String,
    /// ISO 4217 currency code, upper-case; balances are kept in it, so it never changes.
    pub currency: String,
    /// IANA time zone in which instalments fall due.
    pub time_zone: String,
    /// The acceptance of the terms and conditions, required to create the organisation.
    pub terms_accepted: TermsAcceptance,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// Who accepted the platform's terms and conditions for an organisation, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsAcceptance {
    /// The first Admin, who accepted them when creating the organisation.
    pub member_id: String,
    /// Unix milliseconds.
    pub accepted_at_ms: i64,
}

/// A person who operates an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `mem_…`.
    pub id: String,
    /// The organisation the member belongs to, and the only one they can see.
    pub org_id: String,
    /// Display name.
    pub name: String,
    /// As entered; unique within the organisation case-insensitively.
    pub email: String,
    /// What the member may do.
    pub role: Role,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// An API token's description; the token itself is never stored, only its keyed hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// `tok_…`, how the token is named when listed or revoked.
    pub id: String,
    /// The organisation the token acts in.
    pub org_id: String,
    /// The member the token acts for.
    pub member_id: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// One change in an organisation's audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The organisation whose data changed.
    pub org_id: String,
    /// Increases by one with every event of the organisation.
    pub sequence: u64,
    /// When the change was made, unix milliseconds.
    pub at_ms: i64,
    /// The member who made the change.
    pub actor_member_id: String,
    /// What was done, e.g. `member.added`.
    pub action: String,
    /// The id of the changed record.
    pub target_id: String,
    /// A short account of the change for a person to read.
    pub description: String,
}

/// The members of `org_id` in id order, starting after the id `after` if given: the
/// organisation's records of `api_members`, typed.
pub(super) fn members_of<'t>(
    table: &'t impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    org_id: &'t str,
    after: Option<&'t str>,
) -> Result<impl Iterator<Item = Result<Member, DirectoryError>> + 't, DirectoryError> {
    org_records(table, org_id, after)
}

/// The member `member_id` of `org_id`, or [`DirectoryError::MemberNotFound`].
pub(super) fn member_in(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    org_id: &str,
    member_id: &str,
) -> Result<Member, DirectoryError> {
    match table.get((org_id, member_id))? {
        Some(stored) => decode(stored.value()),
        None => Err(DirectoryError::MemberNotFound(member_id.to_owned())),
    }
}
