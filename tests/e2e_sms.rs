//! SMS in, end to end: simulated modem → agent → store → broker → central subscriber.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config};
use gsmgw_drivers::pdu::{self, DeliverOptions, Timestamp};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const FROM: &str = "+380671112233";

fn wait_storage_empty(sim: &SimModem) {
    common::wait_for(T, "the agent to take every stored message", || {
        (sim.stored_count() == 0).then_some(())
    });
}

fn is_text(text: &'static str) -> impl Fn(&Value) -> bool {
    move |v: &Value| v["text"] == text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_and_out_of_order_multipart_sms_arrive_once_and_leave_the_sim() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(
        dir.path(),
        "modem1",
        &["--dialect", "quectel", "--imsi", "255030123456781"],
    );
    let cfg = write_config(dir.path(), "gw-sms", &broker.url(), &[(1, &sim.link)]);
    let mut central = Central::connect(broker.port, "gsmgw/gw-sms/#").await;
    let _agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-sms/modem/1/state", T, |v| v["state"] == "ready")
        .await;

    let r = sim.control(json!({"op": "sms", "from": FROM, "text": "Hello [OK] {€}"}));
    assert_eq!(r["ok"], true, "{r}");
    let ev = central
        .expect(
            "gsmgw/gw-sms/event/sms-received",
            T,
            is_text("Hello [OK] {€}"),
        )
        .await;
    assert_eq!(ev["from"], FROM);
    assert_eq!(ev["slot"], 1);
    assert_eq!(ev["imsi"], "255030123456781");
    assert_eq!(ev["encoding"], "gsm7");
    assert_eq!(ev["complete"], true);
    assert!(ev["sent_at"].as_str().is_some() && ev["received_at"].as_str().is_some());

    // A 3-part Ukrainian message, parts delivered 3, 1, 2.
    let long: &'static str = "Доброго дня! Ваше замовлення № 4711 прийнято. Кур'єр зателефонує \
        за годину до доставки. Дякуємо, що обрали нас — ґаджети, їжа, єнот і все інше. 🦊";
    let r = sim.control(json!({"op": "sms", "from": FROM, "text": long, "parts_order": [3, 1, 2]}));
    assert_eq!(r["parts"], 3, "{r}");
    let ev = central
        .expect("gsmgw/gw-sms/event/sms-received", T, is_text(long))
        .await;
    assert_eq!(ev["parts"], 3);
    assert_eq!(ev["encoding"], "ucs2");
    assert_eq!(ev["complete"], true);
    wait_storage_empty(&sim);

    // Nothing was published twice: a sentinel comes next, and nothing in between.
    sim.control(json!({"op": "sms", "from": FROM, "text": "sentinel"}));
    central
        .expect("gsmgw/gw-sms/event/sms-received", T, is_text("sentinel"))
        .await;
    let texts: Vec<&str> = central
        .log
        .iter()
        .filter(|(t, _)| t.ends_with("/event/sms-received"))
        .filter_map(|(_, v)| v["text"].as_str())
        .collect();
    assert_eq!(texts.iter().filter(|t| **t == long).count(), 1, "{texts:?}");
    // Events carry increasing seq numbers.
    let seqs: Vec<u64> = central
        .log
        .iter()
        .filter(|(t, _)| t.contains("/event/"))
        .filter_map(|(_, v)| v["seq"].as_u64())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_between_parts_still_gives_one_whole_message() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &["--dialect", "simcom"]);
    let cfg = write_config(dir.path(), "gw-kill", &broker.url(), &[(1, &sim.link)]);
    let mut central = Central::connect(broker.port, "gsmgw/gw-kill/#").await;

    let text: &'static str = "Привіт! Це повідомлення з трьох частин: перевіряємо, що перезапуск \
        агента між частинами нічого не губить і нічого не дублює. Їжак, ґава, єнот — усі тут.";
    let parts = pdu::encode_deliver(&DeliverOptions {
        from: FROM.into(),
        text: text.into(),
        smsc: Some("+380672021111".into()),
        scts: Timestamp::new(2026, 11, 26, 22, 15, 3, 8).unwrap(),
        force_ucs2: false,
        concat_ref: 77,
        class: None,
        status_report_indication: false,
    })
    .unwrap();
    assert_eq!(parts.len(), 3);

    let agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-kill/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    sim.control(json!({"op": "sms-pdu", "pdu": parts[2].pdu}));
    wait_storage_empty(&sim); // part 3 committed, then deleted from the SIM
    agent.kill(); // power cut
    sim.control(json!({"op": "sms-pdu", "pdu": parts[0].pdu}));
    let _agent = AgentProc::start(&cfg);
    wait_storage_empty(&sim); // part 1 taken by the restarted agent's sweep
    sim.control(json!({"op": "sms-pdu", "pdu": parts[1].pdu}));
    let ev = central
        .expect("gsmgw/gw-kill/event/sms-received", T, is_text(text))
        .await;
    assert_eq!(ev["parts"], 3);
    sim.control(json!({"op": "sms", "from": FROM, "text": "sentinel"}));
    central
        .expect("gsmgw/gw-kill/event/sms-received", T, is_text("sentinel"))
        .await;
    let received: Vec<&Value> = central
        .log
        .iter()
        .filter(|(t, _)| t.ends_with("/event/sms-received"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(received.len(), 2, "{received:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_for_a_stopped_broker_and_arrive_in_seq_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &["--dialect", "huawei"]);
    let cfg = write_config(dir.path(), "gw-buf", &broker.url(), &[(1, &sim.link)]);
    // A persistent central session: the broker queues for it while it is away.
    let mut central =
        Central::connect_as(broker.port, "gsmgw/gw-buf/event/#", "central-buf", false).await;
    let _agent = AgentProc::start(&cfg);
    // The first event (modem state changes) proves the path works.
    central
        .expect("gsmgw/gw-buf/event/modem", T, |v| v["state"] == "ready")
        .await;
    broker.stop();
    for i in 0..20 {
        let r = sim.control(json!({"op": "sms", "from": FROM, "text": format!("buffered {i}")}));
        assert_eq!(r["ok"], true, "{r}");
    }
    wait_storage_empty(&sim); // all 20 committed to the agent's store while the broker is down
    broker.restart();
    let mut got = Vec::new();
    while got.len() < 20 {
        let v = central
            .expect("gsmgw/gw-buf/event/sms-received", T, |_| true)
            .await;
        got.push(v);
    }
    let texts: Vec<String> = got
        .iter()
        .map(|v| v["text"].as_str().unwrap_or("").to_string())
        .collect();
    let expected: Vec<String> = (0..20).map(|i| format!("buffered {i}")).collect();
    assert_eq!(texts, expected);
    let seqs: Vec<u64> = got.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_send_is_sent_once_reported_delivered_and_failures_are_classed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &["--dialect", "quectel"]);
    let cfg = write_config(dir.path(), "gw-out", &broker.url(), &[(1, &sim.link)]);
    let mut central = Central::connect(broker.port, "gsmgw/gw-out/#").await;
    let _agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-out/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    let status = "gsmgw/gw-out/event/sms-status";

    // A two-part Cyrillic message with a delivery report, sent twice with one request_id.
    let text = "Вітаємо! Ваша знижка 15% діє до неділі. Деталі в особистому кабінеті: \
                перейдіть за посиланням у застосунку.";
    let cmd = json!({"request_id": "out-1", "to": "+380501234567", "text": text, "report": true})
        .to_string();
    central.send("gsmgw/gw-out/cmd/sms-send", &cmd).await;
    central.send("gsmgw/gw-out/cmd/sms-send", &cmd).await;
    let sent = central
        .expect(status, T, |v| {
            v["request_id"] == "out-1" && v["state"] == "sent"
        })
        .await;
    assert_eq!(sent["slot"], 1);
    assert_eq!(sent["mr"].as_array().map(Vec::len), Some(2), "{sent}");
    // The simulator's reports land in SR storage (+CDSI); a real SMS arrives next to them.
    sim.control(json!({"op": "sms", "from": FROM, "text": "a real SMS next to the reports"}));
    let delivered = central
        .expect(status, T, |v| {
            v["request_id"] == "out-1" && v["state"] == "delivered"
        })
        .await;
    assert_eq!(delivered["msg_id"], sent["msg_id"]);
    central
        .expect(
            "gsmgw/gw-out/event/sms-received",
            T,
            is_text("a real SMS next to the reports"),
        )
        .await;
    wait_storage_empty(&sim);
    let st = sim.control(json!({"op": "state"}));
    let sent_msgs = st["sms"]["sent"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        sent_msgs.len(),
        2,
        "one message of two parts, sent once: {st}"
    );

    // Transient failure (network congestion): retried, then sent.
    sim.control(json!({"op": "cmgs", "error": 42, "count": 1}));
    let cmd = json!({"request_id": "out-2", "to": "+380501234567", "text": "retry me"}).to_string();
    central.send("gsmgw/gw-out/cmd/sms-send", &cmd).await;
    central
        .expect(status, T, |v| {
            v["request_id"] == "out-2" && v["state"] == "sent"
        })
        .await;

    // Permanent failure (unassigned number): failed with the reason, not retried.
    sim.control(json!({"op": "cmgs", "error": 1, "count": 5}));
    let cmd = json!({"request_id": "out-3", "to": "+380509999999", "text": "nobody"}).to_string();
    central.send("gsmgw/gw-out/cmd/sms-send", &cmd).await;
    let failed = central
        .expect(status, T, |v| {
            v["request_id"] == "out-3" && v["state"] == "failed"
        })
        .await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or("")
            .contains("CMS ERROR: 1"),
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_again_and_again_during_a_stream_loses_and_duplicates_nothing() {
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &["--dialect", "generic"]);
    let cfg = write_config(dir.path(), "gw-stream", &broker.url(), &[(1, &sim.link)]);
    let mut central = Central::connect(broker.port, "gsmgw/gw-stream/event/sms-received").await;
    let mut agent = AgentProc::start(&cfg);
    // A 10 000-event stream: the network hands the modem N messages into its own memory (ME:
    // 100 places, no SIM access delay); the rest wait at the SMSC until the agent frees room.
    for i in 0..N {
        let r = sim.control(
            json!({"op": "sms", "from": FROM, "text": format!("stream {i}"), "storage": "ME"}),
        );
        assert_eq!(r["ok"], true, "{r}");
    }
    let mut texts = std::collections::HashMap::<String, std::collections::HashSet<String>>::new();
    let mut kills = 0;
    while texts.len() < N {
        let v = central
            .expect(
                "gsmgw/gw-stream/event/sms-received",
                Duration::from_secs(60),
                |_| true,
            )
            .await;
        let text = v["text"].as_str().unwrap_or("").to_string();
        let id = v["id"].as_str().unwrap_or("").to_string();
        texts.entry(text).or_default().insert(id);
        // Power cuts at three points of the stream (SIGKILL: nothing is flushed).
        if [1_000, 4_000, 7_500].contains(&texts.len()) && kills < texts.len() / 1_000 {
            kills += 1;
            agent.kill();
            agent = AgentProc::start(&cfg);
        }
    }
    assert!(kills >= 3, "the agent was killed {kills} times");
    for i in 0..N {
        let ids = texts.get(&format!("stream {i}")).map(|s| s.len());
        // Re-published events keep their id; a message read again after a kill is not
        // published under a new id.
        assert_eq!(ids, Some(1), "stream {i}: {ids:?}");
    }
    wait_storage_empty(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_missing_a_part_is_delivered_incomplete_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &[]);
    let cfg = write_config(dir.path(), "gw-stale", &broker.url(), &[(1, &sim.link)]);
    let mut text_cfg = std::fs::read_to_string(&cfg).unwrap();
    text_cfg.push_str("\n[sms]\nreassembly_timeout_secs = 2\n");
    std::fs::write(&cfg, text_cfg).unwrap();
    let mut central = Central::connect(broker.port, "gsmgw/gw-stale/#").await;
    let _agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-stale/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    let text = "One two three four five six seven eight nine ten. ".repeat(8);
    let parts = pdu::encode_deliver(&DeliverOptions {
        from: FROM.into(),
        text: text.clone(),
        smsc: None,
        scts: Timestamp::new(2026, 11, 26, 22, 15, 3, 8).unwrap(),
        force_ucs2: false,
        concat_ref: 9,
        class: None,
        status_report_indication: false,
    })
    .unwrap();
    assert_eq!(parts.len(), 3);
    sim.control(json!({"op": "sms-pdu", "pdu": parts[0].pdu}));
    sim.control(json!({"op": "sms-pdu", "pdu": parts[2].pdu}));
    let ev = central
        .expect("gsmgw/gw-stale/event/sms-received", T, |v| {
            v["complete"] == false
        })
        .await;
    assert_eq!(ev["parts"], 3);
    assert_eq!(ev["parts_received"], json!([1, 3]));
    let got = ev["text"].as_str().unwrap();
    assert!(got.contains("[…]") && got.starts_with("One two"), "{got}");
    wait_storage_empty(&sim);
}

/// Three separate SMS with the same sender and text inside the same service-centre second
/// are three messages (a door sensor, a person pressing send twice): identical content is not
/// a re-read, only a message committed and not yet confirmed deleted is. Both while the
/// agent runs (each taken as it arrives) and while it is stopped (found by the start sweep).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_sms_in_the_same_second_are_each_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &["--dialect", "quectel"]);
    let cfg = write_config(dir.path(), "gw-same", &broker.url(), &[(1, &sim.link)]);
    let mut central = Central::connect(broker.port, "gsmgw/gw-same/#").await;
    let pdu_of = |text: &str| {
        let parts = pdu::encode_deliver(&DeliverOptions {
            from: FROM.into(),
            text: text.into(),
            smsc: Some("+380672021111".into()),
            scts: Timestamp::new(2026, 12, 1, 9, 30, 0, 8).unwrap(),
            force_ucs2: false,
            concat_ref: 0,
            class: None,
            status_report_indication: false,
        })
        .unwrap();
        parts[0].pdu.clone()
    };
    let count = |central: &Central, text: &str| {
        central
            .log
            .iter()
            .filter(|(t, v)| t.ends_with("/event/sms-received") && v["text"] == text)
            .count()
    };

    let agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-same/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    let door = pdu_of("Door opened");
    for _ in 0..3 {
        let r = sim.control(json!({"op": "sms-pdu", "pdu": door}));
        assert_eq!(r["ok"], true, "{r}");
    }
    for _ in 0..3 {
        central
            .expect(
                "gsmgw/gw-same/event/sms-received",
                T,
                is_text("Door opened"),
            )
            .await;
    }
    wait_storage_empty(&sim);
    assert_eq!(agent.terminate().code(), Some(0));

    // Stopped: three identical messages wait on the SIM, at three indexes.
    let alarm = pdu_of("Alarm zone 2");
    for _ in 0..3 {
        let r = sim.control(json!({"op": "sms-pdu", "pdu": alarm}));
        assert_eq!(r["ok"], true, "{r}");
    }
    let _agent = AgentProc::start(&cfg);
    for _ in 0..3 {
        central
            .expect(
                "gsmgw/gw-same/event/sms-received",
                T,
                is_text("Alarm zone 2"),
            )
            .await;
    }
    wait_storage_empty(&sim);
    sim.control(json!({"op": "sms", "from": FROM, "text": "sentinel"}));
    central
        .expect("gsmgw/gw-same/event/sms-received", T, is_text("sentinel"))
        .await;
    assert_eq!(count(&central, "Door opened"), 3);
    assert_eq!(count(&central, "Alarm zone 2"), 3);
}
