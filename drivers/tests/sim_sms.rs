//! Modem simulator SMS on a real pty: +CMTI/CMGR, +CMT/CNMA, multipart out of order, CMGS with
//! the prompt and status reports, wrong length, CMGL with a URC inside, storage full.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "sim")]

mod sim_port;

use gsmgw_drivers::pdu::{self, Pdu, SubmitOptions};
use gsmgw_drivers::sim::{Dialect, SimHandle};
use serde_json::{Value, json};
use sim_port::{Port, start_ready, wait_state};

fn deliver_text(hex: &str) -> (String, String, Option<(u8, u8)>) {
    match pdu::decode(hex).expect("decodable PDU") {
        Pdu::Deliver(d) => (d.from.number, d.text, d.concat.map(|c| (c.seq, c.total))),
        other => panic!("expected a DELIVER, got {other:?}"),
    }
}

/// The PDU line after a "+CMGR: …" / "+CMT: …" header in `resp`.
fn pdu_after(resp: &str, header: &str) -> String {
    let start = resp
        .find(header)
        .unwrap_or_else(|| panic!("{header} in {resp:?}"));
    resp[start..]
        .lines()
        .nth(1)
        .expect("PDU line")
        .trim()
        .to_string()
}

async fn sms(sim: &SimHandle, msg: Value) -> Value {
    sim.control_ok(msg).await.expect("sms op")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_sms_is_stored_and_read() {
    let (sim, mut port, _dir) = start_ready("sms-stored", Dialect::Quectel).await;
    let r = sms(
        &sim,
        json!({"op": "sms", "from": "+380501234567", "text": "Hello, world"}),
    )
    .await;
    assert_eq!(r["indices"], json!([0]), "Quectel counts from 0");
    port.expect("\r\n+CMTI: \"SM\",0\r\n").await;
    let resp = port.cmd("AT+CMGR=0").await;
    assert!(resp.starts_with("\r\n+CMGR: 0,,"), "{resp:?}");
    let (from, text, _) = deliver_text(&pdu_after(&resp, "+CMGR:"));
    assert_eq!(
        (from.as_str(), text.as_str()),
        ("+380501234567", "Hello, world")
    );
    // Reading marked it read.
    assert!(port.cmd("AT+CMGR=0").await.starts_with("\r\n+CMGR: 1,,"));
    assert_eq!(
        port.cmd("AT+CPMS?").await,
        "\r\n+CPMS: \"SM\",1,30,\"SM\",1,30,\"SM\",1,30\r\n\r\nOK\r\n"
    );
    // ME storage and UCS2 text.
    let r = sms(
        &sim,
        json!({"op": "sms", "from": "+380671112233", "text": "Привіт", "storage": "ME"}),
    )
    .await;
    assert_eq!(r["storage"], json!("ME"));
    port.expect("\r\n+CMTI: \"ME\",0\r\n").await;
    port.cmd("AT+CPMS=\"ME\",\"ME\",\"ME\"").await;
    let resp = port.cmd("AT+CMGL=4").await;
    assert_eq!(deliver_text(&pdu_after(&resp, "+CMGL: 0,0,,")).1, "Привіт");
    // Empty slot: Quectel answers plain OK; deleting works.
    assert_eq!(port.cmd("AT+CMGR=5").await, "\r\nOK\r\n");
    assert_eq!(port.cmd("AT+CMGD=0").await, "\r\nOK\r\n");
    assert_eq!(port.cmd("AT+CMGL=4").await, "\r\nOK\r\n");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_delivery_with_cnma() {
    let (sim, mut port, _dir) = start_ready("sms-direct", Dialect::Simcom).await;
    port.cmd("AT+CNMI=2,2,0,0,0").await;
    sms(
        &sim,
        json!({"op": "sms", "from": "+4915112345678", "text": "direct"}),
    )
    .await;
    let urc = port.expect("\r\n+CMT: ,").await;
    assert!(urc.ends_with("+CMT: ,"));
    let rest = port.expect("\r\n").await; // "<len>\r\n"
    let len: usize = rest.trim().parse().unwrap();
    let pdu_line = port.expect("\r\n").await;
    let hex = pdu_line.trim();
    assert_eq!(deliver_text(hex).1, "direct");
    assert_eq!(
        pdu::from_hex(hex).unwrap().len() - 1 - usize::from(pdu::from_hex(hex).unwrap()[0]),
        len
    );
    // Phase 2+ (CSMS=1): +CMT must be acknowledged with +CNMA.
    port.cmd("AT+CMEE=1").await;
    assert_eq!(port.cmd("AT+CNMA").await, "\r\n+CMS ERROR: 340\r\n");
    assert_eq!(
        port.cmd("AT+CSMS=1").await,
        "\r\n+CSMS: 1,1,1\r\n\r\nOK\r\n"
    );
    sms(
        &sim,
        json!({"op": "sms", "from": "+4915112345678", "text": "ack me"}),
    )
    .await;
    port.expect("+CMT: ,").await;
    port.expect("\r\n").await;
    port.expect("\r\n").await;
    let s = sim.control_ok(json!({"op": "state"})).await.unwrap();
    assert_eq!(s["sms"]["awaiting_cnma"], json!(true));
    // A second message waits at the SMSC until the first is acknowledged.
    let r = sms(
        &sim,
        json!({"op": "sms", "from": "+4915112345678", "text": "second"}),
    )
    .await;
    assert_eq!(r["queued"], json!(1));
    assert_eq!(port.cmd("AT+CNMA").await, "\r\nOK\r\n");
    port.expect("+CMT: ,").await;
    port.expect("\r\n").await;
    assert_eq!(deliver_text(port.expect("\r\n").await.trim()).1, "second");
    assert_eq!(port.cmd("AT+CNMA").await, "\r\nOK\r\n");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_out_of_order() {
    let (sim, mut port, _dir) = start_ready("sms-multi", Dialect::Generic).await;
    port.cmd("AT+CNMI=2,1,0,0,0").await;
    let text: String = "0123456789".repeat(20);
    let r = sms(
        &sim,
        json!({"op": "sms", "from": "+380501234567", "text": text, "parts_order": [2, 1]}),
    )
    .await;
    assert_eq!(r["parts"], json!(2));
    assert_eq!(r["indices"], json!([1, 2]), "generic counts from 1");
    port.expect("+CMTI: \"SM\",1").await;
    port.expect("+CMTI: \"SM\",2").await;
    let first = port.cmd("AT+CMGR=1").await;
    let second = port.cmd("AT+CMGR=2").await;
    let (_, t1, c1) = deliver_text(&pdu_after(&first, "+CMGR:"));
    let (_, t2, c2) = deliver_text(&pdu_after(&second, "+CMGR:"));
    assert_eq!(c1, Some((2, 2)), "part 2 arrived first");
    assert_eq!(c2, Some((1, 2)));
    assert_eq!(format!("{t2}{t1}"), text);
    sim.shutdown().await;
}

fn submit(to: &str, text: &str, report: bool) -> pdu::EncodedPart {
    pdu::encode_submit(&SubmitOptions {
        to: to.into(),
        text: text.into(),
        report,
        ..SubmitOptions::default()
    })
    .unwrap()
    .remove(0)
}

async fn send_pdu(port: &mut Port, part: &pdu::EncodedPart) -> String {
    port.send(&format!("AT+CMGS={}\r", part.tpdu_len));
    port.expect("\r\n> ").await;
    port.send(&format!("{}\x1a", part.pdu));
    port.final_result().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmgs_with_prompt_and_status_reports() {
    let (sim, mut port, _dir) = start_ready("sms-send", Dialect::Quectel).await;
    sim.control_ok(json!({"op": "auto-report", "enabled": true, "delay_ms": 100}))
        .await
        .unwrap();
    port.cmd("AT+CMGF=0;+CNMI=2,1,0,1,0").await;
    let part = submit("+380501234567", "Out we go", true);
    let r = send_pdu(&mut port, &part).await;
    assert_eq!(r, "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    // ds=1: a direct +CDS.
    port.expect("\r\n+CDS: ").await;
    let len_line = port.expect("\r\n").await;
    let hex_line = port.expect("\r\n").await;
    let report = match pdu::decode(hex_line.trim()).unwrap() {
        Pdu::StatusReport(r) => r,
        other => panic!("expected a status report, got {other:?}"),
    };
    assert_eq!((report.mr, report.status), (0, 0));
    assert_eq!(report.recipient.number, "+380501234567");
    assert!(len_line.trim().parse::<usize>().is_ok());
    // ds=2: stored in SR with +CDSI; the MR counts up.
    port.cmd("AT+CNMI=2,1,0,2,0").await;
    let r = send_pdu(&mut port, &submit("+380501234567", "Second", true)).await;
    assert_eq!(r, "\r\n+CMGS: 1\r\n\r\nOK\r\n");
    port.expect("\r\n+CDSI: \"SR\",0\r\n").await;
    port.cmd("AT+CPMS=\"SR\"").await;
    let resp = port.cmd("AT+CMGR=0").await;
    match pdu::decode(&pdu_after(&resp, "+CMGR:")).unwrap() {
        Pdu::StatusReport(r) => assert_eq!(r.mr, 1),
        other => panic!("expected a status report, got {other:?}"),
    }
    // A manual report for the first message, failed status.
    let r = sim
        .control_ok(json!({"op": "report", "mr": 0, "status": 70}))
        .await
        .unwrap();
    assert_eq!(r["routed"], json!("SR"));
    port.expect("+CDSI: \"SR\",1").await;
    let s = sim.control_ok(json!({"op": "state"})).await.unwrap();
    let sent = s["sms"]["sent"].as_array().unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["to"], json!("+380501234567"));
    assert_eq!(sent[0]["text"], json!("Out we go"));
    assert_eq!(sent[0]["srr"], json!(true));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmgs_wrong_length_and_escape() {
    let (sim, mut port, _dir) = start_ready("sms-badlen", Dialect::Generic).await;
    let part = submit("+380501234567", "length check", false);
    port.send(&format!("AT+CMGS={}\r", part.tpdu_len + 1));
    port.expect("\r\n> ").await;
    port.send(&format!("{}\x1a", part.pdu));
    assert_eq!(port.final_result().await, "\r\n+CMS ERROR: 304\r\n");
    // ESC abandons the message.
    port.send(&format!("AT+CMGS={}\r", part.tpdu_len));
    port.expect("\r\n> ").await;
    port.send("0011\x1b");
    assert_eq!(port.final_result().await, "\r\nOK\r\n");
    let s = sim.control_ok(json!({"op": "state"})).await.unwrap();
    assert_eq!(s["sms"]["sent"], json!([]));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmgl_with_urc_inside_then_between() {
    let (sim, mut port, _dir) = start_ready("sms-cmgl", Dialect::Quectel).await;
    for i in 0..3 {
        sms(
            &sim,
            json!({"op": "sms", "from": "+380501234567", "text": format!("m{i}")}),
        )
        .await;
        port.expect(&format!("+CMTI: \"SM\",{i}\r\n")).await;
    }
    sim.control_ok(json!({"op": "latency", "ms": 400}))
        .await
        .unwrap();
    let seen = sim.control_ok(json!({"op": "state"})).await.unwrap()["counters"]["commands"]
        .as_u64()
        .unwrap();
    port.send("AT+CMGL=4\r");
    wait_state(&sim, |s| {
        s["counters"]["commands"].as_u64() == Some(seen + 1)
    })
    .await;
    // A message arrives while the listing is being answered.
    sms(
        &sim,
        json!({"op": "sms", "from": "+380501234567", "text": "late"}),
    )
    .await;
    let resp = port.final_result().await;
    let urc = resp
        .find("\r\n+CMTI: \"SM\",3\r\n")
        .expect("URC inside the response");
    let first = resp.find("+CMGL: 0,").unwrap();
    let second = resp.find("+CMGL: 1,").unwrap();
    assert!(first < urc && urc < second, "{resp:?}");
    assert!(resp.ends_with("\r\nOK\r\n"));

    // Between-commands mode: the URC waits for the final result.
    sim.control_ok(json!({"op": "urc-mode", "mode": "between"}))
        .await
        .unwrap();
    port.send("AT+CMGL=4\r");
    wait_state(&sim, |s| {
        s["counters"]["commands"].as_u64() == Some(seen + 2)
    })
    .await;
    sim.control_ok(json!({"op": "urc", "text": "+CMTI: \"SM\",9"}))
        .await
        .unwrap();
    let resp = port.final_result().await;
    assert!(!resp.contains("+CMTI"), "{resp:?}");
    port.expect("\r\n+CMTI: \"SM\",9\r\n").await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_full_holds_messages_at_the_smsc() {
    let (sim, mut port, _dir) = start_ready("sms-full", Dialect::Quectel).await;
    sim.control_ok(json!({"op": "storage-full", "storage": "SM", "enabled": true}))
        .await
        .unwrap();
    let r = sms(
        &sim,
        json!({"op": "sms", "from": "+380501234567", "text": "no room"}),
    )
    .await;
    assert_eq!(r["queued"], json!(1));
    port.expect("\r\n+QIND: \"smsfull\",\"SM\"\r\n").await;
    let s = sim.control_ok(json!({"op": "state"})).await.unwrap();
    assert_eq!(s["counters"]["dropped_sms"], json!(1));
    // Room again: the SMSC's retry delivers it.
    sim.control_ok(json!({"op": "storage-full", "storage": "SM", "enabled": false}))
        .await
        .unwrap();
    port.expect("\r\n+CMTI: \"SM\",0\r\n").await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_mode_basics() {
    let (sim, mut port, _dir) = start_ready("sms-text", Dialect::Simcom).await;
    port.cmd("AT+CMGF=1").await;
    port.send("AT+CMGS=\"+380501234567\"\r");
    port.expect("\r\n> ").await;
    port.send("Hello text\x1a");
    assert_eq!(port.final_result().await, "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    sms(
        &sim,
        json!({"op": "sms", "from": "+380671112233", "text": "Incoming"}),
    )
    .await;
    port.expect("+CMTI: \"SM\",1\r\n").await;
    let r = port.cmd("AT+CMGR=1").await;
    assert!(
        r.starts_with("\r\n+CMGR: \"REC UNREAD\",\"+380671112233\",,\""),
        "{r:?}"
    );
    assert!(r.contains("\r\nIncoming\r\n\r\nOK\r\n"), "{r:?}");
    let s = sim.control_ok(json!({"op": "state"})).await.unwrap();
    assert_eq!(s["sms"]["sent"][0]["text"], json!("Hello text"));
    sim.shutdown().await;
}
