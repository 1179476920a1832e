//! /proc readings of a process: CPU time and `/proc/PID/status` figures.

/// utime + stime of a process in seconds (clock ticks of 100 Hz).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// A `/proc/PID/status` figure in KiB (`field` with its colon, e.g. `"VmHWM:"`); 0 if absent.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A `/proc/self/status` figure of this process in KiB (e.g. `"VmHWM:"`: its peak RSS); 0 if
/// absent.
pub fn self_status_kib(field: &str) -> u64 {
    status_kib(std::process::id(), field)
}
