//! Campaigns end to end: spread over the SIMs, per-SIM limits held across a restart, pause,
//! resume, cancel, a modem unplugged mid-campaign, the agent killed mid-campaign.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config_with};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(90);

fn recipients(n: usize, base: u64) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"to": format!("+38050{:07}", base + i as u64), "fields": {"name": format!("Client {i}")}}))
        .collect()
}

/// Numbers each simulated modem sent to.
fn sent_to(sims: &[&SimModem]) -> Vec<String> {
    let mut out = Vec::new();
    for s in sims {
        let st = s.control(json!({"op": "state"}));
        for m in st["sms"]["sent"].as_array().cloned().unwrap_or_default() {
            out.push(m["to"].as_str().unwrap_or("").to_string());
        }
    }
    out
}

fn sent_per_sim(sims: &[&SimModem]) -> Vec<usize> {
    sims.iter()
        .map(|s| {
            s.control(json!({"op": "state"}))["sms"]["sent"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0)
        })
        .collect()
}

async fn final_progress(central: &mut Central, gw: &str, id: &str) -> Value {
    central
        .expect(&format!("gsmgw/{gw}/event/campaign"), T, |v| {
            v["campaign_id"] == id && v["final"] == true
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_spreads_over_sims_pauses_resumes_survives_an_unplug_and_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sims: Vec<SimModem> = (1..=3)
        .map(|i| {
            SimModem::start(
                dir.path(),
                &format!("modem{i}"),
                &["--imsi", &format!("25501000000000{i}")],
            )
        })
        .collect();
    for s in &sims {
        s.control(json!({"op": "cmgs", "latency_ms": 150}));
    }
    let links: Vec<(u16, &std::path::Path, &str)> = sims
        .iter()
        .enumerate()
        .map(|(i, s)| (i as u16 + 1, s.link.as_path(), ""))
        .collect();
    let cfg = write_config_with(dir.path(), "gw-camp", &broker.url(), "", &links);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[sms]\nper_minute = 0\nper_hour = 0\nper_day = 0\n");
    std::fs::write(&cfg, text).unwrap();
    let mut central = Central::connect(broker.port, "gsmgw/gw-camp/#").await;
    let _agent = AgentProc::start(&cfg);
    for slot in 1..=3 {
        central
            .expect(&format!("gsmgw/gw-camp/modem/{slot}/state"), T, |v| {
                v["state"] == "ready"
            })
            .await;
    }
    let mut list = recipients(30, 1000);
    list.push(json!({"to": "+380500001000"})); // listed twice: sent once
    let cmd = json!({"request_id": "camp-1", "campaign_id": "spring", "text": "Вітаємо, {name}! Знижка 20%.", "recipients": list});
    central
        .send("gsmgw/gw-camp/cmd/campaign", &cmd.to_string())
        .await;
    let r = central
        .expect("gsmgw/gw-camp/reply/camp-1", T, |_| true)
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["recipients"], 30);
    assert_eq!(r["result"]["duplicates"], 1);

    // Pause after the first messages; progress says paused; resume.
    central
        .expect("gsmgw/gw-camp/event/sms-status", T, |v| {
            v["state"] == "sent"
        })
        .await;
    let pause = json!({"request_id": "p1", "campaign_id": "spring", "action": "pause"});
    central
        .send("gsmgw/gw-camp/cmd/campaign-control", &pause.to_string())
        .await;
    let r = central.expect("gsmgw/gw-camp/reply/p1", T, |_| true).await;
    assert_eq!(r["result"]["state"], "paused", "{r}");
    let paused = central
        .expect("gsmgw/gw-camp/event/campaign", T, |v| {
            v["state"] == "paused" && v["sending"] == 0
        })
        .await;
    let sent_when_paused = sent_to(&sims.iter().collect::<Vec<_>>()).len();
    assert_eq!(
        paused["sent"].as_u64().unwrap() as usize,
        sent_when_paused,
        "{paused}"
    );
    assert!(sent_when_paused < 30);
    let resume = json!({"request_id": "r1", "campaign_id": "spring", "action": "resume"});
    central
        .send("gsmgw/gw-camp/cmd/campaign-control", &resume.to_string())
        .await;
    central.expect("gsmgw/gw-camp/reply/r1", T, |_| true).await;
    // A modem is unplugged mid-campaign: its work moves to the others.
    central
        .expect("gsmgw/gw-camp/event/sms-status", T, |v| {
            v["state"] == "sent"
        })
        .await;
    sims[1].control(json!({"op": "unplug"}));
    let fin = final_progress(&mut central, "gw-camp", "spring").await;
    assert_eq!(fin["state"], "done", "{fin}");
    assert_eq!(fin["remaining"], 0);
    assert_eq!(
        fin["sent"].as_u64().unwrap() + fin["failed"].as_u64().unwrap(),
        30,
        "{fin}"
    );
    let all = sent_to(&[&sims[0], &sims[2]]);
    let spread = sent_per_sim(&[&sims[0], &sims[2]]);
    assert!(
        spread.iter().all(|n| *n > 0),
        "all ready SIMs took a share: {spread:?}"
    );
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "no recipient got a second copy from the SIMs still plugged"
    );

    // Cancel: every recipient ends cancelled or sent, with an sms-status each.
    let cmd = json!({"request_id": "camp-2", "campaign_id": "autumn", "text": "Hi {name}", "recipients": recipients(40, 5000)});
    central
        .send("gsmgw/gw-camp/cmd/campaign", &cmd.to_string())
        .await;
    central
        .expect("gsmgw/gw-camp/reply/camp-2", T, |v| v["ok"] == true)
        .await;
    central
        .expect("gsmgw/gw-camp/event/sms-status", T, |v| {
            v["state"] == "sent"
                && v["request_id"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("autumn:"))
        })
        .await;
    let cancel = json!({"request_id": "c1", "campaign_id": "autumn", "action": "cancel"});
    central
        .send("gsmgw/gw-camp/cmd/campaign-control", &cancel.to_string())
        .await;
    let r = central.expect("gsmgw/gw-camp/reply/c1", T, |_| true).await;
    assert!(r["result"]["cancelled"].as_u64().unwrap() > 0, "{r}");
    let fin = final_progress(&mut central, "gw-camp", "autumn").await;
    assert_eq!(fin["state"], "cancelled", "{fin}");
    assert_eq!(
        fin["sent"].as_u64().unwrap()
            + fin["cancelled"].as_u64().unwrap()
            + fin["failed"].as_u64().unwrap(),
        40,
        "{fin}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_sim_day_limit_holds_across_a_restart_and_a_kill_mid_campaign_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &[]);
    sim.control(json!({"op": "cmgs", "latency_ms": 100}));
    let cfg = write_config_with(
        dir.path(),
        "gw-lim",
        &broker.url(),
        "",
        &[(1, &sim.link, "")],
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[sms]\nper_minute = 0\nper_hour = 0\nper_day = 12\n");
    std::fs::write(&cfg, text).unwrap();
    let mut central = Central::connect(broker.port, "gsmgw/gw-lim/#").await;
    let mut agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-lim/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    let cmd = json!({"request_id": "lim-1", "campaign_id": "lim", "text": "Hello {name}", "recipients": recipients(20, 7000)});
    central
        .send("gsmgw/gw-lim/cmd/campaign", &cmd.to_string())
        .await;
    central
        .expect("gsmgw/gw-lim/reply/lim-1", T, |v| v["ok"] == true)
        .await;
    // Power cut after the fifth message went out.
    let mut seen = 0;
    while seen < 5 {
        central
            .expect("gsmgw/gw-lim/event/sms-status", T, |v| v["state"] == "sent")
            .await;
        seen += 1;
    }
    agent.kill();
    agent = AgentProc::start(&cfg);
    // After the restart the campaign goes on until the SIM's day limit (12) is reached, and
    // then stops: progress settles at 12 handled, 8 queued.
    let settled = central
        .expect("gsmgw/gw-lim/event/campaign", T, |v| {
            v["queued"] == 8 && v["sending"] == 0
        })
        .await;
    let handled = settled["sent"].as_u64().unwrap() + settled["unknown"].as_u64().unwrap();
    assert_eq!(handled, 12, "{settled}");
    let to = sent_to(&[&sim]);
    assert!(
        to.len() <= 12,
        "the day limit holds to the message: {}",
        to.len()
    );
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for n in &to {
        *counts.entry(n).or_default() += 1;
    }
    assert!(
        counts.values().all(|c| *c == 1),
        "no recipient got a second copy: {counts:?}"
    );
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_a_campaign_and_unsent_messages_expire() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &[]);
    let cfg = write_config_with(
        dir.path(),
        "gw-exp",
        &broker.url(),
        "",
        &[(1, &sim.link, "")],
    );
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("\n[sms]\nper_minute = 0\nper_hour = 0\nper_day = 2\n");
    std::fs::write(&cfg, text).unwrap();
    let mut central = Central::connect(broker.port, "gsmgw/gw-exp/#").await;
    let _agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-exp/modem/1/state", T, |v| v["state"] == "ready")
        .await;

    // A quiet window around now (local time): nothing goes out.
    let now = chrono::Local::now();
    let from = (now - chrono::Duration::minutes(30)).format("%H:%M");
    let to = (now + chrono::Duration::minutes(30)).format("%H:%M");
    let cmd = json!({"request_id": "q-1", "campaign_id": "quiet", "text": "Hi", "quiet_hours": format!("{from}-{to}"), "recipients": recipients(3, 100)});
    central
        .send("gsmgw/gw-exp/cmd/campaign", &cmd.to_string())
        .await;
    central
        .expect("gsmgw/gw-exp/reply/q-1", T, |v| v["ok"] == true)
        .await;
    let p = central
        .expect("gsmgw/gw-exp/event/campaign", T, |v| {
            v["campaign_id"] == "quiet"
        })
        .await;
    assert_eq!(p["queued"], 3, "{p}");
    assert_eq!(p["sent"], 0, "{p}");
    assert!(sent_to(&[&sim]).is_empty());
    let cancel = json!({"request_id": "q-2", "campaign_id": "quiet", "action": "cancel"});
    central
        .send("gsmgw/gw-exp/cmd/campaign-control", &cancel.to_string())
        .await;
    central.expect("gsmgw/gw-exp/reply/q-2", T, |_| true).await;

    // The SIM's day limit lets two through; the rest expire at their deadline.
    let expires = (chrono::Utc::now() + chrono::Duration::seconds(4)).to_rfc3339();
    let cmd = json!({"request_id": "e-1", "campaign_id": "exp", "text": "Hi", "expires_at": expires, "recipients": recipients(5, 200)});
    central
        .send("gsmgw/gw-exp/cmd/campaign", &cmd.to_string())
        .await;
    central
        .expect("gsmgw/gw-exp/reply/e-1", T, |v| v["ok"] == true)
        .await;
    let fin = final_progress(&mut central, "gw-exp", "exp").await;
    assert_eq!(fin["sent"], 2, "{fin}");
    assert_eq!(fin["expired"], 3, "{fin}");
    assert_eq!(sent_to(&[&sim]).len(), 2);
    central
        .expect("gsmgw/gw-exp/event/sms-status", T, |v| {
            v["state"] == "expired"
        })
        .await;
}
