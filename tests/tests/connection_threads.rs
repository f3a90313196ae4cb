//! Proves that `[broker] connection_threads` spreads device connections over that many
//! threads, for the plain listener and the TLS one alike, and that readings arrive over them
//! exactly as over one. Alone in its test binary, so the threads counted are this server's.

use sunledger_broker::BrokerTls;
use sunledger_tests::tls::SelfSigned;
use sunledger_tests::{Device, TestServer, free_addr, reading};

const DEVICES: u64 = 12;
const READINGS: u64 = 8;

/// Threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("this process's threads")
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .count()
}

/// Devices served by multi-threaded connection runtimes (`connection_threads = 2`), half over
/// TLS, are stored exactly as on one thread, and the setting really starts those threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_arrive_exactly_over_two_connection_threads_plain_and_tls() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cert = SelfSigned::write_in(dir.path());
    let mqtt_tls = free_addr();
    let (cert_path, key_path) = (cert.cert_path.clone(), cert.key_path.clone());
    let server = TestServer::start_with(dir, |settings| {
        settings.broker.connection_threads = 2;
        settings.broker.tls = Some(BrokerTls {
            listen: mqtt_tls,
            cert_path,
            key_path,
            handshakes_max: 64,
        });
    })
    .await;
    // Each listener's thread that starts its runtime and the two workers share a name.
    for name in ["mqtt-devices", "mqtt-tls"] {
        let threads = threads_named(name);
        assert!(threads >= 3, "{threads} threads named {name}");
    }

    let mut devices: Vec<_> = (0..DEVICES)
        .map(|n| {
            let serial = format!("SL-THREADS-{n}");
            let secret = server.register(&serial);
            let device = if n % 2 == 0 {
                Device::connect(server.mqtt, &serial, &secret, None)
            } else {
                Device::connect_over(cert.mqtt_transport(), mqtt_tls, &serial, &secret)
            };
            (serial, device)
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
