//! A burst of readings from one device into a deliberately slow engine, shared by the
//! back-pressure tests.

use sunledger_proto::device::Telemetry;

use crate::{Device, TestServer};

/// Readings in one burst.
pub const READINGS: u64 = 300;
/// Each reading adds 3 Wh on the load port and 1 Wh on USB.
pub const WH_PER_READING: u64 = 4;

/// A server whose only partition takes one event per commit from a 2-event queue, with the
/// broker's log optionally shrunk to `(segment_bytes_max, segments_max)`.
pub async fn slow_engine(broker_log: Option<(usize, usize)>) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    TestServer::start_with(dir, |settings| {
        settings.engine.partitions = 1;
        settings.engine.queue_events_max = 2;
        settings.engine.batch_events_max = 1;
        if let Some((segment_bytes_max, segments_max)) = broker_log {
            settings.broker.segment_bytes_max = segment_bytes_max;
            settings.broker.segments_max = segments_max;
        }
    })
    .await
}

/// Registers `serial`, publishes reading 1 and waits until it is stored (a unit's first
/// reading is its baseline, and the burst must not race it), then publishes readings
/// 2..=READINGS as fast as the client can.
pub async fn burst(server: &TestServer, serial: &str) {
    let secret = server.register(serial);
    let mut device = Device::connect(server.mqtt, serial, &secret, None);
    device.expect_connected().await;
    device.send_reading(reading(1)).await;
    server
        .wait_for_state(serial, |state| {
            state.meter.is_some_and(|meter| meter.seq == 1)
        })
        .await;
    for seq in 2..=READINGS {
        device.send_reading(reading(seq)).await;
    }
}

/// Reading `seq` of a burst: a minute after the one before, `WH_PER_READING` more.
fn reading(seq: u64) -> Telemetry {
    Telemetry {
        seq,
        ts: seq as i64 * 60,
        load_wh: seq * 3,
        usb_wh: seq,
        boot: 1,
        ..Telemetry::default()
    }
}
