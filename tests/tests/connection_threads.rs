//! Proves that `[broker] connection_threads` spreads device connections over that many
//! threads and that readings arrive over them exactly as over one. Alone in its test binary,
//! so the threads counted are this server's.

use sunledger_tests::{Device, TestServer, reading};

/// Devices served by a multi-threaded connection runtime (`connection_threads = 2`) are
/// stored exactly as on one thread, and the setting really starts that many threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_arrive_exactly_over_two_connection_threads() {
    const DEVICES: u64 = 12;
    const READINGS: u64 = 8;
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = TestServer::start_with(dir, |settings| {
        settings.broker.connection_threads = 2;
    })
    .await;
    let threads = std::fs::read_dir("/proc/self/task")
        .expect("this process's threads")
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "mqtt-devices")
        })
        .count();
    // The thread that starts the runtime and its two workers share the name.
    assert!(threads >= 3, "{threads} threads named mqtt-devices");

    let mut devices: Vec<_> = (0..DEVICES)
        .map(|n| {
            let serial = format!("SL-THREADS-{n}");
            let secret = server.register(&serial);
            (
                serial.clone(),
                Device::connect(server.mqtt, &serial, &secret, None),
            )
        })
        .collect();
    for (_, device) in &mut devices {
        device.expect_connected().await;
    }
    for seq in 1..=READINGS {
        for (_, device) in &devices {
            device
                .send_reading(reading(seq, seq as i64 * 900, seq * 10, seq))
                .await;
        }
    }
    for (serial, _) in &devices {
        let state = server
            .wait_for_state(serial, |state| {
                state.meter.is_some_and(|meter| meter.seq == READINGS)
            })
            .await;
        // The first reading sets the baseline; each one after adds 10 + 1 Wh.
        assert_eq!(state.consumed_wh, (READINGS - 1) * 11, "{serial}");
    }
}
