//! What the console shows: status, modem tables, queue, jobs, campaigns, log lines.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Console;
use super::commands::usage;
use crate::logring;
use crate::state::{ChannelState, ModemSnapshot};
use crate::uplink::UplinkStatus;

/// Read-only view of the running agent.
#[derive(Clone)]
pub struct AgentView {
    /// Gateway id.
    pub gateway_id: String,
    /// Version line.
    pub version: String,
    /// When the agent started.
    pub started: Instant,
    /// Every slot's picture.
    pub modems: Vec<watch::Receiver<ModemSnapshot>>,
    /// The uplink's state.
    pub uplink: watch::Receiver<UplinkStatus>,
    /// Where the broker is.
    pub broker: String,
    /// SIP trunk and calls in progress (None in views built without voice).
    pub voice: Option<crate::voice::VoiceView>,
}

impl AgentView {
    /// Current pictures of all slots.
    pub fn snapshots(&self) -> Vec<ModemSnapshot> {
        self.modems.iter().map(|r| r.borrow().clone()).collect()
    }

    /// The uplink line of `status`.
    fn mqtt_text(&self, broker: &str) -> String {
        let up = self.uplink.borrow().clone();
        if up.connected {
            format!("connected to {broker} ({} connects)", up.connects)
        } else {
            format!(
                "not connected to {broker} ({})",
                up.last_error.unwrap_or_else(|| "connecting".into())
            )
        }
    }

    /// The `status` text (without store and disk figures).
    pub fn status_text(&self) -> String {
        let snaps = self.snapshots();
        let ready = snaps
            .iter()
            .filter(|s| s.state == ChannelState::Ready)
            .count();
        let mut out = format!(
            "gateway {}\nversion {}\nuptime  {}\nmqtt    {}\nmodems  {} configured, {} ready\n",
            self.gateway_id,
            self.version,
            uptime(self.started.elapsed()),
            self.mqtt_text(&self.broker),
            snaps.len(),
            ready
        );
        out.push_str(&self.voice_text());
        out
    }

    /// The `sip` and `calls` lines of `status`.
    pub fn voice_text(&self) -> String {
        match &self.voice {
            Some(v) => {
                let calls = v.calls.lock().map(|c| c.len()).unwrap_or(0);
                format!(
                    "sip     {}\ncalls   {calls} in progress\n",
                    v.sip.borrow().as_str()
                )
            }
            None => String::new(),
        }
    }

    /// The `modems` text: one line per slot.
    pub fn modems_text(&self) -> String {
        let snaps = self.snapshots();
        if snaps.is_empty() {
            return "no modems configured\n".into();
        }
        crate::state::ModemSnapshot::table(&snaps)
    }
}

pub(super) fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

impl Console {
    pub(super) async fn status(&self) -> String {
        let v = &self.ctx.view;
        let snaps = v.snapshots();
        let ready = snaps
            .iter()
            .filter(|s| s.state == ChannelState::Ready)
            .count();
        let outbox = match self.ctx.events.store().stats().await {
            Ok(s) => {
                let jobs: Vec<String> = s
                    .jobs_by_state
                    .iter()
                    .filter(|(state, _)| matches!(state.as_str(), "queued" | "sending"))
                    .map(|(state, n)| format!("{n} {state}"))
                    .collect();
                format!(
                    "{} events waiting ({} bytes){}",
                    s.rows,
                    s.bytes,
                    if jobs.is_empty() {
                        String::new()
                    } else {
                        format!("; jobs {}", jobs.join(", "))
                    }
                )
            }
            Err(e) => format!("store error: {e}"),
        };
        let data_dir = &self.ctx.config.gateway.data_dir;
        let disk = match nix::sys::statvfs::statvfs(data_dir.as_path()) {
            // fsblkcnt_t and c_ulong are 32 bits on armv7: widen explicitly.
            #[allow(clippy::useless_conversion)]
            Ok(st) => {
                let free = u64::from(st.blocks_available()) * u64::from(st.fragment_size());
                let total = u64::from(st.blocks()) * u64::from(st.fragment_size());
                format!(
                    "{} free of {} in {}",
                    human_bytes(free),
                    human_bytes(total),
                    data_dir.display()
                )
            }
            Err(e) => format!("unknown for {} ({e})", data_dir.display()),
        };
        format!(
            "gateway {}\nversion {}\nuptime  {}\nmqtt    {}\noutbox  {}\ndisk    {}\nmodems  {} configured, {} ready\n",
            v.gateway_id,
            v.version,
            uptime(v.started.elapsed()),
            v.mqtt_text(&self.ctx.uplink.broker()),
            outbox,
            disk,
            snaps.len(),
            ready
        ) + &v.voice_text()
    }

