//! Modem simulator calls and USSD on a real pty.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "sim")]

mod sim_port;

use gsmgw_drivers::sim::Dialect;
use serde_json::json;
use sim_port::{start_ready, wait_state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_call_ring_clip_answer_remote_hangup() {
    let (sim, mut port, _dir) = start_ready("call-in", Dialect::Quectel).await;
    port.cmd("AT+CLIP=1").await;
    sim.control_ok(json!({"op": "ring-interval", "ms": 300}))
        .await
        .unwrap();
    sim.control_ok(json!({"op": "call", "from": "+380501234567"}))
        .await
        .unwrap();
    port.expect("\r\nRING\r\n\r\n+CLIP: \"+380501234567\",145,,,,0\r\n")
        .await;
    // It keeps ringing.
    port.expect("\r\nRING\r\n").await;
    let r = port.cmd("AT+CLCC").await;
    assert!(
        r.contains("+CLCC: 1,1,4,0,0,\"+380501234567\",145"),
        "{r:?}"
    );
    assert_eq!(port.cmd("ATA").await, "\r\nOK\r\n");
    let r = port.cmd("AT+CLCC").await;
    assert!(
        r.contains("+CLCC: 1,1,0,0,0,\"+380501234567\",145"),
        "{r:?}"
    );
    assert_eq!(port.cmd("AT+VTS=5").await, "\r\nOK\r\n");
    sim.control_ok(json!({"op": "hangup"})).await.unwrap();
    port.expect("\r\nNO CARRIER\r\n").await;
    assert_eq!(port.cmd("AT+CLCC").await, "\r\nOK\r\n");
    // A withheld number with +CRING.
    port.cmd("AT+CRC=1").await;
    sim.control_ok(json!({"op": "call", "from": "", "clip_validity": 1}))
        .await
        .unwrap();
    port.expect("\r\n+CRING: VOICE\r\n\r\n+CLIP: \"\",128,,,,1\r\n")
        .await;
    assert_eq!(port.cmd("ATH").await, "\r\nOK\r\n");
    let s = sim.control_ok(json!({"op": "state"})).await.unwrap();
    assert_eq!(s["dtmf"], json!(["5"]));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_calls_and_voice_port() {
    let (sim, mut port, _dir) = start_ready("call-out", Dialect::Quectel).await;
    sim.control_ok(json!({"op": "dial-result", "result": "busy", "delay_ms": 100}))
        .await
        .unwrap();
    assert_eq!(port.cmd("ATD+380501234567;").await, "\r\nOK\r\n");
    port.expect("\r\nBUSY\r\n").await;
    // The next dial rings until the remote party answers.
    sim.control_ok(json!({"op": "dial-result", "result": "ring"}))
        .await
        .unwrap();
    assert_eq!(port.cmd("ATD0501234567;").await, "\r\nOK\r\n");
    let r = port.cmd("AT+CLCC").await;
    assert!(r.contains("+CLCC: 1,0,3,0,0,\"0501234567\",129"), "{r:?}");
    sim.control_ok(json!({"op": "answer"})).await.unwrap();
    wait_state(&sim, |s| s["calls"]["active"][0]["stat"] == json!(0)).await;
    assert_eq!(port.cmd("AT+QPCMV=1,0").await, "\r\nOK\r\n");
    assert_eq!(port.cmd("AT+CHUP").await, "\r\nOK\r\n");
    let s = sim.control_ok(json!({"op": "state"})).await.unwrap();
    assert_eq!(s["voice_commands"], json!(["AT+QPCMV=1,0"]));
    assert_eq!(s["calls"]["dialed"], json!(["+380501234567", "0501234567"]));
    // Other vendors' voice commands are unknown here.
    assert_eq!(port.cmd("AT+CPCMREG=1").await, "\r\nERROR\r\n");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ussd_requests_replies_and_network_initiated() {
    let (sim, mut port, _dir) = start_ready("ussd", Dialect::Generic).await;
    sim.control_ok(json!({"op": "ussd-table", "table": {"*100#": "Your number is +380501234567"}, "delay_ms": 100}))
        .await
        .unwrap();
    assert_eq!(port.cmd("AT+CUSD=1,\"*111#\",15").await, "\r\nOK\r\n");
    port.expect("\r\n+CUSD: 0,\"Balance: 42.00 UAH\",15\r\n")
        .await;
    assert_eq!(port.cmd("AT+CUSD=1,\"*100#\",15").await, "\r\nOK\r\n");
    port.expect("\r\n+CUSD: 0,\"Your number is +380501234567\",15\r\n")
        .await;
    // UCS2 character set: request and reply in hex.
    port.cmd("AT+CSCS=\"UCS2\"").await;
    assert_eq!(
        port.cmd("AT+CUSD=1,\"002A0031003100310023\",15").await,
        "\r\nOK\r\n"
    );
    port.expect("\r\n+CUSD: 0,\"00420061006C0061006E00630065003A002000340032002E003000300020005500410048\",15\r\n")
        .await;
    port.cmd("AT+CSCS=\"GSM\"").await;
    // A manual reply to a request with no automatic answer, then a network-initiated one.
    sim.control_ok(json!({"op": "ussd-table", "*555#": null}))
        .await
        .unwrap();
    port.cmd("AT+CUSD=1,\"*555#\",15").await;
    let r = sim
        .control_ok(json!({"op": "ussd", "text": "Menu: 1 yes 2 no", "more": true}))
        .await
        .unwrap();
    assert_eq!(r["answered_request"], json!(true));
    port.expect("\r\n+CUSD: 1,\"Menu: 1 yes 2 no\",15\r\n")
        .await;
    sim.control_ok(json!({"op": "ussd", "text": "Привіт", "network_initiated": true}))
        .await
        .unwrap();
    port.expect("\r\n+CUSD: 0,\"041F04400438043204560442\",72\r\n")
        .await;
    let s = sim.control_ok(json!({"op": "state"})).await.unwrap();
    let codes: Vec<&str> = s["ussd"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["*111#", "*100#", "*111#", "*555#"]);
    sim.shutdown().await;
}
