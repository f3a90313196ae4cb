//! Facts about processes that benchmarks print (resident memory, CPU time by thread or of
//! another process, the open-file limit), and the child processes they run their simulated
//! devices in.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use rlimit::Resource;

/// Resident set size of this process in bytes, from `VmRSS` in `/proc/self/status` (0 where
/// unavailable, e.g. not on Linux).
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU time this process has used, every thread's, in seconds: what a figure costs in cores,
/// beside the wall time it took.
pub fn cpu_seconds() -> f64 {
    let used = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    used.tv_sec as f64 + used.tv_nsec as f64 * 1e-9
}

/// CPU time this process's threads have used, seconds, by thread name (threads of one name,
/// such as tokio's workers, summed). Read from `/proc/self/task/*/schedstat` (nanoseconds on
/// CPU); empty where that is unavailable.
pub fn thread_cpu_seconds() -> HashMap<String, f64> {
    thread_cpu_seconds_of("self")
}

/// CPU time the process `pid` has used, all its threads', in seconds (0 where unavailable):
/// what another program under test costs, such as the reference broker.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    thread_cpu_seconds_of(&pid.to_string()).values().sum()
}

/// [`thread_cpu_seconds`] of the process `/proc/{process}`.
fn thread_cpu_seconds_of(process: &str) -> HashMap<String, f64> {
    let mut by_name = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{process}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let on_cpu_ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        *by_name.entry(name.trim().to_owned()).or_insert(0.0) += on_cpu_ns / 1e9;
    }
    by_name
}

/// CPU seconds each thread name used between two readings, largest first, leaving out those
/// under 5 ms.
pub fn cpu_delta(
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
) -> Vec<(String, f64)> {
    let mut delta: Vec<(String, f64)> = after
        .iter()
        .map(|(name, s)| (name.clone(), s - before.get(name).copied().unwrap_or(0.0)))
        .filter(|(_, s)| *s >= 0.005)
        .collect();
    delta.sort_by(|a, b| b.1.total_cmp(&a.1));
    delta
}

/// This benchmark binary run again as a child process (its first argument a role), talked
/// to line by line over its stdin and stdout: benchmarks put their simulated devices there,
/// so that each process holds one end of every connection and its own CPU time.
pub struct ChildConversation {
    /// What the child is, for errors ("the fleet process").
    what: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl ChildConversation {
    /// Starts this binary with `args`.
    pub fn spawn(what: &'static str, args: &[String]) -> anyhow::Result<ChildConversation> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            anyhow::bail!("{what}: no pipes");
        };
        Ok(ChildConversation {
            what,
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        })
    }

    /// The child's process id, to read its CPU time.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Writes `text` and a line end, and flushes.
    pub fn send(&mut self, text: &str) -> anyhow::Result<()> {
        let what = self.what;
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("{what}: stdin closed"))?;
        writeln!(stdin, "{text}")?;
        stdin.flush()?;
        Ok(())
    }

    /// The child's next line, without its line end; an error if the child ended.
    pub fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        anyhow::ensure!(
            self.stdout.read_line(&mut line)? > 0,
            "the {} ended early",
            self.what
        );
        Ok(line.trim_end().to_owned())
    }

    /// Closes the child's stdin (its cue to finish) and checks that it exits cleanly.
    pub fn close(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "the {} failed: {status}", self.what);
        Ok(())
    }
}

/// Descriptors a benchmark's connection-holding process keeps beyond one per connection:
/// stdio, its runtime's, the pipes to its parent.
const CONNECTIONS_FD_SPARE: u64 = 256;

/// [`raise_fd_limit`] for a process that holds one end of each of `connections` sockets and
/// little else: a simulated fleet, the reconnect storm's clients, either side of
/// `tcp-ceiling`.
pub fn raise_fd_limit_for_connections(connections: u64) -> std::io::Result<FdLimit> {
    raise_fd_limit(connections + CONNECTIONS_FD_SPARE)
}

/// The open-file limit before and after [`raise_fd_limit`], for printing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// Soft limit found at start.
    pub before: u64,
    /// Soft limit now.
    pub after: u64,
    /// Hard limit now.
    pub hard: u64,
}

/// Raises the soft open-file limit to at least `wanted` if possible: first within the hard
/// limit, then the hard limit too (allowed for root, up to the kernel's `nr_open`). Every
/// in-process MQTT connection costs two descriptors (client and server end), so 10,000
/// devices need more than the common default of 1,024.
pub fn raise_fd_limit(wanted: u64) -> std::io::Result<FdLimit> {
    let (before, hard) = Resource::NOFILE.get()?;
    if before < wanted && Resource::NOFILE.set(wanted, hard.max(wanted)).is_err() {
        Resource::NOFILE.set(wanted.min(hard), hard)?;
    }
    let (after, hard) = Resource::NOFILE.get()?;
    Ok(FdLimit {
        before,
        after,
        hard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes() > 0);
        }
    }

    #[test]
    fn a_process_cpu_time_by_pid_agrees_with_its_own_reading() {
        if cfg!(target_os = "linux") {
            let spin_until = std::time::Instant::now() + std::time::Duration::from_millis(50);
            while std::time::Instant::now() < spin_until {
                std::hint::spin_loop();
            }
            let by_pid = process_cpu_seconds(std::process::id());
            let own: f64 = thread_cpu_seconds().values().sum();
            assert!(by_pid >= 0.04, "{by_pid} s after spinning 50 ms");
            assert!((own - by_pid).abs() < 0.05, "{own} s vs {by_pid} s");
        }
    }

    #[test]
    fn a_process_that_does_not_exist_used_no_cpu() {
        assert_eq!(process_cpu_seconds(u32::MAX), 0.0);
    }
}
