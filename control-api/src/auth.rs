//! Authentication: the [`Authenticator`] interceptor turns `authorization: Bearer <token>`
//! metadata into the [`Caller`] a request acts for, or refuses the request
//! (UNAUTHENTICATED) before any handler runs. Handlers take the caller with [`caller`].
//!
//! Every operator service is wrapped in the same interceptor; health and reflection are not,
//! so load balancers and `grpcurl list` need no token. Looking a token up is one short redb
//! read (two B-tree gets), done in place rather than on the blocking pool. An address that
//! keeps failing to authenticate is locked out for a while ([`API_AUTH_LIMIT`]): its calls
//! are refused with RESOURCE_EXHAUSTED before any lookup.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sunledger_broker::failure_limit::{FailureLimiter, LimitPolicy};
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::directory::{Directory, DirectoryError, tokens};
use crate::roles::{Caller, Role};

/// Why a request has no caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `authorization` metadata.
    #[error("missing authorization: send `authorization: Bearer <token>`")]
    Missing,
    /// The metadata is not `Bearer` and something shaped like a Sunledger API token.
    #[error("authorization is not `Bearer <token>` with a Sunledger API token")]
    Malformed,
    /// No such token: never issued, revoked, or its member was removed.
    #[error("unknown or revoked token")]
    Unknown,
    /// The token could not be looked up.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The handler's service was mounted without the [`Authenticator`]: a wiring bug.
    #[error("request reached a handler without passing the authenticator")]
    NotIntercepted,
}

impl AuthError {
    /// The `reason` label of `sunledger_api_auth_failed_total`, for failures the client
    /// caused; `None` for the server's own.
    fn client_reason(&self) -> Option<&'static str> {
        match self {
            AuthError::Missing => Some("missing"),
            AuthError::Malformed => Some("malformed"),
            AuthError::Unknown => Some("unknown"),
            AuthError::Directory(_) | AuthError::NotIntercepted => None,
        }
    }
}

/// Failed authentications per client address: generous (a script with a stale token retries),
/// then 1 s doubling up to a minute.
pub const API_AUTH_LIMIT: LimitPolicy = LimitPolicy {
    free_failures: 20,
    first_lockout: Duration::from_secs(1),
    max_lockout: Duration::from_secs(60),
    max_keys: 10_000,
};

/// The interceptor that authenticates every call of the operator services.
#[derive(Clone)]
pub struct Authenticator {
    directory: Directory,
    /// Lockouts of addresses that keep failing, shared by every service's copy.
    failures: Arc<FailureLimiter<IpAddr>>,
}

impl Authenticator {
    /// Authenticates against the tokens in `directory`.
    pub fn new(directory: Directory) -> Authenticator {
        Authenticator {
            directory,
            failures: Arc::new(FailureLimiter::new(API_AUTH_LIMIT)),
        }
    }

    fn authenticate(&self, metadata: &MetadataMap) -> Result<Caller, AuthError> {
        let value = metadata.get("authorization").ok_or(AuthError::Missing)?;
        let (scheme, token) = value
            .to_str()
            .ok()
            .and_then(|value| value.trim().split_once(' '))
            .ok_or(AuthError::Malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || !tokens::is_well_formed(token) {
            return Err(AuthError::Malformed);
        }
        self.directory
            .authenticate(token)?
            .ok_or(AuthError::Unknown)
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let now = Instant::now();
        let address = request.remote_addr().map(|address| address.ip());
        if address.is_some_and(|ip| self.failures.is_locked_out(&ip, now)) {
            metrics::counter!("sunledger_api_auth_failed_total", "reason" => "rate_limited")
                .increment(1);
            return Err(Status::resource_exhausted(
                "too many failed authentications from this address; retry later",
            ));
        }
        match self.authenticate(request.metadata()) {
            Ok(caller) => {
                if let Some(ip) = address {
                    self.failures.succeeded(&ip);
                }
                request.extensions_mut().insert(caller);
                Ok(request)
            }
            Err(error) => {
                if let Some(reason) = error.client_reason() {
                    metrics::counter!("sunledger_api_auth_failed_total", "reason" => reason)
                        .increment(1);
                    if let Some(ip) = address {
                        self.failures.failed(ip, now);
                    }
                }
                Err(error.into())
            }
        }
    }
}

/// The caller attached to `request`, if their role includes `needed`: the first line of every
/// handler that needs no more than a role.
pub fn authorised<T>(request: &Request<T>, needed: Role) -> Result<Caller, Status> {
    let caller = caller(request)?;
    caller.require(needed)?;
    Ok(caller)
}

/// The caller the [`Authenticator`] attached to `request`.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, AuthError> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or(AuthError::NotIntercepted)
}
