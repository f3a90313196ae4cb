//! The Prometheus scrape endpoint, `GET /metrics`.
//!
//! The `metrics` recorder is process-global, so it is installed once and every server in the
//! process (tests start several) renders from the same handle.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Bucket bounds of every `*_seconds` histogram: sub-millisecond commits up to slow calls,
/// so Grafana's `histogram_quantile` can aggregate latency across partitions and servers
/// (summaries cannot be aggregated).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Bucket bounds of the events-per-commit histogram, up to the largest batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 8.0, 64.0, 256.0, 1024.0, 4096.0, 8192.0, 16384.0];

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the global recorder on first use and returns its render handle.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("sunledger_billing_batch_events".into()),
                        BATCH_BUCKETS,
                    )
                })
                .and_then(|builder| builder.install_recorder())
                .map_err(|error| error.to_string())
                .and_then(|handle| {
                    spawn_upkeep(handle.clone())
                        .map(|_| handle)
                        .map_err(|error| format!("starting its upkeep thread: {error}"))
                })
        })
        .clone()
        .map_err(|error| anyhow::anyhow!("installing the metrics recorder: {error}"))
}

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds histogram samples into their buckets every few seconds. The recorder queues every
/// sample until then (a scrape does it too), so without this a server nobody scrapes grows
/// by each commit's and each call's latency sample, forever.
fn spawn_upkeep(handle: PrometheusHandle) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        })
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
