//! Benchmark: the simulator fleet against an external MQTT broker (e.g. Mosquitto), with no
//! billing behind it, as the yardstick for `e2e`: one subscriber on every device's telemetry
//! topic counts the messages the broker relays per second.
//!
//! Run: `cargo run --release -p sunledger-benches --bin relay -- host:port [devices] [seconds]
//! [interval_ms] [broker_pid]` (defaults 10000 devices, 20 s per step, a ramp of offers
//! starting at a report every 250 ms per device, as in `e2e`). Given the broker's process id,
//! it also prints the broker's CPU time per relayed message, to set beside the server's CPU
//! time per stored message that `e2e` prints. The broker must accept anonymous clients with any
//! client id and password, as `benches/run.sh`'s Mosquitto configuration does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sunledger_benches::process::{cpu_seconds, process_cpu_seconds, raise_fd_limit};
use sunledger_benches::{
    CONNECT_INTERVAL_MS, Measured, RAMP_START_INTERVAL_MS, Rates, offer_note, ramp,
};
use sunledger_proto::topic::ALL_TELEMETRY;
use sunledger_sim::{DeviceCredentials, Fleet, SimConfig};

/// Time given to the fleet after connecting before measuring.
const WARM_UP: Duration = Duration::from_secs(3);
/// How long to wait for the fleet to connect.
const CONNECT_WAIT_MAX: Duration = Duration::from_secs(120);

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let broker = args.next().ok_or_else(|| {
        anyhow::anyhow!("usage: relay host:port [devices] [seconds] [interval_ms] [broker_pid]")
    })?;
    let mut arg = sunledger_benches::numeric_args(args);
    let (devices, seconds, interval_ms, broker_pid) = (
        arg(10_000)? as usize,
        arg(20)?,
        arg(RAMP_START_INTERVAL_MS)?,
        u32::try_from(arg(0)?)?,
    );
    let (host, port) = broker
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("{broker} is not host:port"))?;
    let fd = raise_fd_limit(devices as u64 + 1024)?;
    println!(
        "open-file limit: {} -> {} (hard {})",
        fd.before, fd.after, fd.hard
    );

    let received = Arc::new(AtomicU64::new(0));
    subscribe(host, port.parse()?, Arc::clone(&received)).await?;
    let config = SimConfig {
        broker_host: host.to_owned(),
        broker_port: port.parse()?,
        report_interval_ms: CONNECT_INTERVAL_MS,
        ..SimConfig::default()
    };
    let credentials = (1..=devices)
        .map(|n| DeviceCredentials {
            serial: format!("RELAY-{n:06}"),
            // Mosquitto takes any password and nothing checks the MACs on this path.
            device_key: [0; 16],
            // The bare relay has no platform to sign commands (and sends none).
            command_key: None,
        })
        .collect();
    let mut fleet = Fleet::start(config, credentials)?;
    let started = Instant::now();
    while (fleet.snapshot().connected as usize) < devices && started.elapsed() < CONNECT_WAIT_MAX {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = fleet.snapshot().connected;
    println!(
        "{connected} of {devices} devices connected in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (best, ramp_lines) = ramp(interval_ms, async |interval_ms| {
        fleet.set_report_interval(Duration::from_millis(interval_ms));
        tokio::time::sleep(WARM_UP).await;
        let before = Cpu::read(broker_pid);
        let (relayed_before, window_start) = (received.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let window_s = window_start.elapsed().as_secs_f64();
        let after = Cpu::read(broker_pid);
        anyhow::Ok(Step {
            rates: Measured {
                offered_per_s: connected as f64 * 1000.0 / interval_ms as f64,
                achieved_per_s: (received.load(Ordering::Relaxed) - relayed_before) as f64
                    / window_s,
            },
            broker_cores: (after.broker - before.broker) / window_s,
            fleet_cores: (after.fleet - before.fleet) / window_s,
        })
    })
    .await?;
    fleet.shutdown().await;
    for line in ramp_lines {
        println!("{line}");
    }
    println!(
        "relay {broker}: {connected} of {devices} devices connected; offered {:.0} msgs/s; relayed {:.0} msgs/s{}",
        best.offered_per_s(),
        best.achieved_per_s(),
        offer_note(&best)
    );
    if broker_pid != 0 {
        let per_message_us = |cores: f64| cores * 1e6 / best.achieved_per_s().max(1.0);
        println!(
            "relay cpu per relayed message: broker {:.1} µs ({:.2} cores), fleet {:.1} µs ({:.2} cores)",
            per_message_us(best.broker_cores),
            best.broker_cores,
            per_message_us(best.fleet_cores),
            best.fleet_cores
        );
    }
    Ok(())
}

/// One ramp step: its rates and the cores the broker and this process (the fleet and the
/// subscriber) used meanwhile.
struct Step {
    rates: Measured,
    broker_cores: f64,
    fleet_cores: f64,
}

impl Rates for Step {
    fn offered_per_s(&self) -> f64 {
        self.rates.offered_per_s
    }

    fn achieved_per_s(&self) -> f64 {
        self.rates.achieved_per_s
    }
}

/// CPU seconds used so far by the broker (0 without its pid) and by this process.
struct Cpu {
    broker: f64,
    fleet: f64,
}

impl Cpu {
    fn read(broker_pid: u32) -> Cpu {
        Cpu {
            broker: match broker_pid {
                0 => 0.0,
                pid => process_cpu_seconds(pid),
            },
            fleet: cpu_seconds(),
        }
    }
}

/// Connects the counting subscriber and returns once its subscription is acknowledged.
async fn subscribe(host: &str, port: u16, received: Arc<AtomicU64>) -> anyhow::Result<()> {
    let mut options = MqttOptions::new("relay-bench-subscriber", host, port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    client.subscribe(ALL_TELEMETRY, QoS::AtMostOnce).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    tokio::spawn(async move {
        // The client must outlive the loop, or the event loop sees its requests channel close.
        let _client = client;
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::Publish(_)) = event {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Ok(())
}
