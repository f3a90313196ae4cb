//! Proves what the broker's own bounded log means with billing lagging far behind:
//! - telemetry never enters it (ingest's tap takes readings off the device's connection), so a
//!   2 KiB log loses no reading: the full partition queue holds the device back instead;
//! - status messages do pass through it: the ones rumqttd evicts before ingest reads them are
//!   counted (`sunledger_ingest_broker_skipped_total{kind="status"}`), and the unit still ends
//!   on the last status it sent, since eviction drops the oldest.

use std::time::{Duration, Instant};

use sunledger_proto::topic::TopicKind;
use sunledger_tests::burst::{READINGS, WH_PER_READING, burst, slow_engine};
use sunledger_tests::{Device, TestServer, WAIT_MAX};

/// A 2 KiB broker log: it cannot hold a burst of 300 messages while billing lags.
const TINY_BROKER_LOG: Option<(usize, usize)> = Some((1024, 2));
const STATUS_MESSAGES: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_burst_bypasses_a_tiny_broker_log_and_loses_nothing() {
    let server = slow_engine(TINY_BROKER_LOG).await;
    burst(&server, "SL-BURST-2").await;

    let state = server
        .wait_for_state("SL-BURST-2", |state| {
            state.meter.is_some_and(|meter| meter.seq == READINGS)
        })
        .await;
    assert_eq!(state.consumed_wh, (READINGS - 1) * WH_PER_READING);
    assert_eq!(
        server
            .metric("sunledger_ingest_messages_total", &[("kind", "telemetry")])
            .await,
        READINGS as f64,
        "every reading was taken, none evicted"
    );
    assert_eq!(skipped(&server, "telemetry").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_messages_the_broker_evicts_are_counted_and_the_last_one_wins() {
    let server = slow_engine(TINY_BROKER_LOG).await;
    let serial = "SL-BURST-3";
    let secret = server.register(serial);
    let mut device = Device::connect(server.mqtt, serial, &secret, None);
    device.expect_connected().await;
    let status = [("kind", "status")];
    let read_before = server
        .metric("sunledger_ingest_messages_total", &status)
        .await;
    // The first is read before the rest are sent: a gap in the log's offsets is what counts
    // evictions, so the reader must hold an offset before the log overflows (as it does in a
    // running fleet, whose units reported before).
    device.publish(TopicKind::Status, "offline").await;
    server
        .wait_for_metric(
            "sunledger_ingest_messages_total",
            &status,
            read_before + 1.0,
        )
        .await;
    // Alternating, ending on `online`.
    for n in 2..=STATUS_MESSAGES {
        let word = if n % 2 == 0 { "online" } else { "offline" };
        device.publish(TopicKind::Status, word).await;
    }

    server
        .wait_for_metric(
            "sunledger_ingest_broker_skipped_total",
            &[("kind", "status")],
            1.0,
        )
        .await;
    // Every message is either read or counted as evicted.
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let read = server
            .metric("sunledger_ingest_messages_total", &status)
            .await
            - read_before;
        let accounted = read + skipped(&server, "status").await;
        if accounted >= STATUS_MESSAGES as f64 {
            assert_eq!(accounted, STATUS_MESSAGES as f64);
            break;
        }
        assert!(Instant::now() < deadline, "only {accounted} accounted for");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The last message read was the last one sent: once the 2-event queue has drained, the
    // unit stays online.
    server.wait_for_state(serial, |state| state.online).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        server
            .server
            .store()
            .unit_state(serial)
            .unwrap()
            .unwrap()
            .online
    );
}

/// Messages of `kind` the broker evicted before ingest read them.
async fn skipped(server: &TestServer, kind: &str) -> f64 {
    server
        .metric("sunledger_ingest_broker_skipped_total", &[("kind", kind)])
        .await
}
