//! Per-method request metrics for every gRPC call, as a tower layer around the whole server
//! (so calls refused by the authenticator, health and reflection are counted too):
//!
//! - `sunledger_api_requests_total{method, code}`: calls by full method name and gRPC code;
//! - `sunledger_api_request_seconds{method}`: time to the response headers;
//! - `sunledger_api_invalid_argument_total{method}`: calls refused with INVALID_ARGUMENT.
//!
//! The method label is taken only from the methods the served descriptor sets declare; any
//! other path is `unknown`, so clients cannot grow the label set. The code is the
//! `grpc-status` header of a trailers-only response (every error of a unary call); a
//! response without it carries its status in the trailers, which for the unary operator
//! services means OK.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prost::Message;
use tonic::Code;
use tower::{Layer, Service};

/// The label of paths that are no declared method.
const UNKNOWN_METHOD: &str = "unknown";

/// Wraps the server's routes in [`RequestMetrics`].
#[derive(Clone, Debug)]
pub struct RequestMetricsLayer {
    /// `/package.Service/Method` of every method served.
    methods: Arc<HashSet<String>>,
}

impl RequestMetricsLayer {
    /// Labels the methods declared in these encoded file descriptor sets.
    pub fn new(descriptor_sets: &[&[u8]]) -> Result<RequestMetricsLayer, prost::DecodeError> {
        let mut methods = HashSet::new();
        for encoded in descriptor_sets {
            let set = prost_types::FileDescriptorSet::decode(*encoded)?;
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        methods.insert(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        Ok(RequestMetricsLayer {
            methods: Arc::new(methods),
        })
    }
}

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> RequestMetrics<S> {
        RequestMetrics {
            inner,
            methods: self.methods.clone(),
        }
    }
}

/// Records the metrics of each call passed to the inner service.
#[derive(Clone, Debug)]
pub struct RequestMetrics<S> {
    inner: S,
    methods: Arc<HashSet<String>>,
}

impl<S, B, R> Service<http::Request<B>> for RequestMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = match self.methods.contains(path) {
            true => path.to_owned(),
            false => UNKNOWN_METHOD.to_owned(),
        };
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            let code = match &response {
                Ok(response) => grpc_code(response.headers()),
                Err(_) => Code::Unknown,
            };
            record(method, code, started.elapsed().as_secs_f64());
            response
        })
    }
}

fn grpc_code(headers: &http::HeaderMap) -> Code {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from_i32)
}

fn record(method: String, code: Code, seconds: f64) {
    if code == Code::InvalidArgument {
        metrics::counter!("sunledger_api_invalid_argument_total", "method" => method.clone())
            .increment(1);
    }
    metrics::histogram!("sunledger_api_request_seconds", "method" => method.clone())
        .record(seconds);
    metrics::counter!(
        "sunledger_api_requests_total",
        "method" => method,
        "code" => format!("{code:?}"),
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_methods_are_known_and_codes_come_from_the_header() {
        let layer = RequestMetricsLayer::new(&[sunledger_proto::FILE_DESCRIPTOR_SET]).unwrap();
        assert!(layer.methods.contains("/sunledger.api.v1.Team/AddMember"));
        assert!(
            layer
                .methods
                .contains("/sunledger.api.v1.Organisations/GetOrganisation")
        );
        assert!(!layer.methods.contains("/sunledger.api.v1.Team/Nope"));
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_code(&headers), Code::Ok);
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
        assert_eq!(grpc_code(&headers), Code::InvalidArgument);
    }
}
