//! Benchmark: what this machine's loopback TCP costs for the e2e pattern itself, with no MQTT
//! broker, billing or simulator behind it: the most `e2e` or `relay` could reach here.
//!
//! Two patterns, each against a fresh child process (this binary again, role
//! [`RECEIVER_ROLE`]) that counts complete PUBLISH frames and parses nothing else. Both sides
//! use tokio, as the server and the fleet do.
//! - *Round trips*: `connections` client sockets each send the exact bytes of one telemetry
//!   PUBLISH (QoS 1, a sealed reading on a device's topic), wait for the 4 bytes of the
//!   PUBACK the child answers, and send again at once. Each round trip is what a device's
//!   report costs at the least: one write and one read on each side of a loopback connection
//!   among `connections` open ones.
//! - *One way*: the same reading as a QoS 0 PUBLISH, which nothing answers, each connection
//!   sending one every `connections / one_way_rate` seconds (spread over that period), so
//!   that `one_way_rate` msgs/s are offered in all: what reports would cost if devices gave
//!   up the acknowledgement, at the rate the issue asks for. Paced, because a connection
//!   that sent back to back would have the kernel merge its messages into shared segments,
//!   which one device reporting once per interval never does.
//!
//! For each it prints messages per second, the CPU each side spent per message, and the most
//! this machine's CPUs could carry at that cost.
//!
//! Run: `cargo run --release -p sunledger-benches --bin tcp-ceiling -- [connections]
//! [seconds] [one_way_rate]` (defaults 10,000, 10 and 200,000).

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
use tokio::time::MissedTickBehavior;

/// The first argument that makes this binary the receiving side.
const RECEIVER_ROLE: &str = "receiver";
/// Messages before measuring, so every connection is past its first.
const WARM_UP: Duration = Duration::from_secs(2);

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some(RECEIVER_ROLE) {
        return receiver().await;
    }
    let mut arg = sunledger_benches::numeric_args(args);
    let (connections, seconds, one_way_rate) = (arg(10_000)?, arg(10)?, arg(200_000)?);
    raise_fd_limit_for_connections(connections)?;
    anyhow::ensure!(one_way_rate > 0, "one_way_rate must be above 0");

    let publish = telemetry_publish(QoS::AtLeastOnce)?;
    let peer = Peer::start(connections, &publish, Reply::PubAck)?;
    for stream in peer.connect(connections).await? {
        tokio::spawn(send_and_await_acks(stream, publish.clone()));
    }
    let measured = peer.measure(seconds).await?;
    println!(
        "tcp-ceiling: {connections} connections, {}-byte telemetry PUBLISH then 4-byte PUBACK \
         per round trip, nothing parsed or stored: {:.0} round trips/s; CPU per round trip: {}",
        publish.len(),
        measured.rate(),
        measured.costs("acking", "sending"),
    );

    let publish = telemetry_publish(QoS::AtMostOnce)?;
    let peer = Peer::start(connections, &publish, Reply::Nothing)?;
    let period = Duration::from_secs_f64(connections as f64 / one_way_rate as f64);
    for (index, stream) in peer.connect(connections).await?.into_iter().enumerate() {
        let phase = period.mul_f64(index as f64 / connections as f64);
        tokio::spawn(send_every(stream, publish.clone(), period, phase));
    }
    let measured = peer.measure(seconds).await?;
    println!(
        "tcp-ceiling one-way: {connections} connections, {}-byte QoS 0 telemetry PUBLISH every \
         {:.1} ms each (a timer each on the sending side), nothing answered, parsed or stored: \
         {one_way_rate} msgs/s offered, {:.0} received; CPU per message: {}",
        publish.len(),
        period.as_secs_f64() * 1e3,
        measured.rate(),
        measured.costs("receiving", "sending"),
    );
    Ok(())
}

/// Whether the receiving side answers each PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// With a PUBACK, as a broker does for QoS 1.
    PubAck,
    /// Not at all, as for QoS 0.
    Nothing,
}

/// The receiving child process of one pattern, and the port it listens on.
struct Peer {
    child: ChildConversation,
    port: u16,
}

impl Peer {
    /// Starts a receiver for `connections` connections sending `publish`.
    fn start(connections: u64, publish: &[u8], reply: Reply) -> anyhow::Result<Peer> {
        let mut child = ChildConversation::spawn("receiver process", &[RECEIVER_ROLE.to_owned()])?;
        let ack = u8::from(reply == Reply::PubAck);
        child.send(&format!("{connections} {} {ack}", publish.len()))?;
        let port = child.line()?.parse()?;
        Ok(Peer { child, port })
    }

    /// Opens `connections` client sockets to the receiver, one at a time so that its
    /// listener's backlog never overflows into SYN retries.
    async fn connect(&self, connections: u64) -> anyhow::Result<Vec<TcpStream>> {
        let mut streams = Vec::new();
        for _ in 0..connections {
            let stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream.set_nodelay(true)?;
            streams.push(stream);
        }
        Ok(streams)
    }

    /// After the warm-up, the PUBLISHes the receiver took in `seconds` and what both
    /// processes spent meanwhile; then stops the receiver, which ends the connections.
    async fn measure(mut self, seconds: u64) -> anyhow::Result<Measured> {
        tokio::time::sleep(WARM_UP).await;
        let (count, peer_cpu, own_cpu) = (
            self.received()?,
            process_cpu_seconds(self.child.id()),
            cpu_seconds(),
        );
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let measured = Measured {
            elapsed: started.elapsed().as_secs_f64(),
            count: (self.received()? - count) as f64,
            peer_cpu: process_cpu_seconds(self.child.id()) - peer_cpu,
            own_cpu: cpu_seconds() - own_cpu,
        };
        self.child.close()?;
        anyhow::ensure!(measured.count > 0.0, "no PUBLISH arrived in {seconds} s");
        Ok(measured)
    }

