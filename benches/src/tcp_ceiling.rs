//! Benchmark: what this machine's loopback TCP costs for the e2e pattern itself, with no MQTT
//! broker, billing or simulator behind it: the most `e2e` or `relay` could reach here.
//!
//! `connections` client sockets in this process each send the exact bytes of one telemetry
//! PUBLISH (QoS 1, a sealed reading on a device's topic), wait for the 4 bytes of a PUBACK,
//! and send again at once. The other end, a child process (this binary again, role
//! [`ACKER_ROLE`]), answers every complete PUBLISH with a PUBACK and parses nothing else. Both
//! sides use tokio, as the server and the fleet do. So each round trip is what a
//! device's report costs at the least: one write and one read on each side of a loopback
//! connection among `connections` open ones. It prints round trips per second, the CPU each
//! side spent per round trip, and the most this machine's CPUs could carry at that cost.
//!
//! Run: `cargo run --release -p sunledger-benches --bin tcp-ceiling -- [connections] [seconds]`
//! (defaults 10,000 and 10).

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::{PubAck, Publish, QoS};
use sunledger_benches::process::{
    ChildConversation, cpu_seconds, process_cpu_seconds, raise_fd_limit_for_connections,
};
use sunledger_proto::authenticity::{self, DeviceKey};
use sunledger_proto::device::Telemetry;
use sunledger_proto::topic::{TopicKind, device_topic};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The first argument that makes this binary the acking side.
const ACKER_ROLE: &str = "acker";
/// Round trips before measuring, so every connection is past its first.
const WARM_UP: Duration = Duration::from_secs(2);

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some(ACKER_ROLE) {
        return acker().await;
    }
    let mut arg = sunledger_benches::numeric_args(args);
    let (connections, seconds) = (arg(10_000)?, arg(10)?);
    raise_fd_limit_for_connections(connections)?;
    let publish = telemetry_publish()?;
    let mut child = ChildConversation::spawn("acker process", &[ACKER_ROLE.to_owned()])?;
    child.send(&format!("{connections} {}", publish.len()))?;
    let port: u16 = child.line()?.parse()?;

    let round_trips = Arc::new(AtomicU64::new(0));
    for _ in 0..connections {
        // One at a time, so the listener's backlog never overflows into SYN retries.
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        tokio::spawn(send_and_await_acks(
            stream,
            publish.clone(),
            Arc::clone(&round_trips),
        ));
    }
    tokio::time::sleep(WARM_UP).await;
    let (count, acker_cpu, sender_cpu) = (
        round_trips.load(Ordering::Relaxed),
        process_cpu_seconds(child.id()),
        cpu_seconds(),
    );
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let count = (round_trips.load(Ordering::Relaxed) - count) as f64;
    let acker_cpu = process_cpu_seconds(child.id()) - acker_cpu;
    let sender_cpu = cpu_seconds() - sender_cpu;
    child.close()?;

    anyhow::ensure!(count > 0.0, "no round trip completed in {seconds} s");
    let per_trip_us = |cpu: f64| cpu * 1e6 / count;
    let both_us = per_trip_us(acker_cpu + sender_cpu);
    let cpus = std::thread::available_parallelism()?.get();
    println!(
        "tcp-ceiling: {connections} connections, {}-byte telemetry PUBLISH then 4-byte PUBACK \
         per round trip, nothing parsed or stored: {:.0} round trips/s; CPU per round trip: \
         acking side {:.1} µs ({:.2} cores), sending side {:.1} µs ({:.2} cores), both {:.1} µs; \
         {cpus} CPUs at that cost carry at most {:.0} msgs/s",
        publish.len(),
        count / elapsed,
        per_trip_us(acker_cpu),
        acker_cpu / elapsed,
        per_trip_us(sender_cpu),
        sender_cpu / elapsed,
        both_us,
        cpus as f64 * 1e6 / both_us,
    );
    Ok(())
}

