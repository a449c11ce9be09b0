//! What the server processes of a benchmark cost, read from /proc: CPU time and
//! resident memory.

use anyhow::Context;

/// CPU time of processes so far (all their threads), from /proc/PID/task/*/schedstat.
pub fn cpu_seconds(pids: &[u32]) -> anyhow::Result<f64> {
    let mut nanos = 0u64;
    for pid in pids {
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            // A thread may end between listing and reading: it has no more CPU to add.
            let Ok(stat) = std::fs::read_to_string(task?.path().join("schedstat")) else { continue };
            nanos += stat.split_whitespace().next().context("empty schedstat")?.parse::<u64>()?;
        }
    }
    Ok(nanos as f64 / 1e9)
}

/// Resident memory of a process.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .context("no VmRSS")?;
    Ok(kb.parse::<u64>()? * 1024)
}

/// Resident memory of processes together.
pub fn total_rss(pids: &[u32]) -> anyhow::Result<u64> {
    pids.iter().map(|pid| rss_bytes(*pid)).sum()
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