    /// The most recently changed `sms-send` jobs, newest first.
    pub(super) async fn sms_recent(&self) -> String {
        let store = self.ctx.events.store();
        let states = match store.stats().await {
            Ok(s) => s.jobs_by_state.into_keys().collect::<Vec<_>>(),
            Err(e) => return format!("error: {e}\n"),
        };
        let mut jobs = Vec::new();
        for state in states
            .iter()
            .filter_map(|s| crate::proto::JobState::parse(s))
        {
            match store.jobs_in_state(state, 10_000).await {
                Ok(j) => jobs.extend(
                    j.into_iter()
                        .filter(|j| j.verb == crate::proto::Verb::SmsSend),
                ),
                Err(e) => return format!("error: {e}\n"),
            }
        }
        if jobs.is_empty() {
            return "no SMS sent or queued\n".into();
        }
        jobs.sort_by_key(|j| std::cmp::Reverse((j.updated_ms, j.job_id)));
        let mut out = String::from("job    state     slot  to                parts  changed\n");
        for j in jobs.iter().take(15) {
            let slot = j
                .outcome
                .as_ref()
                .and_then(|o| o["slot"].as_u64())
                .or(j.slot.map(u64::from))
                .map(|s| s.to_string())
                .unwrap_or_else(|| "auto".into());
            let err = j
                .outcome
                .as_ref()
                .and_then(|o| o["error"].as_str())
                .map(|e| format!("  ({e})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<6} {:<9} {:<5} {:<17} {:<6} {}{}\n",
                j.job_id,
                j.state,
                slot,
                j.payload["to"].as_str().unwrap_or("?"),
                j.payload["parts"],
                ms_to_rfc3339(j.updated_ms),
                err
            ));
        }
        out.push_str("(received SMS go to the central server; see `log` for their arrival)\n");
        out
    }

    /// Campaigns, newest first, with their recipients counted by state.
    pub(super) async fn campaign_list(&self) -> String {
        let store = self.ctx.events.store();
        let campaigns = match store.campaigns().await {
            Ok(c) => c,
            Err(e) => return format!("error: {e}\n"),
        };
        if campaigns.is_empty() {
            return "no campaigns\n".into();
        }
        let mut out = String::new();
        for c in campaigns.iter().take(20) {
            let counts = match store.campaign_counts(&c.campaign_id).await {
                Ok(n) => n
                    .iter()
                    .map(|(state, n)| format!("{state} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(e) => format!("error: {e}"),
            };
            out.push_str(&format!(
                "{:<24} {:<9} created {}  {}\n",
                c.campaign_id,
                c.state,
                ms_to_rfc3339(c.created_ms),
                counts
            ));
        }
        if campaigns.len() > 20 {
            out.push_str(&format!("… and {} older\n", campaigns.len() - 20));
        }
        out
    }

    pub(super) async fn queue(&self) -> String {
        let store = self.ctx.events.store();
        let stats = match store.stats().await {
            Ok(s) => s,
            Err(e) => return format!("error: {e}\n"),
        };
        let mut out = format!(
            "outbox: {} events ({} bytes) waiting for the broker\njobs by state:\n",
            stats.rows, stats.bytes
        );
        if stats.jobs_by_state.is_empty() {
            out.push_str("  (none)\n");
        }
        for (state, n) in &stats.jobs_by_state {
            out.push_str(&format!("  {state:<10} {n}\n"));
        }
        for state in [
            crate::proto::JobState::Sending,
            crate::proto::JobState::Queued,
        ] {
            if let Ok(jobs) = store.jobs_in_state(state, 10).await {
                for j in jobs {
                    out.push_str(&format!(
                        "  {state} job {} {} {} (request {})\n",
                        j.job_id,
                        j.verb,
                        j.payload["to"].as_str().unwrap_or(""),
                        j.request_id
                    ));
                }
            }
        }
        out
    }

    pub(super) fn log(&self, n: &str) -> String {
        let Ok(n) = n.parse::<usize>() else {
            return format!("usage: {}\n", usage("log"));
        };
        let lines = self.ctx.logs.last(n.clamp(1, logring::CAPACITY));
        if lines.is_empty() {
            return "no log lines yet\n".into();
        }
        lines.join("\n") + "\n"
    }
}

pub(super) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub(super) fn ms_to_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}
