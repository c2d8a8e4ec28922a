//! Memory of a process (Linux `/proc/<pid>/status`), for the benchmarks' memory figures.
//! 0 where it cannot be read.

/// A `/proc/<pid>/status` field in KiB (`VmRSS`: resident now; `VmHWM`: peak resident).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident set size of process `pid` in KiB.
#[allow(dead_code)] // each benchmark uses what it measures
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// Peak resident set size of process `pid` in KiB.
#[allow(dead_code)]
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM")
}
