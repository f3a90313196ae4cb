//! Proves that when the billing engine falls behind, ingest's bounded queue makes the reader
//! wait (counted) instead of dropping anything: with a 2-event queue and one event per commit,
//! every one of a burst of readings is still applied, in order, exactly once.

use prost::Message;
use sunledger_proto::device::Telemetry;
use sunledger_proto::topic::TopicKind;
use sunledger_tests::{Device, TestServer};

const SERIAL: &str = "SL-BURST-1";
const READINGS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_partition_queue_slows_ingest_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir, |settings| {
        settings.engine.partitions = 1;
        settings.engine.queue_events_max = 2;
        settings.engine.batch_events_max = 1;
    })
    .await;
    let secret = server.register(SERIAL);
    let mut device = Device::connect(server.mqtt, SERIAL, &secret, None);
    device.expect_connected().await;
    let waits_before = server
        .metric("sunledger_ingest_queue_full_waits_total", &[])
        .await;

    for seq in 1..=READINGS {
        let reading = Telemetry {
            seq,
            ts: seq as i64 * 60,
            load_wh: seq * 3,
            usb_wh: seq,
            boot: 1,
            ..Telemetry::default()
        };
        device
            .publish(TopicKind::Telemetry, reading.encode_to_vec())
            .await;
    }

    let state = server
        .wait_for_state(SERIAL, |state| {
            state.meter.is_some_and(|meter| meter.seq == READINGS)
        })
        .await;
    assert_eq!(
        state.consumed_wh,
        (READINGS - 1) * 4,
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
}
