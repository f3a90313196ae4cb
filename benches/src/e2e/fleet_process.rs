//! The simulated fleet in a child process (this binary again, role [`FLEET_ROLE`]), driven
//! over its stdin and stdout. A TCP connection within one process costs two descriptors, one
//! per end; split across two processes each holds one per device, so the container's hard
//! limit of 20,000 open files carries the 10,000 devices (in one process it stopped
//! at about 9,500). It also keeps the figures apart: the server's resident memory and CPU are
//! this process's, the fleet's are the child's.
//!
//! The conversation is line by line. The parent starts the child with the broker's address
//! and the first report interval, then writes every device's credentials (the sim's
//! credentials file format) and an `end` line; the child connects the fleet and answers with
//! a [`Connected`] line. Then each request is one line and gets one line back:
//! `interval <ms>` and `reset` (the publish→PUBACK latency) answer `ok`, `snapshot` answers a
//! [`Snapshot`], `shutdown` stops the fleet cleanly and answers `ok`, and `audit` followed
//! by `serial wh` lines of stored energy and `end` answers the fleet's [`Audit`]. Answers
//! other than `ok` are JSON. Closing stdin ends the child.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sunledger_benches::process::{
    ChildConversation, raise_fd_limit_for_connections, resident_bytes, thread_cpu_seconds,
};
use sunledger_sim::audit::Audit;
use sunledger_sim::credentials::{format_credentials, parse_credentials};
use sunledger_sim::stats::FleetStats;
use sunledger_sim::{DeviceCredentials, Fleet, SimConfig};

/// The first argument that makes this binary the fleet's process.
pub const FLEET_ROLE: &str = "fleet";
/// How long the fleet may go without one more device connecting before the child stops
/// waiting for the rest.
const CONNECT_STALL_MAX: Duration = Duration::from_secs(30);

/// How the fleet's connecting went.
#[derive(Debug, Serialize, Deserialize)]
pub struct Connected {
    /// Devices connected when the child stopped waiting.
    pub connected: u64,
    /// Seconds from starting the fleet until then.
    pub seconds: f64,
    /// Connections that failed or dropped meanwhile.
    pub errors: u64,
    /// The child's resident memory growth while connecting, bytes per connected device.
    pub rss_per_device: f64,
}

/// The fleet's counters and the child's CPU time by thread name, at one moment.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    /// The fleet's live counters.
    pub stats: FleetStats,
    /// CPU seconds the child's threads used so far, by thread name.
    pub cpu: HashMap<String, f64>,
}

/// The parent's handle on the fleet's process.
pub struct FleetProcess(ChildConversation);

impl FleetProcess {
    /// Starts the child and has it connect `devices` to the broker at `broker`, each
    /// reporting every `report_interval_ms`; returns once the fleet is connected.
    pub fn spawn(
        broker: SocketAddr,
        report_interval_ms: u64,
        devices: &[DeviceCredentials],
    ) -> anyhow::Result<(FleetProcess, Connected)> {
        let args = [
            FLEET_ROLE.to_owned(),
            broker.to_string(),
            report_interval_ms.to_string(),
        ];
        let mut fleet = FleetProcess(ChildConversation::spawn("fleet process", &args)?);
        fleet
            .0
            .send(&format!("{}end", format_credentials(devices)))?;
        let connected = serde_json::from_str(&fleet.0.line()?)?;
        Ok((fleet, connected))
    }

    /// Makes every device report every `interval_ms` from now on.
    pub fn set_report_interval(&mut self, interval_ms: u64) -> anyhow::Result<()> {
        self.ask_ok(&format!("interval {interval_ms}"))
    }

    /// Forgets the publish→PUBACK latency samples so far.
    pub fn reset_latency(&mut self) -> anyhow::Result<()> {
        self.ask_ok("reset")
    }

    /// The fleet's counters and the child's CPU time now.
    pub fn snapshot(&mut self) -> anyhow::Result<Snapshot> {
        self.0.send("snapshot")?;
        Ok(serde_json::from_str(&self.0.line()?)?)
    }

    /// Stops the fleet: devices drain their queued readings and disconnect cleanly.
    pub fn shutdown(&mut self) -> anyhow::Result<()> {
        self.ask_ok("shutdown")
    }

    /// Audits the fleet's ground truth against `stored_wh`, the energy the platform holds
    /// for each serial.
    pub fn audit(&mut self, stored_wh: &HashMap<String, u64>) -> anyhow::Result<Audit> {
        let mut request = String::from("audit\n");
        for (serial, wh) in stored_wh {
            request.push_str(&format!("{serial} {wh}\n"));
        }
        request.push_str("end");
        self.0.send(&request)?;
        Ok(serde_json::from_str(&self.0.line()?)?)
    }

    /// Lets the child exit and checks that it did so cleanly.
    pub fn close(self) -> anyhow::Result<()> {
        self.0.close()
    }

