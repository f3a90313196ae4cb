//! Proves `engine.commit_interval_min_ms`: readings that arrive soon after a commit started
//! gather into one batch (one commit) instead of one commit each, and a reading after a quiet
//! spell is committed at once rather than after the interval.

use std::time::{Duration, Instant};

use sunledger_tests::{Device, TestServer};

const SERIAL: &str = "SL-PACING-1";
/// Long enough that the whole burst (about a second) is published inside it, even on a
/// loaded machine.
const INTERVAL: Duration = Duration::from_secs(4);
const BURST_LAST_SEQ: u64 = 20;
/// Between the burst's readings: far longer than a commit on a test machine.
const BURST_SPACING: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_gather_into_one_commit_per_interval_and_a_quiet_units_reading_commits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir, |settings| {
        settings.engine.partitions = 1;
        settings.engine.commit_interval_min_ms = INTERVAL.as_millis() as u64;
    })
    .await;
    let secret = server.register(SERIAL);
    let mut device = Device::connect(server.mqtt, SERIAL, &secret, None);
    device.expect_connected().await;
    device.report(1, 10).await;
    server
        .wait_for_state(SERIAL, |state| {
            state.meter.is_some_and(|meter| meter.seq == 1)
        })
        .await;

    // Reading 1's batch started less than the interval ago: the burst, spread so that each
    // reading would otherwise get a commit of its own, waits for the interval's end.
    let batches_before = batches(&server).await;
    for seq in 2..=BURST_LAST_SEQ {
        device.report(seq, 10 * seq).await;
        tokio::time::sleep(BURST_SPACING).await;
    }
    let state = server
        .wait_for_state(SERIAL, |state| {
            state.meter.is_some_and(|meter| meter.seq == BURST_LAST_SEQ)
        })
        .await;
    assert_eq!(state.consumed_wh, 10 * (BURST_LAST_SEQ - 1));
    let burst_batches = batches(&server).await - batches_before;
    assert!(
        (1.0..=2.0).contains(&burst_batches),
        "19 readings within one interval took {burst_batches} batches"
    );

    // After a quiet interval the next reading is committed without waiting for another.
    tokio::time::sleep(INTERVAL + Duration::from_millis(500)).await;
    let published = Instant::now();
    device
        .report(BURST_LAST_SEQ + 1, 10 * BURST_LAST_SEQ + 10)
        .await;
    server
        .wait_for_state(SERIAL, |state| {
            state
                .meter
                .is_some_and(|meter| meter.seq == BURST_LAST_SEQ + 1)
        })
        .await;
    let took = published.elapsed();
    assert!(
        took < INTERVAL / 2,
        "a reading after a quiet interval took {took:?} to be stored"
    );
}

/// Batches the billing engine has applied so far.
async fn batches(server: &TestServer) -> f64 {
    server
        .metric("sunledger_billing_batch_events_count", &[])
        .await
}
