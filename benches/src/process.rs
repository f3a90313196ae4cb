//! Facts about this process that benchmarks print: resident memory, CPU time and the
//! open-file limit.

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
}
