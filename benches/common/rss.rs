//! Resident memory of a process (Linux `/proc/<pid>/status`, `VmRSS`), for the benchmarks'
//! memory figures. 0 where it cannot be read.

/// Resident set size of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
