//! Voice end to end: simulated modems with a PCM voice port, the agent, mosquitto, and SIPp as
//! the PBX and as the SIP caller.

mod common;

use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config_with};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const CALLER: &str = "+380501112233";

fn sent_to(sim: &SimModem, to: &str) -> Vec<Value> {
    let st = sim.control(json!({"op": "state"}));
    st["sms"]["sent"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["to"] == to)
        .collect()
}

/// An unanswered call to the advertising number gets one SMS back; a second call from the same
/// caller within the period gets none. Without [sip] the call is still recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_call_gets_one_sms_back_per_period() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(
        dir.path(),
        "modem1",
        &["--dialect", "simcom", "--imsi", "255010000000001"],
    );
    sim.control(json!({"op": "ring-interval", "ms": 300}));
    let voice = "\n[voice]\nmissed_call_sms = \"Sorry we missed your call ({from}). We call back soon.\"\nmissed_call_sms_period_secs = 3600\n";
    let cfg = write_config_with(
        dir.path(),
        "gw-missed",
        &broker.url(),
        voice,
        &[(1, &sim.link, "")],
    );
    let mut central = Central::connect(broker.port, "gsmgw/gw-missed/#").await;
    let _agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-missed/modem/1/state", T, |v| {
            v["state"] == "ready"
        })
        .await;

    for round in 0..2 {
        let r = sim.control(json!({"op": "call", "from": CALLER}));
        assert_eq!(r["ok"], true, "{r}");
        // The caller lets it ring for a while (RING every 300 ms), then gives up.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let r = sim.control(json!({"op": "hangup"}));
        assert_eq!(r["ok"], true, "{r}");
        let ev = central
            .expect("gsmgw/gw-missed/event/call", T, |v| v["from"] == CALLER)
            .await;
        assert_eq!(ev["direction"], "gsm-in");
        assert_eq!(ev["slot"], 1);
        assert_eq!(ev["imsi"], "255010000000001");
        assert_eq!(ev["cause"], "cancelled");
        assert!(ev["answered_at"].is_null(), "{ev}");
        assert_eq!(ev["duration_s"], 0.0);
        if round == 0 {
            let st = central
                .expect("gsmgw/gw-missed/event/sms-status", T, |v| {
                    v["state"] == "sent" && v["to"] == CALLER
                })
                .await;
            assert!(
                st["request_id"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("missed-call-")),
                "{st}"
            );
            let sent = sent_to(&sim, CALLER);
            assert_eq!(sent.len(), 1, "{sent:?}");
            assert_eq!(
                sent[0]["text"],
                format!("Sorry we missed your call ({CALLER}). We call back soon.")
            );
        }
    }
    // Barrier: an ordinary SMS queued after the second call goes out; the second missed call
    // must not have added another message to the caller.
    central
        .send(
            "gsmgw/gw-missed/cmd/sms-send",
            &json!({"request_id": "after-calls", "to": "+380509998877", "text": "barrier"})
                .to_string(),
        )
        .await;
    central
        .expect("gsmgw/gw-missed/event/sms-status", T, |v| {
            v["request_id"] == "after-calls" && v["state"] == "sent"
        })
        .await;
    assert_eq!(sent_to(&sim, CALLER).len(), 1);
}
