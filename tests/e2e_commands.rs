//! Commands from the central server: validated, committed, acknowledged, answered; a
//! repeated request_id is answered from the store and never executed twice.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

async fn setup(name: &str) -> (tempfile::TempDir, Broker, SimModem, AgentProc, Central) {
    setup_with(name, "").await
}

/// Like `setup`, with extra `[mqtt]` lines; the central side can send big commands.
async fn setup_with(
    name: &str,
    mqtt_extra: &str,
) -> (tempfile::TempDir, Broker, SimModem, AgentProc, Central) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &[]);
    let cfg = write_config(dir.path(), name, &broker.url(), &[(1, &sim.link)]);
    if !mqtt_extra.is_empty() {
        let text = std::fs::read_to_string(&cfg).unwrap();
        let with = text.replace(
            "keep_alive_secs = 5\n",
            &format!("keep_alive_secs = 5\n{mqtt_extra}\n"),
        );
        std::fs::write(&cfg, with).unwrap();
    }
    let mut central = Central::connect_big(broker.port, &format!("gsmgw/{name}/#")).await;
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
            "ping",
            r#"{"request_id":"b-5","colour":"red"}"#.into(),
            "b-5",
            "bad-field",
        ),
        (
            "campaign",
            r#"{"request_id":"b-6","campaign_id":"c-6","text":"t","group":"nobody","recipients":[{"to":"+380501234567"}]}"#.into(),
            "b-6",
            "unknown-group",
        ),
        (
            "campaign",
            r#"{"request_id":"b-7","campaign_id":"c-7","text":"t","start_at":"2026-12-02T10:00:00Z","expires_at":"2026-12-02T09:00:00Z","recipients":[{"to":"+380501234567"}]}"#.into(),
            "b-7",
            "bad-field",
        ),
        (
            "campaign-control",
            r#"{"request_id":"b-8","campaign_id":"c-6","action":"pause","note":"xxxxxxxx"}"#.into(),
            "b-8",
            "bad-field",
        ),
        (
            "dial",
            r#"{"request_id":"b-9","to":"+380501234567","bridge_to":"sip:101@pbx.local>,<sip:evil@10.9.9.9"}"#.into(),
            "b-9",
            "bad-field",
        ),
        (
            "dial",
            r#"{"request_id":"b-10","to":"+380501234567","bridge_to":"sip:101@pbx.local;maddr=10.9.9.9;transport=tcp"}"#.into(),
            "b-10",
            "bad-field",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_names_one_command_whatever_the_verb() {
    let (_d, _b, _s, _a, mut central) = setup("gw-rid").await;
    let cmd = r#"{"request_id":"r-1","to":"+380501234567","text":"hi"}"#;
    central.send("gsmgw/gw-rid/cmd/sms-send", cmd).await;
    let a = central.expect("gsmgw/gw-rid/reply/r-1", T, |_| true).await;
    assert_eq!(a["ok"], true, "{a}");
    for (verb, payload) in [
        ("ping", r#"{"request_id":"r-1"}"#),
        (
            "campaign-control",
            r#"{"request_id":"r-1","campaign_id":"c1","action":"pause"}"#,
        ),
        (
            "campaign",
            r#"{"request_id":"r-1","campaign_id":"c1","text":"t","recipients":[{"to":"+380501234567"}]}"#,
        ),
        (
            "recording-fetch",
            r#"{"request_id":"r-1","call_id":"0190a0b0-aaaa-7bbb-8ccc-123456789abc"}"#,
        ),
    ] {
        central
            .send(&format!("gsmgw/gw-rid/cmd/{verb}"), payload)
            .await;
        let r = central
            .expect("gsmgw/gw-rid/reply/r-1", T, |v| v["ok"] == false)
            .await;
        assert_eq!(r["error"]["code"], "bad-request-id", "{verb}: {r}");
    }
    // The campaign was not created: its id is still free.
    central
        .send(
            "gsmgw/gw-rid/cmd/campaign",
            r#"{"request_id":"r-2","campaign_id":"c1","text":"t","recipients":[{"to":"+380501234567"}]}"#,
        )
        .await;
    let r = central.expect("gsmgw/gw-rid/reply/r-2", T, |_| true).await;
    assert_eq!(r["ok"], true, "{r}");
}

/// `{"junk":"xxxx…", …rest}`: `size` bytes in all.
fn padded(size: usize, rest: &str) -> Vec<u8> {
    let fill = size.saturating_sub(rest.len() + 12);
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(b"{\"junk\":\"");
    v.resize(v.len() + fill, b'x');
    v.extend_from_slice(b"\"");
    if !rest.is_empty() {
        v.push(b',');
        v.extend_from_slice(rest.as_bytes());
    }
    v.push(b'}');
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_commands_are_refused_once_and_never_take_the_session() {
    let (_d, _b, _s, _a, mut central) = setup_with("gw-big", "max_command_mb = 1").await;
    // Over the configured limit, under the old client limit: too-large, by its request_id.
    central
        .send_bytes(
            "gsmgw/gw-big/cmd/ping",
            padded(2 * 1024 * 1024, r#""request_id":"big-1""#),
        )
        .await;
    let r = central
        .expect("gsmgw/gw-big/reply/big-1", T, |_| true)
        .await;
    assert_eq!(r["error"]["code"], "too-large", "{r}");
    // Over 16 MiB (which used to drop the connection on every redelivery), request_id last.
    central
        .send_bytes(
            "gsmgw/gw-big/cmd/campaign",
            padded(17 * 1024 * 1024, r#""request_id":"big-2""#),
        )
        .await;
    let r = central
        .expect("gsmgw/gw-big/reply/big-2", T, |_| true)
        .await;
    assert_eq!(r["error"]["code"], "too-large", "{r}");
    // No request_id at all: dropped, with an alarm to the centre.
    central
        .send_bytes("gsmgw/gw-big/cmd/sms-send", padded(17 * 1024 * 1024, ""))
        .await;
    let a = central
        .expect("gsmgw/gw-big/event/alarm", T, |v| {
            v["code"] == "command-too-large"
        })
        .await;
    assert!(
        a["message"]
            .as_str()
            .is_some_and(|m| m.contains("sms-send")),
        "{a}"
    );
    // The session is intact: the next command is answered, and the agent never reconnected
    // (one birth only).
    central
        .send("gsmgw/gw-big/cmd/ping", r#"{"request_id":"after"}"#)
        .await;
    let r = central
        .expect("gsmgw/gw-big/reply/after", T, |_| true)
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let births = central
        .log
        .iter()
        .filter(|(t, v)| t == "gsmgw/gw-big/status" && v["online"] == true)
        .count();
    assert_eq!(births, 1, "the agent reconnected: {births} births");
    assert!(
        !central
            .log
            .iter()
            .any(|(t, _)| t == "gsmgw/gw-big/reply/_invalid"),
        "the request_id-less command was answered on _invalid"
    );
}

/// A command the broker held while the box was offline is not sent late: past its
/// `expires_at` it is refused on arrival; one with time left is sent; a repeat of an accepted
/// one is answered from the store even once it has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_past_their_expires_at_are_refused_not_sent_late() {
    let (_d, _b, sim, _a, mut central) = setup("gw-exp").await;
    central
        .expect("gsmgw/gw-exp/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    let past = "2020-01-01T00:00:00Z";
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let late = format!(
        r#"{{"request_id":"e-1","to":"+380501234567","text":"too late","expires_at":"{past}"}}"#
    );
    central.send("gsmgw/gw-exp/cmd/sms-send", &late).await;
    let r = central.expect("gsmgw/gw-exp/reply/e-1", T, |_| true).await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "expired", "{r}");
    let camp = format!(
        r#"{{"request_id":"e-2","campaign_id":"late-1","text":"hi","recipients":[{{"to":"+380501234567"}}],"expires_at":"{past}"}}"#
    );
    central.send("gsmgw/gw-exp/cmd/campaign", &camp).await;
    let r = central.expect("gsmgw/gw-exp/reply/e-2", T, |_| true).await;
    assert_eq!(r["error"]["code"], "expired", "{r}");
    let ok = format!(
        r#"{{"request_id":"e-3","to":"+380501234567","text":"in time","expires_at":"{soon}"}}"#
    );
    central.send("gsmgw/gw-exp/cmd/sms-send", &ok).await;
    let r = central.expect("gsmgw/gw-exp/reply/e-3", T, |_| true).await;
    assert_eq!(r["ok"], true, "{r}");
    central
        .expect("gsmgw/gw-exp/event/sms-status", T, |v| {
            v["request_id"] == "e-3" && v["state"] == "sent"
        })
        .await;
    // After its expiry, the same request_id is answered from the store, not refused.
    let wait = chrono::DateTime::parse_from_rfc3339(&soon).unwrap();
    while chrono::Utc::now() < wait {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    central.send("gsmgw/gw-exp/cmd/sms-send", &ok).await;
    let r = central
        .expect("gsmgw/gw-exp/reply/e-3", T, |v| {
            v["result"]["duplicate"] == true
        })
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let sent: Vec<String> = sim.control(json!({"op": "state"}))["sms"]["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        sent,
        ["in time"],
        "only the message with time left went out"
    );
}
