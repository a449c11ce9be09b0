//! What the server processes of a benchmark cost, read from /proc: CPU time and
//! resident memory.

use std::net::SocketAddr;

use anyhow::Context;

/// The gim deployment a fan-out benchmark runs against, and the processes it measures.
#[derive(clap::Args)]
pub struct Deployment {
    /// Connect nodes' WebSocket addresses; sessions are spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    pub ws: Vec<SocketAddr>,
    /// gim processes whose CPU time is the server's.
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Database and Redis processes, whose CPU time is reported apart.
    #[arg(long, value_delimiter = ',')]
    pub aux_pids: Vec<u32>,
}

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

/// What server processes spend from the start of a measurement.
pub struct Meter {
    pids: Vec<u32>,
    cpu_before: f64,
    started: std::time::Instant,
}

/// What a measurement found.
pub struct Usage {
    /// CPU-seconds over `window` seconds.
    pub cpu: f64,
    pub window: f64,
    /// Resident memory at the end.
    pub rss_bytes: u64,
}

impl Meter {
    pub fn start(pids: &[u32]) -> anyhow::Result<Self> {
        Ok(Self { pids: pids.to_vec(), cpu_before: cpu_seconds(pids)?, started: std::time::Instant::now() })
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Lets the servers finish what they were given for `drain`, then reads their usage.
    pub async fn finish(self, drain: std::time::Duration) -> anyhow::Result<Usage> {
        tokio::time::sleep(drain).await;
        Ok(Usage {
            cpu: cpu_seconds(&self.pids)? - self.cpu_before,
            window: self.started.elapsed().as_secs_f64(),
            rss_bytes: total_rss(&self.pids)?,
        })
    }
}
