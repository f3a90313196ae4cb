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
    /// Another member of the organisation has this email (compared case-insensitively).
    #[error("email: {0} is already a member of this organisation")]
    EmailTaken(String),
    /// The change would leave the organisation without an Admin.
    #[error("member {0} is the last Admin: make another member Admin first")]
    LastAdmin(String),
    /// The member already has the most tokens allowed.
    #[error("member {member_id} already has {max} tokens: revoke one first")]
    TokenLimit {
        /// The member.
        member_id: String,
        /// [`crate::directory::tokens::TOKENS_PER_MEMBER_MAX`].
        max: usize,
    },
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
        matches!(self, DirectoryError::Storage(_))
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
