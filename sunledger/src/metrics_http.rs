//! The Prometheus scrape endpoint, `GET /metrics`.
//!
//! The `metrics` recorder is process-global, so it is installed once and every server in the
//! process (tests start several) renders from the same handle.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the global recorder on first use and returns its render handle.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .map_err(|error| error.to_string())
        })
        .clone()
        .map_err(|error| anyhow::anyhow!("installing the metrics recorder: {error}"))
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || std::future::ready(handle.render())),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
