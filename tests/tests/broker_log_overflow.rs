//! Proves that when billing lags so far that the broker's own bounded log overflows, the
//! messages rumqttd evicts before ingest reads them are counted
//! (`sunledger_ingest_broker_skipped_total`), and that the devices' cumulative counters still
//! make the charged energy exact: the next reading read includes the skipped ones.

use sunledger_tests::burst::{READINGS, WH_PER_READING, burst, slow_engine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_the_broker_evicts_are_counted_and_cumulative_counters_keep_charges_exact() {
    // A 2 KiB broker log cannot hold a burst of 300 readings while billing lags.
    let server = slow_engine(Some((1024, 2))).await;
    burst(&server, "SL-BURST-2").await;

    let state = server
        .wait_for_state("SL-BURST-2", |state| {
            state.meter.is_some_and(|meter| meter.seq == READINGS)
        })
        .await;
    server
        .wait_for_metric(
            "sunledger_ingest_broker_skipped_total",
            &[("kind", "telemetry")],
            1.0,
        )
        .await;
    assert_eq!(
        state.consumed_wh,
        (READINGS - 1) * WH_PER_READING,
        "skipped readings cost nothing extra and lose nothing: the next reading's counters include them"
    );
}
