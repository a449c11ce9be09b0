//! Latency histograms and the lines the benchmarks print.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Microsecond latencies from 1 µs to 60 s.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, 60_000_000);
    histogram.record(micros).expect("latency within the histogram's bounds");
}

fn ms(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1000.0)
}

/// `p50 1.23 ms  p90 …  p99 …  max …`
pub fn percentiles(histogram: &Histogram<u64>) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  max {}",
        ms(histogram.value_at_quantile(0.50)),
        ms(histogram.value_at_quantile(0.90)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
    )
}

/// What a fan-out run cost its server, printed the same way for gim and its peer so
/// that scripts compare them line by line.
pub struct Fanout<'a> {
    /// The server's name in the report: `gim`, `nats-server`.
    pub server: &'a str,
    /// To whom the messages went, e.g. `a group of 5000 members, 5000 online`.
    pub audience: String,
    pub subscribers: usize,
    pub send_seconds: f64,
    /// The servers' CPU over sending plus the drain after it, and their memory.
    pub usage: crate::server::Usage,
}

/// Prints a fan-out run: deliveries, completeness and latency after the first `warmup`
/// messages, and the server's CPU per delivery over the whole run.
pub fn fanout(tracker: &crate::track::Tracker, warmup: usize, run: &Fanout) {
    let summary = tracker.summary(warmup, run.subscribers);
    let all = tracker.summary(0, run.subscribers);
    println!(
        "{} messages in {:.1} s to {}: {} deliveries, {:.0} per second",
        tracker.len(),
        run.send_seconds,
        run.audience,
        all.arrivals,
        all.arrivals as f64 / run.send_seconds
    );
    println!("on every online device: {} of {} measured messages", summary.complete, summary.measured);
    println!("send to last device: {}", percentiles(&summary.to_last));
    println!("send to first device: {}", percentiles(&summary.to_first));
    println!(
        "{} CPU: {:.2} s over {:.1} s = {:.0} deliveries per CPU-second ({:.2} CPU-seconds per million deliveries)",
        run.server,
        run.usage.cpu,
        run.usage.window,
        all.arrivals as f64 / run.usage.cpu,
        run.usage.cpu / (all.arrivals as f64 / 1e6)
    );
    println!("{} memory: {} resident at the end", run.server, crate::server::mib(run.usage.rss_bytes));
}

/// Prints the CPU time the load generator itself has used, so that a run shows what the
/// machine spent on each side.
pub fn own_cpu() -> anyhow::Result<()> {
    println!("load generator CPU: {:.1} s", crate::server::cpu_seconds(&[std::process::id()])?);
    Ok(())
}
