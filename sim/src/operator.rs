//! The operators' gRPC API as the simulator calls it: one channel carrying an Admin's bearer
//! token, handing out the generated tonic clients, so the fleet is registered and audited
//! exactly as an operator's own tools would do it, with no access to the server's database.

use std::future::Future;

use sunledger_proto::api::v1::installations_client::InstallationsClient;
use sunledger_proto::api::v1::payments_client::PaymentsClient;
use sunledger_proto::api::v1::plans_client::PlansClient;
use sunledger_proto::api::v1::units_client::UnitsClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::error::SimError;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel that authenticates every call, for any generated client.
pub type Authorized = InterceptedService<Channel, Bearer>;

/// One Admin's connection to the operators' API. Clients are cheap: each is a clone of one
/// channel, so concurrent tasks each take their own.
#[derive(Clone)]
pub struct Operator {
    channel: Authorized,
}

impl Operator {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:50051`) as the holder of API `token`.
    pub async fn connect(endpoint: &str, token: &str) -> Result<Operator, SimError> {
        let refused = |reason: String| SimError::ApiConnect {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let bearer: AsciiMetadataValue = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| refused("the token is not printable ASCII".into()))?;
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|error| refused(error.to_string()))?
            .connect()
            .await
            .map_err(|error| refused(format!("{error} (is the server running?)")))?;
        Ok(Operator {
            channel: InterceptedService::new(channel, Bearer(bearer)),
        })
    }

    /// `sunledger.api.v1.Plans`.
    pub fn plans(&self) -> PlansClient<Authorized> {
        PlansClient::new(self.channel.clone())
    }

    /// `sunledger.api.v1.Units`.
    pub fn units(&self) -> UnitsClient<Authorized> {
        UnitsClient::new(self.channel.clone())
    }

    /// `sunledger.api.v1.Installations`.
    pub fn installations(&self) -> InstallationsClient<Authorized> {
        InstallationsClient::new(self.channel.clone())
    }

    /// `sunledger.api.v1.Payments`.
    pub fn payments(&self) -> PaymentsClient<Authorized> {
        PaymentsClient::new(self.channel.clone())
    }
}

/// Every item of a paginated list: `fetch` gets a page token and returns the page's items
/// and the next token; walks until the token is empty.
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, SimError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), SimError>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = fetch(token).await?;
        items.extend(page);
        if next.is_empty() {
            return Ok(items);
        }
        token = next;
    }
}

/// The result of a finished task of a bounded [`tokio::task::JoinSet`] of API calls; called
/// only while tasks run, and the tasks do not panic.
pub(crate) fn joined<T>(
    result: Option<Result<Result<T, SimError>, tokio::task::JoinError>>,
) -> Result<T, SimError> {
    result
        .expect("joined only while tasks are running")
        .expect("an API task does not panic")
}