    fn ask_ok(&mut self, request: &str) -> anyhow::Result<()> {
        self.0.send(request)?;
        let answer = self.0.line()?;
        anyhow::ensure!(
            answer == "ok",
            "the fleet process answered {answer:?} to {request:?}"
        );
        Ok(())
    }
}

/// The child: `args` are the broker's address and the first report interval.
pub fn run_child(args: &[String]) -> anyhow::Result<()> {
    let [broker, interval_ms] = args else {
        anyhow::bail!("usage: e2e {FLEET_ROLE} host:port report_interval_ms");
    };
    let broker: SocketAddr = broker.parse()?;
    let mut input = std::io::stdin().lock();
    let credentials = parse_credentials(&lines_until_end(&mut input)?)?;
    raise_fd_limit_for_connections(credentials.len() as u64)?;
    let config = SimConfig {
        broker_host: broker.ip().to_string(),
        broker_port: broker.port(),
        report_interval_ms: interval_ms.parse()?,
        ..SimConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let rss_before = resident_bytes();
    let mut fleet = {
        let _inside = runtime.enter();
        Fleet::start(config, credentials)?
    };
    let (connected, seconds) = runtime.block_on(wait_connected(&fleet));
    let rss_per_device =
        resident_bytes().saturating_sub(rss_before) as f64 / connected.max(1) as f64;
    let mut out = std::io::stdout().lock();
    answer(
        &mut out,
        &Connected {
            connected,
            seconds: seconds.as_secs_f64(),
            errors: fleet.snapshot().connection_errors,
            rss_per_device,
        },
    )?;
    let mut line = String::new();
    while {
        line.clear();
        input.read_line(&mut line)? > 0
    } {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("interval"), Some(ms)) => {
                fleet.set_report_interval(Duration::from_millis(ms.parse()?));
                writeln!(out, "ok")?;
            }
            (Some("reset"), None) => {
                fleet.reset_latency();
                writeln!(out, "ok")?;
            }
            (Some("snapshot"), None) => answer(
                &mut out,
                &Snapshot {
                    stats: fleet.snapshot(),
                    cpu: thread_cpu_seconds(),
                },
            )?,
            (Some("shutdown"), None) => {
                runtime.block_on(fleet.shutdown());
                writeln!(out, "ok")?;
            }
            (Some("audit"), None) => {
                let stored = parse_stored(&lines_until_end(&mut input)?)?;
                let mut audit = Audit::default();
                crate::audit::check(&mut audit, &fleet.truth(), &stored);
                answer(&mut out, &audit)?;
            }
            _ => anyhow::bail!("the fleet process does not know {:?}", line.trim_end()),
        }
        out.flush()?;
    }
    runtime.block_on(fleet.shutdown());
    Ok(())
}

/// Waits until every device is connected, or none more connected for a while; returns how
/// many are and how long it took.
async fn wait_connected(fleet: &Fleet) -> (u64, Duration) {
    let started = Instant::now();
    let mut best = (0, Instant::now());
    loop {
        let connected = fleet.snapshot().connected;
        if connected as usize >= fleet.len() || best.1.elapsed() > CONNECT_STALL_MAX {
            return (connected, started.elapsed());
        }
        if connected > best.0 {
            best = (connected, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `value` as one JSON line and flushes it.
fn answer(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Reads lines up to one that says `end`.
fn lines_until_end(input: &mut impl BufRead) -> anyhow::Result<String> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        anyhow::ensure!(input.read_line(&mut line)? > 0, "input ended before `end`");
        if line.trim_end() == "end" {
            return Ok(text);
        }
        text.push_str(&line);
    }
}

/// `serial wh` lines into a map.
fn parse_stored(text: &str) -> anyhow::Result<HashMap<String, u64>> {
    text.lines()
        .map(|line| {
            let (serial, wh) = line
                .split_once(' ')
                .with_context(|| format!("not `serial wh`: {line:?}"))?;
            Ok((serial.to_owned(), wh.parse()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_read_up_to_its_end_line_and_the_rest_is_left() {
        let mut input = std::io::Cursor::new("a 1\nb 2\nend\nsnapshot\n");
        assert_eq!(lines_until_end(&mut input).unwrap(), "a 1\nb 2\n");
        let mut rest = String::new();
        input.read_line(&mut rest).unwrap();
        assert_eq!(rest, "snapshot\n");
    }

    #[test]
    fn a_block_without_its_end_line_is_an_error() {
        let mut input = std::io::Cursor::new("a 1\n");
        assert!(lines_until_end(&mut input).is_err());
    }

    #[test]
    fn stored_energy_lines_are_parsed_and_bad_ones_refused() {
        let stored = parse_stored("E2E-000001 17\nPROBE-01 0\n").unwrap();
        assert_eq!(stored.get("E2E-000001"), Some(&17));
        assert_eq!(stored.get("PROBE-01"), Some(&0));
        assert!(parse_stored("E2E-000001\n").is_err());
        assert!(parse_stored("E2E-000001 many\n").is_err());
    }
}
