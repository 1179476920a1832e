//! Commands from the central server: validated, committed, acknowledged, answered; a
//! repeated request_id is answered from the store and never executed twice.

mod common;

use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

async fn setup(name: &str) -> (tempfile::TempDir, Broker, SimModem, AgentProc, Central) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &[]);
    let cfg = write_config(dir.path(), name, &broker.url(), &[(1, &sim.link)]);
    let mut central = Central::connect(broker.port, &format!("gsmgw/{name}/#")).await;
    let agent = AgentProc::start(&cfg);
    central
        .expect(&format!("gsmgw/{name}/status"), T, |v| v["online"] == true)
        .await;
    (dir, broker, sim, agent, central)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_repeated_request_id() {
    let (_d, _b, _s, _a, mut central) = setup("gw-cmd").await;
    central
        .send("gsmgw/gw-cmd/cmd/ping", r#"{"request_id":"p-1"}"#)
        .await;
    let r = central.expect("gsmgw/gw-cmd/reply/p-1", T, |_| true).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["pong"], true);
    let job = r["result"]["job_id"].clone();
    central
        .send("gsmgw/gw-cmd/cmd/ping", r#"{"request_id":"p-1"}"#)
        .await;
    let r2 = central
        .expect("gsmgw/gw-cmd/reply/p-1", T, |v| {
            v["result"]["duplicate"] == true
        })
        .await;
    assert_eq!(r2["result"]["job_id"], job);

    // sms-send is validated and queued once, whatever the number of repeats.
    let cmd = r#"{"request_id":"s-1","to":"+380501234567","text":"Привіт","report":true}"#;
    central.send("gsmgw/gw-cmd/cmd/sms-send", cmd).await;
    let a = central.expect("gsmgw/gw-cmd/reply/s-1", T, |_| true).await;
    assert_eq!(a["ok"], true, "{a}");
    central.send("gsmgw/gw-cmd/cmd/sms-send", cmd).await;
    let b = central
        .expect("gsmgw/gw-cmd/reply/s-1", T, |v| {
            v["result"]["duplicate"] == true
        })
        .await;
    assert_eq!(a["result"]["job_id"], b["result"]["job_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_commands_get_reasons_and_the_agent_keeps_running() {
    let (_d, _b, _s, _a, mut central) = setup("gw-bad").await;
    let long = "x".repeat(10_000);
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("ping", "not json".into(), "_invalid", "bad-json"),
        (
            "sms-send",
            r#"{"to":"+380501234567","text":"hi"}"#.into(),
            "_invalid",
            "missing-request-id",
        ),
        (
            "sms-send",
            r#"{"request_id":"b-1","to":"12ab","text":"hi"}"#.into(),
            "b-1",
            "bad-number",
        ),
        (
            "sms-send",
            r#"{"request_id":"b-2","to":"+380501234567","text":"hi","slot":9}"#.into(),
            "b-2",
            "unknown-slot",
        ),
        (
            "sms-send",
            format!(r#"{{"request_id":"b-3","to":"+380501234567","text":"{long}"}}"#),
            "b-3",
            "text-too-long",
        ),
        (
            "self-destruct",
            r#"{"request_id":"b-4"}"#.into(),
            "b-4",
            "unknown-verb",
        ),
    ];
    for (verb, payload, reply_to, code) in cases {
        central
            .send(&format!("gsmgw/gw-bad/cmd/{verb}"), &payload)
            .await;
        let r: Value = central
            .expect(&format!("gsmgw/gw-bad/reply/{reply_to}"), T, |v| {
                v["error"]["code"] == code
            })
            .await;
        assert_eq!(r["ok"], false);
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Still alive and answering.
    central
        .send("gsmgw/gw-bad/cmd/ping", r#"{"request_id":"alive"}"#)
        .await;
    let r = central
        .expect("gsmgw/gw-bad/reply/alive", T, |_| true)
        .await;
    assert_eq!(r["ok"], true);
    let _ = json!({});
}
