//! The operators' gRPC API (tonic, package `sunledger.api.v1`), served beside the broker in
//! the one process, with the standard health service (`grpc.health.v1`) and server
//! reflection (v1 and v1alpha) so tools such as `grpcurl` can list and call every service
//! without the `.proto` files.
//!
//! Services, one module each: [`organisations`], [`team`] (members, tokens, audit log),
//! [`plans`], [`units`], [`payments`], [`customers`] (with its Installations service in
//! [`customers::installations`]) and [`reports`].
//!
//! How a call flows:
//!
//! 1. [`request_metrics`] (a tower layer around the whole server) times and counts it by
//!    method and gRPC code.
//! 2. [`auth::Authenticator`] (an interceptor on every operator service) finds the caller's
//!    token in the directory and attaches the [`roles::Caller`], or answers UNAUTHENTICATED.
//! 3. The service's handler checks the caller's role with [`roles::Caller::require`], moves
//!    the request into a directory call on the blocking pool, and converts the result back
//!    ([`convert`], and the services' own conversions).
//! 4. The [`directory`] validates every field ([`validate`]), then reads, or changes
//!    records and appends their audit event in one redb write transaction,
//!    always inside the caller's organisation. Lists are paginated by [`pagination`] and
//!    their search boxes matched by [`search`].
//! 5. Errors become gRPC statuses in one place, [`status`].
//!
//! Services that touch devices or money ([`units`], [`payments`], installations, [`reports`])
//! take the whole [`platform::Platform`]: the directory validates first, the billing engine
//! then changes the unit or account durably (and sends the load command), and the directory
//! records what was done and by whom. Amounts travel as decimal strings ([`amount`]).
//!
//! With a TLS identity (`[grpc_tls]` in the settings) the server speaks only gRPC over TLS
//! (tonic's rustls support); without one, plain HTTP/2.
//!
//! Every operator service has the same shape: a service module, directory operations taking a
//! [`roles::Caller`], and an interceptor-wrapped registration in [`serve`], with health
//! status under its full name.

pub mod amount;
pub mod auth;
pub mod convert;
pub mod customers;
pub mod directory;
pub mod notify;
pub mod organisations;
pub mod pagination;
pub mod payments;
pub mod plans;
pub mod platform;
pub mod reminders;
pub mod reports;
pub mod request_metrics;
pub mod roles;
pub mod search;
pub mod status;
pub mod team;
pub mod units;
pub mod validate;

use std::future::Future;
use std::time::Duration;

use sunledger_broker::tls::TlsIdentity;
use sunledger_proto::api::v1::customers_server::CustomersServer;
use sunledger_proto::api::v1::installations_server::InstallationsServer;
use sunledger_proto::api::v1::organisations_server::OrganisationsServer;
use sunledger_proto::api::v1::payments_server::PaymentsServer;
use sunledger_proto::api::v1::plans_server::PlansServer;
use sunledger_proto::api::v1::reports_server::ReportsServer;
use sunledger_proto::api::v1::team_server::TeamServer;
use sunledger_proto::api::v1::units_server::UnitsServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;
use tonic::transport::{Identity, ServerTlsConfig};

pub use directory::{Directory, DirectoryError, Founded, NewOrganisation};
pub use platform::Platform;

use crate::auth::Authenticator;
use crate::customers::CustomersService;
use crate::customers::installations::InstallationsService;
use crate::organisations::OrganisationsService;
use crate::payments::PaymentsService;
use crate::plans::PlansService;
use crate::reports::ReportsService;
use crate::request_metrics::RequestMetricsLayer;
use crate::team::TeamService;
use crate::units::UnitsService;

/// Why the gRPC server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The reflection service could not load the descriptor set.
    #[error("building reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// A served descriptor set could not be decoded for the request metrics.
    #[error("decoding descriptor set: {0}")]
    Descriptors(#[from] prost::DecodeError),
    /// The transport failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// TLS for the API (`[grpc_tls]`).
pub struct ApiTls {
    /// The server's certificate chain and key, checked by
    /// [`sunledger_broker::tls::load_identity`].
    pub identity: TlsIdentity,
    /// How long a client has to finish its handshake: tonic runs each handshake in its own
    /// task, and without a deadline a client that never finishes would hold one forever.
    pub handshake_timeout: Duration,
}

/// Serves the API on `listener` until `shutdown` resolves, over the directory, billing engine
/// and unit directory of `platform`; only over TLS if `tls` is given.
pub async fn serve(
    listener: TcpListener,
    platform: Platform,
    tls: Option<ApiTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let directory = platform.directory.clone();
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    health_reporter
        .set_serving::<OrganisationsServer<OrganisationsService>>()
        .await;
    health_reporter
        .set_serving::<TeamServer<TeamService>>()
        .await;
    health_reporter
        .set_serving::<CustomersServer<CustomersService>>()
        .await;
    health_reporter
        .set_serving::<InstallationsServer<InstallationsService>>()
        .await;
    health_reporter
        .set_serving::<ReportsServer<ReportsService>>()
        .await;
    health_reporter
        .set_serving::<PlansServer<PlansService>>()
        .await;
    health_reporter
        .set_serving::<UnitsServer<UnitsService>>()
        .await;
    health_reporter
        .set_serving::<PaymentsServer<PaymentsService>>()
        .await;
    let served = [
        sunledger_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ];
    let reflection = || {
        served.iter().fold(
            tonic_reflection::server::Builder::configure(),
            |builder, set| builder.register_encoded_file_descriptor_set(set),
        )
    };
    let reflection_alpha = reflection().build_v1alpha()?;
    let reflection = reflection().build_v1()?;
    let metrics = RequestMetricsLayer::new(&[
        served[0],
        served[1],
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ])?;
    let authenticator = Authenticator::new(directory.clone());
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        let identity = Identity::from_pem(tls.identity.cert_chain_pem, tls.identity.key_pem);
        let config = ServerTlsConfig::new()
            .identity(identity)
            .timeout(tls.handshake_timeout);
        builder = builder.tls_config(config)?;
    }
    builder
        .layer(metrics)
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(OrganisationsServer::with_interceptor(
            OrganisationsService::new(directory.clone()),
            authenticator.clone(),
        ))
        .add_service(PlansServer::with_interceptor(
            PlansService::new(platform.directory.clone()),
            authenticator.clone(),
        ))
        .add_service(UnitsServer::with_interceptor(
            UnitsService::new(platform.clone()),
            authenticator.clone(),
        ))
        .add_service(CustomersServer::with_interceptor(
            CustomersService::new(platform.directory.clone()),
            authenticator.clone(),
        ))
        .add_service(InstallationsServer::with_interceptor(
            InstallationsService::new(platform.clone()),
            authenticator.clone(),
        ))
        .add_service(ReportsServer::with_interceptor(
            ReportsService::new(platform.clone()),
            authenticator.clone(),
        ))
        .add_service(PaymentsServer::with_interceptor(
            PaymentsService::new(platform.clone()),
            authenticator.clone(),
        ))
        .add_service(TeamServer::with_interceptor(
            TeamService::new(directory),
            authenticator,
        ))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

/// Runs a directory call on the blocking pool (redb writes wait for fsync) and maps its
/// error to a gRPC status.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, DirectoryError> + Send + 'static,
) -> Result<T, Status> {
    match tokio::task::spawn_blocking(call).await {
        Ok(outcome) => outcome.map_err(Status::from),
        Err(error) => Err(status::internal(&error)),
    }
}
