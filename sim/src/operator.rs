//! The operators' gRPC API as the simulator calls it: one channel carrying an Admin's bearer
//! token, handing out the generated tonic clients, so the fleet is registered and audited
//! exactly as an operator's own tools would do it, with no access to the server's database.

use ed25519_dalek::VerifyingKey;
use std::future::Future;

use sunledger_proto::api::v1 as api;
use sunledger_proto::api::v1::installations_client::InstallationsClient;
use sunledger_proto::api::v1::organisations_client::OrganisationsClient;
use sunledger_proto::api::v1::payments_client::PaymentsClient;
use sunledger_proto::api::v1::plans_client::PlansClient;
use sunledger_proto::api::v1::units_client::UnitsClient;
use tokio::task::JoinSet;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;

use crate::credentials::verifying_key;
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

    /// The organisation's command-verification key, which its units are flashed with.
    pub async fn command_key(&self) -> Result<VerifyingKey, SimError> {
        let organisation = OrganisationsClient::new(self.channel.clone())
            .get_organisation(api::GetOrganisationRequest {})
            .await
            .map_err(|status| SimError::api("GetOrganisation", status))?
            .into_inner();
        verifying_key(&organisation.command_verify_key).ok_or_else(|| {
            SimError::api(
                "GetOrganisation",
                tonic::Status::internal("command_verify_key is not an Ed25519 key"),
            )
        })
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

/// Runs `calls` each on its own task, at most `limit` at once (a fleet's worth of calls all at
/// once would swamp the server), and returns their results in the order given; the first
/// error found is returned instead.
pub(crate) async fn bounded<T, F>(
    calls: impl IntoIterator<Item = F>,
    limit: usize,
) -> Result<Vec<T>, SimError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, SimError>> + Send + 'static,
{
    let mut results = Vec::new();
    let mut tasks = JoinSet::new();
    for (index, call) in calls.into_iter().enumerate() {
        if tasks.len() >= limit.max(1) {
            results.push(joined(tasks.join_next().await)?);
        }
        tasks.spawn(async move { Ok((index, call.await?)) });
    }
    while let Some(result) = tasks.join_next().await {
        results.push(joined(Some(result))?);
    }
    results.sort_by_key(|(index, _)| *index);
    Ok(results.into_iter().map(|(_, result)| result).collect())
}

/// The result of a finished task of [`bounded`]; called only while tasks run, and the tasks
/// do not panic.
fn joined<T>(
    result: Option<Result<Result<T, SimError>, tokio::task::JoinError>>,
) -> Result<T, SimError> {
    result
        .expect("joined only while tasks are running")
        .expect("an API task does not panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_calls_keep_their_order_and_return_the_first_error() {
        let calls = (0..10_u64).map(|n| async move {
            tokio::time::sleep(std::time::Duration::from_millis(10 - n)).await;
            Ok(n)
        });
        assert_eq!(
            bounded(calls, 3).await.unwrap(),
            (0..10).collect::<Vec<_>>()
        );
        let failing = (0..4).map(|n| async move {
            match n {
                2 => Err(SimError::NoCredentials),
                _ => Ok(n),
            }
        });
        assert!(matches!(
            bounded(failing, 2).await,
            Err(SimError::NoCredentials)
        ));
    }
}