    /// Complete PUBLISHes the receiver has read so far, on all connections.
    fn received(&mut self) -> anyhow::Result<u64> {
        self.child.send("count")?;
        Ok(self.child.line()?.parse()?)
    }
}

/// What one pattern carried and cost over its measured window.
struct Measured {
    elapsed: f64,
    /// PUBLISHes received.
    count: f64,
    /// CPU seconds of the receiving child and of this, the sending, process.
    peer_cpu: f64,
    own_cpu: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.count / self.elapsed
    }

    /// Each side's CPU per message, and the most this machine's CPUs carry at their sum.
    fn costs(&self, peer: &str, own: &str) -> String {
        let per_message_us = |cpu: f64| cpu * 1e6 / self.count;
        let both_us = per_message_us(self.peer_cpu + self.own_cpu);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        format!(
            "{peer} side {:.1} µs ({:.2} cores), {own} side {:.1} µs ({:.2} cores), both \
             {both_us:.1} µs; {cpus} CPUs at that cost carry at most {:.0} msgs/s",
            per_message_us(self.peer_cpu),
            self.peer_cpu / self.elapsed,
            per_message_us(self.own_cpu),
            self.own_cpu / self.elapsed,
            cpus as f64 * 1e6 / both_us,
        )
    }
}

/// The bytes a simulated device sends for one report: a sealed reading with typical
/// counters, as a PUBLISH on its telemetry topic at `qos`.
fn telemetry_publish(qos: QoS) -> anyhow::Result<bytes::Bytes> {
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
    let mut publish = Publish::new(device_topic(serial, TopicKind::Telemetry), qos, payload);
    if qos != QoS::AtMostOnce {
        publish.pkid = 1;
    }
    let mut frame = BytesMut::new();
    publish.write(&mut frame)?;
    Ok(frame.freeze())
}

/// One client connection's round trips: a PUBLISH, then its PUBACK, until the connection
/// ends.
async fn send_and_await_acks(mut stream: TcpStream, publish: bytes::Bytes) {
    let mut puback = [0; 4];
    while stream.write_all(&publish).await.is_ok() && stream.read_exact(&mut puback).await.is_ok() {
    }
}

/// One client connection's one-way reports: a PUBLISH every `period`, the first after
/// `phase`, until the connection ends. A late tick is not made up with a burst.
async fn send_every(
    mut stream: TcpStream,
    publish: bytes::Bytes,
    period: Duration,
    phase: Duration,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if stream.write_all(&publish).await.is_err() {
            return;
        }
    }
}

/// The child: reads `connections frame_len ack` on stdin, listens on a free loopback port
/// and prints it, then receives on every connection and answers each further line with the
/// PUBLISHes received so far, until stdin closes.
async fn receiver() -> anyhow::Result<()> {
    let mut line = String::new();
    let mut stdin = std::io::stdin().lock();
    stdin.read_line(&mut line)?;
    let numbers: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let &[connections, frame_len, ack] = numbers.as_slice() else {
        anyhow::bail!("receiver: expected `connections frame_len ack`, got {line:?}");
    };
    let reply = if ack == 1 {
        Reply::PubAck
    } else {
        Reply::Nothing
    };
    raise_fd_limit_for_connections(connections)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    let received = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if stream.set_nodelay(true).is_ok() {
                let counted = Arc::clone(&counted);
                tokio::spawn(receive(stream, frame_len as usize, reply, counted));
            }
        }
    });
    // Blocks this main thread between questions; the runtime's workers serve the
    // connections meanwhile.
    for question in stdin.lines() {
        question?;
        println!("{}", received.load(Ordering::Relaxed));
    }
    Ok(())
}

/// Counts each complete `frame_len`-byte PUBLISH read into `received` and, if asked, answers
/// them with PUBACKs in one write per read.
async fn receive(mut stream: TcpStream, frame_len: usize, reply: Reply, received: Arc<AtomicU64>) {
    let mut puback = BytesMut::new();
    if PubAck::new(1).write(&mut puback).is_err() {
        return;
    }
    let mut buffer = vec![0; 4096];
    let mut frames = FrameCount::new(frame_len);
    let mut replies = Vec::new();
    while let Ok(read @ 1..) = stream.read(&mut buffer).await {
        let completed = frames.completed_by(read);
        received.fetch_add(completed as u64, Ordering::Relaxed);
        if reply == Reply::Nothing || completed == 0 {
            continue;
        }
        replies.clear();
        for _ in 0..completed {
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
    fn the_publishes_are_telemetry_publishes_that_decode_at_their_qos() {
        for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
            let frame = telemetry_publish(qos).unwrap();
            let mut buffer = BytesMut::from(&frame[..]);
            let packet = rumqttc::Packet::read(&mut buffer, 4096).unwrap();
            let rumqttc::Packet::Publish(publish) = packet else {
                panic!("not a PUBLISH: {packet:?}");
            };
            assert!(buffer.is_empty(), "one packet, nothing after it");
            assert_eq!(publish.qos, qos);
            assert!(publish.topic.ends_with("/telemetry"), "{}", publish.topic);
            let reading = sunledger_proto::payload::decode_telemetry(&publish.payload).unwrap();
            assert_eq!(reading.load_wh, 48_213);
        }
    }
}
