//! The one mapping from the API's domain errors to gRPC statuses. Every match is exhaustive
//! (no `_` arm), so a new error variant does not compile until it is mapped here.
//!
//! - invalid field → INVALID_ARGUMENT, `field: reason` and a `BadRequest` field violation;
//! - no token → UNAUTHENTICATED; role too low → PERMISSION_DENIED;
//! - record absent (including another organisation's) → NOT_FOUND;
//! - email in use → ALREADY_EXISTS; last Admin → FAILED_PRECONDITION; token limit →
//!   RESOURCE_EXHAUSTED;
//! - storage failing → UNAVAILABLE (retry may help); broken invariant → INTERNAL with an
//!   opaque message, the detail going to the log only.
//! - serial already registered → ALREADY_EXISTS; retired plan → FAILED_PRECONDITION;
//! - billing engine refusals: unknown unit or payment → NOT_FOUND, payment reference reused
//!   → ALREADY_EXISTS, conflict with the account's state (already reversed, Offline Disable,
//!   no account, payment on a closed account) → FAILED_PRECONDITION. The engine's enums are `#[non_exhaustive]` in another
//!   crate, so their match alone needs a `_` arm, which answers INTERNAL.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use sunledger_billing::engine::EngineError;
use sunledger_billing::store::StoreError;

use crate::auth::AuthError;
use crate::directory::DirectoryError;
use crate::roles::Forbidden;
use crate::validate::FieldViolation;

impl From<FieldViolation> for Status {
    fn from(violation: FieldViolation) -> Status {
        let details =
            ErrorDetails::with_bad_request_violation(violation.field, violation.reason.clone());
        Status::with_error_details(Code::InvalidArgument, violation.to_string(), details)
    }
}

impl From<Forbidden> for Status {
    fn from(forbidden: Forbidden) -> Status {
        Status::permission_denied(forbidden.to_string())
    }
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Status {
        match error {
            AuthError::Missing | AuthError::Malformed | AuthError::Unknown => {
                Status::unauthenticated(error.to_string())
            }
            AuthError::Directory(error) => error.into(),
            AuthError::NotIntercepted => internal(&error),
        }
    }
}

impl From<DirectoryError> for Status {
    fn from(error: DirectoryError) -> Status {
        match error {
            DirectoryError::Invalid(violation) => violation.into(),
            DirectoryError::OrganisationNotFound(_)
            | DirectoryError::MemberNotFound(_)
            | DirectoryError::TokenNotFound(_)
            | DirectoryError::PlanNotFound(_)
            | DirectoryError::UnitNotFound(_) => Status::not_found(error.to_string()),
            DirectoryError::EmailTaken(_) | DirectoryError::SerialTaken(_) => {
                Status::already_exists(error.to_string())
            }
            DirectoryError::LastAdmin(_)
            | DirectoryError::PlanRetired(_)
            | DirectoryError::NotKeypad(_)
            | DirectoryError::NotConnected(_)
            | DirectoryError::NoToken(_) => Status::failed_precondition(error.to_string()),
            DirectoryError::Engine(error) => engine_status(error),
            DirectoryError::BillingStore(error) => billing_store_status(error),
            DirectoryError::TokenLimit { .. } => Status::resource_exhausted(error.to_string()),
            DirectoryError::CustomerNotFound(_) | DirectoryError::InstallationNotFound(_) => {
                Status::not_found(error.to_string())
            }
            DirectoryError::CustomerEmailTaken(_) => Status::already_exists(error.to_string()),
            DirectoryError::UnitInUse { .. }
            | DirectoryError::InstallationState { .. }
            | DirectoryError::CustomerHasInstallations(_)
            | DirectoryError::ApprovalTransition { .. } => {
                Status::failed_precondition(error.to_string())
            }
            DirectoryError::Storage(_) => {
                tracing::warn!(%error, "directory storage failed");
                Status::unavailable("storage unavailable, retry later")
            }
            DirectoryError::Codec(_) | DirectoryError::Corrupt(_) => internal(&error),
        }
    }
}

/// The status of a billing engine refusal. The API validates every field before calling the
/// engine, so a refusal by the billing rules is a conflict with the account's state (a payment
/// already reversed, a balance that would overflow): FAILED_PRECONDITION.
///
/// The engine's error enums are `#[non_exhaustive]` in another crate, so a `_` arm is
/// required; it maps to INTERNAL, so a new variant is visible in the log until mapped here.
fn engine_status(error: EngineError) -> Status {
    let message = error.to_string();
    match error {
        EngineError::UnitNotFound(_) | EngineError::PaymentNotFound(_) => {
            Status::not_found(message)
        }
        EngineError::ReferenceReused(_) => Status::already_exists(message),
        EngineError::UnitDecommissioned(_)
        | EngineError::AccountNotFound(_)
        | EngineError::AccountExists(_)
        | EngineError::Settings(_)
        | EngineError::Payment(_)
        | EngineError::Adjustment(_)
        | EngineError::Reversal(_)
        | EngineError::OfflineDisabled(_)
        | EngineError::NotKeypad(_)
        | EngineError::KeypadNeedsInstalmentPlan(_)
        | EngineError::Token(_)
        | EngineError::PaymentOnClosedAccount(_) => Status::failed_precondition(message),
        EngineError::Stopping => Status::unavailable(message),
        EngineError::Store(error) => billing_store_status(error),
        other => internal(&other),
    }
}

/// The status of a billing store failure: transient ones UNAVAILABLE, the rest INTERNAL.
fn billing_store_status(error: StoreError) -> Status {
    match &error {
        StoreError::UnitExists(_) => Status::already_exists(error.to_string()),
        StoreError::UnitNotFound(_) => Status::not_found(error.to_string()),
        _ if error.is_transient() => {
            tracing::warn!(%error, "billing storage failed");
            Status::unavailable("storage unavailable, retry later")
        }
        _ => internal(&error),
    }
}

/// INTERNAL with an opaque message; what went wrong is logged, not sent.
pub(crate) fn internal(error: &dyn std::fmt::Display) -> Status {
    tracing::error!(%error, "control API internal error");
    Status::internal("internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_violation_names_the_field_in_message_and_details() {
        let status = Status::from(FieldViolation::new("email", "not a valid address"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "email: not a valid address");
        let details = status.get_details_bad_request().expect("BadRequest detail");
        assert_eq!(details.field_violations[0].field, "email");
    }

    #[test]
    fn internal_errors_do_not_leak_their_detail() {
        let status = Status::from(DirectoryError::Corrupt("token tok_1 has no member".into()));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
