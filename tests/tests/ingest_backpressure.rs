//! Proves that when the billing engine falls behind, the partition's bounded queue makes the
//! device's connection wait (counted) instead of dropping anything: with a 2-event queue and
//! one event per commit, every one of a burst of readings is still applied, in order, exactly
//! once.
//! (`broker_log_overflow.rs` covers what happens when the broker's own log overflows too.)

use sunledger_tests::burst::{READINGS, WH_PER_READING, burst, slow_engine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_partition_queue_slows_ingest_and_loses_nothing() {
    let server = slow_engine(None).await;
    let waits_before = server
        .metric("sunledger_ingest_queue_full_waits_total", &[])
        .await;
    burst(&server, "SL-BURST-1").await;

    let state = server
        .wait_for_state("SL-BURST-1", |state| {
            state.meter.is_some_and(|meter| meter.seq == READINGS)
        })
        .await;
    assert_eq!(
        state.consumed_wh,
        (READINGS - 1) * WH_PER_READING,
        "every reading after the baseline was charged once"
    );
    let waits = server
        .metric("sunledger_ingest_queue_full_waits_total", &[])
        .await;
    assert!(
        waits > waits_before,
        "the burst should have filled the 2-event queue"
    );
    assert_eq!(
        server
            .metric(
                "sunledger_billing_readings_total",
                &[("outcome", "duplicate")]
            )
            .await,
        0.0
    );
    assert_eq!(
        server
            .metric("sunledger_ingest_broker_skipped_total", &[])
            .await,
        0.0,
        "the broker's log held the whole backlog"
    );
}
