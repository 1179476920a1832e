//! What a big MQTT command costs the agent in memory (`cargo bench --bench command_memory`).
//!
//! The real binary (`gsmgw run`, default `[mqtt] max_command_mb = 32`) against a simulated
//! modem and a real mosquitto on a free loopback port. For each command below the agent's
//! peak RSS is reset (`/proc/PID/clear_refs`), the command is sent, its reply awaited, and
//! the peak (VmHWM) and the RSS a second later are printed:
//! - a campaign of 100 000 recipients padded with fields to just under 32 MiB (the largest
//!   command accepted), then cancelled (the time for its 100 000 `cancelled` messages is
//!   printed too);
//! - a refused 200 000-recipient campaign (over the recipient limit);
//! - a 16 MiB `cmd/ping` made of one unknown field;
//! - a 100 MiB command (over the size limit: `too-large`).
//!
//! Needs root (clear_refs).

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{AgentProc, Broker, Central, SimModem, write_config};

mod support;

const T: Duration = Duration::from_secs(120);
const GW: &str = "gw-mem";

fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn campaign(id: &str, recipients: usize, field_bytes: usize) -> Vec<u8> {
    let pad = "ы".repeat(field_bytes / 2);
    let mut s = format!(
        r#"{{"request_id":"req-{id}","campaign_id":"{id}","text":"Hi {{name}}","recipients":["#
    );
    for i in 0..recipients {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"to":"+38050{:07}","fields":{{"name":"N{i}","note":"{pad}"}}}}"#,
            i % 10_000_000
        ));
    }
    s.push_str("]}");
    s.into_bytes()
}

fn padded(size: usize, rest: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(b"{\"junk\":\"");
    v.resize(size.saturating_sub(rest.len() + 3), b'x');
    v.extend_from_slice(b"\",");
    v.extend_from_slice(rest.as_bytes());
    v.push(b'}');
    v
}

struct Step {
    name: &'static str,
    verb: &'static str,
    payload: Vec<u8>,
    request_id: &'static str,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &[]);
    let cfg = write_config(dir.path(), GW, &broker.url(), &[(1, &sim.link)]);
    let mut central = Central::connect_big(broker.port, &format!("gsmgw/{GW}/#")).await;
    let agent = AgentProc::start(&cfg);
    let pid = agent.pid();
    central
        .expect(&format!("gsmgw/{GW}/status"), T, |v| v["online"] == true)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "agent idle: RSS {} kB, peak so far {} kB",
        support::status_kib(pid, "VmRSS:"),
        support::status_kib(pid, "VmHWM:")
    );
    // ~330 bytes per recipient: 100 000 of them just under 32 MiB.
    let max = campaign("max", 100_000, 264);
    let steps = vec![
        Step {
            name: "largest accepted campaign (100 000 recipients)",
            verb: "campaign",
            payload: max,
            request_id: "req-max",
        },
        Step {
            name: "refused campaign (200 000 recipients)",
            verb: "campaign",
            payload: campaign("over", 200_000, 0),
            request_id: "req-over",
        },
        Step {
            name: "16 MiB ping of one unknown field",
            verb: "ping",
            payload: padded(16 * 1024 * 1024, r#""request_id":"ping-16""#),
            request_id: "ping-16",
        },
        Step {
            name: "100 MiB command (over the limit)",
            verb: "sms-send",
            payload: padded(100 * 1024 * 1024, r#""request_id":"huge""#),
            request_id: "huge",
        },
    ];
    for step in steps {
        let size = step.payload.len();
        let before = support::status_kib(pid, "VmRSS:");
        reset_peak(pid);
        let t = Instant::now();
        central
            .send_bytes(&format!("gsmgw/{GW}/cmd/{}", step.verb), step.payload)
            .await;
        let reply = central
            .expect(&format!("gsmgw/{GW}/reply/{}", step.request_id), T, |_| {
                true
            })
            .await;
        let took = t.elapsed();
        let peak = support::status_kib(pid, "VmHWM:");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = support::status_kib(pid, "VmRSS:");
        let outcome = if reply["ok"] == true {
            "accepted".to_string()
        } else {
            reply["error"]["code"].as_str().unwrap_or("?").to_string()
        };
        println!(
            "{}: {:.1} MiB payload, {outcome} in {:.2} s; RSS {before} kB before, peak {peak} kB (+{} kB), {after} kB a second after",
            step.name,
            size as f64 / 1048576.0,
            took.as_secs_f64(),
            peak.saturating_sub(before),
        );
        if step.request_id == "req-max" {
            let t = Instant::now();
            central
                .send(
                    &format!("gsmgw/{GW}/cmd/campaign-control"),
                    r#"{"request_id":"cancel-max","campaign_id":"max","action":"cancel"}"#,
                )
                .await;
            let r = central
                .expect(&format!("gsmgw/{GW}/reply/cancel-max"), T, |_| true)
                .await;
            println!(
                "  cancel of the campaign: {} messages cancelled in {:.1} s",
                r["result"]["cancelled"],
                t.elapsed().as_secs_f64()
            );
        }
    }
    let _ = agent.terminate();
}