/// The bytes a simulated device sends for one report: a sealed reading with typical
/// counters, as a QoS 1 PUBLISH on its telemetry topic.
fn telemetry_publish() -> anyhow::Result<bytes::Bytes> {
    let serial = "SIM-000001";
    let key: DeviceKey = [7; authenticity::DEVICE_KEY_BYTES];
    let reading = Telemetry {
        seq: 1_234,
        ts: 1_780_000_000,
        load_wh: 48_213,
        usb_wh: 3_120,
        boot: 1,
        battery_mv: Some(12_840),
        pv_wh: Some(61_507),
        load_on: true,
        ..Telemetry::default()
    };
    let payload = prost::Message::encode_to_vec(&authenticity::seal(&key, serial, reading));
    let mut publish = Publish::new(
        device_topic(serial, TopicKind::Telemetry),
        QoS::AtLeastOnce,
        payload,
    );
    publish.pkid = 1;
    let mut frame = BytesMut::new();
    publish.write(&mut frame)?;
    Ok(frame.freeze())
}

/// One client connection's loop: a PUBLISH, then its PUBACK, until the connection ends.
async fn send_and_await_acks(
    mut stream: TcpStream,
    publish: bytes::Bytes,
    round_trips: Arc<AtomicU64>,
) {
    let mut puback = [0; 4];
    while stream.write_all(&publish).await.is_ok() && stream.read_exact(&mut puback).await.is_ok() {
        round_trips.fetch_add(1, Ordering::Relaxed);
    }
}

/// The child: reads `connections frame_len` on stdin, listens on a free loopback port and
/// prints it, acks on every connection until stdin closes.
async fn acker() -> anyhow::Result<()> {
    let mut line = String::new();
    let mut stdin = std::io::stdin().lock();
    stdin.read_line(&mut line)?;
    let mut numbers = line.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(connections)), Some(Ok(frame_len))) = (numbers.next(), numbers.next()) else {
        anyhow::bail!("acker: expected `connections frame_len`, got {line:?}");
    };
    raise_fd_limit_for_connections(connections)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if stream.set_nodelay(true).is_ok() {
                tokio::spawn(ack_every_publish(stream, frame_len as usize));
            }
        }
    });
    // Blocks this main thread until the parent closes stdin; the runtime's workers serve the
    // connections meanwhile.
    while stdin.read_line(&mut line)? > 0 {}
    Ok(())
}

/// Answers each complete `frame_len`-byte PUBLISH read with a PUBACK, in one write per read.
async fn ack_every_publish(mut stream: TcpStream, frame_len: usize) {
    let mut puback = BytesMut::new();
    if PubAck::new(1).write(&mut puback).is_err() {
        return;
    }
    let mut buffer = vec![0; 4096];
    let mut frames = FrameCount::new(frame_len);
    let mut replies = Vec::new();
    while let Ok(read @ 1..) = stream.read(&mut buffer).await {
        replies.clear();
        for _ in 0..frames.completed_by(read) {
            replies.extend_from_slice(&puback);
        }
        if stream.write_all(&replies).await.is_err() {
            return;
        }
    }
}

/// Counts fixed-size frames in a byte stream read in arbitrary pieces.
struct FrameCount {
    frame_len: usize,
    /// Bytes of the next, incomplete frame already read.
    partial: usize,
}

impl FrameCount {
    fn new(frame_len: usize) -> FrameCount {
        FrameCount {
            frame_len,
            partial: 0,
        }
    }

    /// How many frames the next `read` bytes complete.
    fn completed_by(&mut self, read: usize) -> usize {
        let total = self.partial + read;
        self.partial = total % self.frame_len;
        total / self.frame_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads_are_counted_once_complete() {
        let mut frames = FrameCount::new(10);
        assert_eq!(frames.completed_by(4), 0);
        assert_eq!(frames.completed_by(6), 1);
        assert_eq!(frames.completed_by(25), 2);
        assert_eq!(frames.completed_by(5), 1);
        assert_eq!(frames.completed_by(0), 0);
    }

    #[test]
    fn the_publish_is_a_qos1_telemetry_publish_that_decodes() {
        let frame = telemetry_publish().unwrap();
        let mut buffer = BytesMut::from(&frame[..]);
        let packet = rumqttc::Packet::read(&mut buffer, 4096).unwrap();
        let rumqttc::Packet::Publish(publish) = packet else {
            panic!("not a PUBLISH: {packet:?}");
        };
        assert!(buffer.is_empty(), "one packet, nothing after it");
        assert_eq!(publish.qos, QoS::AtLeastOnce);
        assert!(publish.topic.ends_with("/telemetry"), "{}", publish.topic);
        let reading = sunledger_proto::payload::decode_telemetry(&publish.payload).unwrap();
        assert_eq!(reading.load_wh, 48_213);
    }
}
