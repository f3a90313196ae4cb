//! The CONNECT check for devices.
//!
//! A device connects with client id = username = its serial and password = its device secret.
//! The broker asks a [`CredentialCheck`] (implemented by the unit store) and refuses the
//! CONNECT unless the verdict is [`Verdict::Allowed`]. Refusals are counted by reason in
//! `sunledger_broker_connect_refused_total`.

use std::sync::Arc;

use sunledger_proto::topic::validate_serial;

/// What the unit store says about a set of credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Known serial, right secret, unit may connect.
    Allowed,
    /// No unit with this serial is registered.
    UnknownSerial,
    /// The secret does not match the unit's.
    WrongSecret,
    /// The unit exists but was decommissioned.
    Decommissioned,
}

impl Verdict {
    /// The metrics label for a refusal.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::UnknownSerial => "unknown_serial",
            Verdict::WrongSecret => "wrong_secret",
            Verdict::Decommissioned => "decommissioned",
        }
    }
}

/// Verifies device credentials; implemented by the unit store, which holds only hashes.
pub trait CredentialCheck: Send + Sync + 'static {
    /// Checks `secret` against the unit registered as `serial`, in constant time.
    fn verify(&self, serial: &str, secret: &str) -> Verdict;
}

/// Decides a CONNECT: identity fields must agree and be a well-formed serial, then the store
/// verifies the secret.
pub(crate) fn authorise(
    check: &dyn CredentialCheck,
    client_id: &str,
    username: &str,
    password: &str,
) -> bool {
    let refused = |reason: &'static str| {
        metrics::counter!("sunledger_broker_connect_refused_total", "reason" => reason)
            .increment(1);
        tracing::debug!(client_id, reason, "device CONNECT refused");
        false
    };
    if client_id != username {
        return refused("client_id_mismatch");
    }
    if validate_serial(client_id).is_err() {
        return refused("bad_serial");
    }
    match check.verify(client_id, password) {
        Verdict::Allowed => {
            metrics::counter!("sunledger_broker_connect_accepted_total").increment(1);
            true
        }
        verdict => refused(verdict.as_str()),
    }
}

/// Builds rumqttd's auth hook from a credential check.
pub(crate) fn handler(
    check: Arc<dyn CredentialCheck>,
) -> impl Fn(String, String, String) -> std::future::Ready<bool> + Send + Sync + 'static {
    move |client_id, username, password| {
        std::future::ready(authorise(check.as_ref(), &client_id, &username, &password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct OneUnit;
    impl CredentialCheck for OneUnit {
        fn verify(&self, serial: &str, secret: &str) -> Verdict {
            match (serial, secret) {
                ("SL1", "s3cret") => Verdict::Allowed,
                ("SL1", _) => Verdict::WrongSecret,
                _ => Verdict::UnknownSerial,
            }
        }
    }

    #[test]
    fn connect_needs_matching_identity_and_the_right_secret() {
        let cases = [
            ("SL1", "SL1", "s3cret", true),
            ("SL1", "SL1", "wrong", false),
            ("SL1", "SL2", "s3cret", false),
            ("SL2", "SL2", "s3cret", false),
            ("S/L", "S/L", "s3cret", false),
            ("", "", "", false),
        ];
        for (client_id, username, password, allowed) in cases {
            assert_eq!(
                authorise(&OneUnit, client_id, username, password),
                allowed,
                "{client_id}/{username}/{password}"
            );
        }
    }
}
