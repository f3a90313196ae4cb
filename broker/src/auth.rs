//! The CONNECT check for devices.
//!
//! A device connects with client id = username = its serial and password = its device secret.
//! The broker asks a [`CredentialCheck`] (implemented by the unit store) and refuses the
//! CONNECT unless the verdict is [`Verdict::Allowed`]. A client id that keeps failing is
//! locked out for a while ([`CONNECT_LIMIT`]) and refused unchecked. Refusals are counted by
//! reason in `sunledger_broker_connect_refused_total` (`rate_limited` for lockouts).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::failure_limit::{FailureLimiter, LimitPolicy};

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

/// Failed CONNECTs per client id: a unit with a wrong secret retrying every few seconds is
/// refused unchecked after 5 failures, for 1 s doubling up to 5 minutes.
pub const CONNECT_LIMIT: LimitPolicy = LimitPolicy {
    free_failures: 5,
    first_lockout: Duration::from_secs(1),
    max_lockout: Duration::from_secs(300),
    max_keys: 100_000,
};

/// Decides a CONNECT: a locked-out client id is refused, identity fields must agree and be a
/// well-formed serial, then the store verifies the secret.
pub(crate) fn authorise(
    check: &dyn CredentialCheck,
    limiter: &FailureLimiter<String>,
    client_id: &str,
    username: &str,
    password: &str,
) -> bool {
    let now = Instant::now();
    if limiter.is_locked_out(&client_id.to_owned(), now) {
        metrics::counter!("sunledger_broker_connect_refused_total", "reason" => "rate_limited")
            .increment(1);
        return false;
    }
    let allowed = verify_connect(check, client_id, username, password);
    match allowed {
        true => limiter.succeeded(&client_id.to_owned()),
        false => limiter.failed(client_id.to_owned(), now),
    }
    allowed
}

fn verify_connect(
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
    let limiter = FailureLimiter::new(CONNECT_LIMIT);
    move |client_id, username, password| {
        std::future::ready(authorise(
            check.as_ref(),
            &limiter,
            &client_id,
            &username,
            &password,
        ))
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
        let limiter = FailureLimiter::new(CONNECT_LIMIT);
        for (client_id, username, password, allowed) in cases {
            assert_eq!(
                authorise(&OneUnit, &limiter, client_id, username, password),
                allowed,
                "{client_id}/{username}/{password}"
            );
        }
    }

    #[test]
    fn a_client_id_that_keeps_failing_is_refused_even_with_the_right_secret() {
        let limiter = FailureLimiter::new(CONNECT_LIMIT);
        for _ in 0..=CONNECT_LIMIT.free_failures {
            assert!(!authorise(&OneUnit, &limiter, "SL1", "SL1", "guess"));
        }
        assert!(
            !authorise(&OneUnit, &limiter, "SL1", "SL1", "s3cret"),
            "locked out"
        );
    }
}
