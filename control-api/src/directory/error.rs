//! Why a directory operation failed, in order of precedence: the request, then the records it
//! names, then the rules, then storage.

use crate::validate::FieldViolation;

/// A directory operation failed; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// A request field is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldViolation),
    /// No organisation with this id.
    #[error("organisation {0} not found")]
    OrganisationNotFound(String),
    /// No member with this id in the caller's organisation.
    #[error("member {0} not found")]
    MemberNotFound(String),
    /// No token with this id among the member's tokens.
    #[error("token {0} not found")]
    TokenNotFound(String),
    /// No payment plan with this id in the caller's organisation.
    #[error("plan {0} not found")]
    PlanNotFound(String),
    /// No control unit with this serial in the caller's organisation.
    #[error("unit {0} not found")]
    UnitNotFound(String),
    /// Another member of the organisation has this email (compared case-insensitively).
    #[error("email: {0} is already a member of this organisation")]
    EmailTaken(String),
    /// The serial is already registered (by this or another organisation: which one is not
    /// told).
    #[error("serial: {0} is already registered")]
    SerialTaken(String),
    /// The change would leave the organisation without an Admin.
    #[error("member {0} is the last Admin: make another member Admin first")]
    LastAdmin(String),
    /// The plan is retired: it can no longer be assigned to new installations.
    #[error("plan {0} is retired: choose an active plan")]
    PlanRetired(String),
    /// No contact (customer) with this id in the caller's organisation.
    #[error("customer {0} not found")]
    CustomerNotFound(String),
    /// No installation with this id in the caller's organisation.
    #[error("installation {0} not found")]
    InstallationNotFound(String),
    /// A contact of the organisation has or had this email (compared case-insensitively;
    /// deleted contacts keep theirs reserved).
    #[error("email: {0} is already used by a contact of this organisation")]
    CustomerEmailTaken(String),
    /// The unit is held by another installation (partial or complete).
    #[error("unit_serial: unit {serial} is in installation {installation_id}")]
    UnitInUse {
        /// The unit.
        serial: String,
        /// The installation holding it.
        installation_id: String,
    },
    /// The installation is not in the state the call needs (e.g. completing a complete one).
    #[error("installation {installation_id} is {status}: {needed}")]
    InstallationState {
        /// The installation.
        installation_id: String,
        /// Its state, as the API names it.
        status: &'static str,
        /// What the call needs, for a person to read.
        needed: &'static str,
    },
    /// The contact still has installations: unassign or delete them first.
    #[error("customer {0} still has installations: unassign or delete them first")]
    CustomerHasInstallations(String),
    /// The approval workflow does not allow this transition.
    #[error("approval transition {from} → {to} is not allowed")]
    ApprovalTransition {
        /// The customer's approval status.
        from: &'static str,
        /// The requested one.
        to: &'static str,
    },
    /// The member already has the most tokens allowed.
    #[error("member {member_id} already has {max} tokens: revoke one first")]
    TokenLimit {
        /// The member.
        member_id: String,
        /// [`crate::directory::tokens::TOKENS_PER_MEMBER_MAX`].
        max: usize,
    },
    /// The unit is connected only: it takes no tokens.
    #[error("serial: unit {0} is not a keypad unit")]
    NotKeypad(String),
    /// The unit is keypad only: it has no device key.
    #[error("serial: unit {0} is keypad only and has no device key")]
    NotConnected(String),
    /// The keypad unit has had no token yet, so there is none to send again.
    #[error("unit {0} has had no token yet")]
    NoToken(String),
    /// The billing engine refused or could not apply a change; nothing was changed.
    #[error(transparent)]
    Engine(#[from] sunledger_billing::engine::EngineError),
    /// The billing store (units, ledgers) failed.
    #[error(transparent)]
    BillingStore(#[from] sunledger_billing::store::StoreError),
    /// redb failed (I/O, full disk, corruption).
    #[error("storage: {0}")]
    Storage(#[from] redb::Error),
    /// A stored record could not be encoded or decoded: the file is damaged or newer.
    #[error("record codec: {0}")]
    Codec(#[from] postcard::Error),
    /// Stored records contradict each other.
    #[error("directory is inconsistent: {0}")]
    Corrupt(String),
}

impl DirectoryError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            DirectoryError::Storage(_) => true,
            DirectoryError::Engine(error) => error.is_transient(),
            DirectoryError::BillingStore(error) => error.is_transient(),
            _ => false,
        }
    }
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for DirectoryError {
            fn from(error: $error) -> Self {
                DirectoryError::Storage(error.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
