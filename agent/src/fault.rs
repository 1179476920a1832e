//! Fault injection for the end-to-end tests of the watchdog (cargo feature
//! `fault-injection`, never in a board build): `GSMGW_FAULT_WEDGE=sender:4` makes the sender
//! stop turning 4 s after the agent started, as a task stuck on a lock would.

/// Never returns once the wedge named for `task` is due; returns at once otherwise.
#[cfg(feature = "fault-injection")]
pub async fn wedge_point(task: &str) {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};
    static WEDGE: OnceLock<Option<(String, Instant)>> = OnceLock::new();
    let wedge = WEDGE.get_or_init(|| {
        let spec = std::env::var("GSMGW_FAULT_WEDGE").ok()?;
        let (name, secs) = spec.split_once(':').unwrap_or((spec.as_str(), "0"));
        let secs: u64 = secs.trim().parse().ok()?;
        Some((name.to_string(), Instant::now() + Duration::from_secs(secs)))
    });
    if let Some((name, at)) = wedge {
        if name == task && Instant::now() >= *at {
            tracing::warn!(%task, "fault injection: task wedged");
            std::future::pending::<()>().await;
        }
    }
}

/// Without the feature: nothing.
#[cfg(not(feature = "fault-injection"))]
pub async fn wedge_point(_task: &str) {}
