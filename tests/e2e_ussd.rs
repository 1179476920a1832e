//! USSD through the agent: balance checks into the retained modem state and the
//! `balance-low` alarm, on a plain-text (Quectel) and a packed-hex (Huawei) modem.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config_with};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_checks_fill_the_state_and_raise_balance_low() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let low = SimModem::start(
        dir.path(),
        "quectel",
        &["--dialect", "quectel", "--imsi", "255030123456781"],
    );
    let ok = SimModem::start(
        dir.path(),
        "huawei",
        &["--dialect", "huawei", "--imsi", "255010123456782"],
    );
    for (sim, answer) in [
        (&low, "Na rahunku 4.50 grn. Bonusy: 50.00 grn."),
        (&ok, "Vash balans 45,67 grn"),
    ] {
        let r = sim.control(json!({"op": "ussd-table", "delay_ms": 100, "table": {
            "*111#": answer,
            "*100#": {"text": "1 Balans 2 Taryf", "more": true},
            "*100#>2": "Taryf: Bezlimit, 150 grn/misyats",
        }}));
        assert_eq!(r["ok"], true, "{r}");
    }
    let extra = "balance_ussd = \"*111#\"\nbalance_low = 10.0\nbalance_interval_secs = 3600";
    let cfg = write_config_with(
        dir.path(),
        "gw-ussd",
        &broker.url(),
        "",
        &[(1, &low.link, extra), (2, &ok.link, extra)],
    );
    let mut central = Central::connect(broker.port, "gsmgw/gw-ussd/#").await;
    let _agent = AgentProc::start(&cfg);

    let s1 = central
        .expect("gsmgw/gw-ussd/modem/1/state", T, |v| {
            !v["balance"].is_null()
        })
        .await;
    assert_eq!(s1["balance"]["amount"], 4.5, "{s1}");
    assert_eq!(s1["balance"]["currency"], "UAH");
    assert_eq!(
        s1["balance"]["text"],
        "Na rahunku 4.50 grn. Bonusy: 50.00 grn."
    );
    assert!(s1["balance"]["checked_at"].as_str().unwrap().ends_with('Z'));
    let s2 = central
        .expect("gsmgw/gw-ussd/modem/2/state", T, |v| {
            !v["balance"].is_null()
        })
        .await;
    assert_eq!(s2["balance"]["amount"], 45.67, "{s2}");
    assert_eq!(s2["balance"]["currency"], "UAH");

    let alarm = central
        .expect("gsmgw/gw-ussd/event/alarm", T, |v| {
            v["code"] == "balance-low"
        })
        .await;
    assert_eq!(alarm["slot"], 1, "{alarm}");
    assert!(
        alarm["message"]
            .as_str()
            .unwrap()
            .contains("4.50 UAH is below 10.00"),
        "{alarm}"
    );
    // The Huawei modem was asked in packed GSM 7-bit hex, the Quectel one in plain text.
    assert_eq!(
        ok.control(json!({"op": "state"}))["ussd"]["requests"][0]["raw"],
        "AA582C3602"
    );
    assert_eq!(
        low.control(json!({"op": "state"}))["ussd"]["requests"][0]["raw"],
        "*111#"
    );
    // Slot 2 is above its threshold: no alarm for it among everything received so far.
    assert!(
        !central
            .log
            .iter()
            .any(|(t, v)| t.ends_with("/event/alarm") && v["slot"] == 2),
        "{:?}",
        central.log
    );

    // Asked by hand, the balance code updates the state too; the alarm is raised once per
    // drop: back above the threshold re-arms it, below again raises it again.
    for (answer, amount, rid) in [
        ("Na rahunku 25.00 grn", 25.0, "b-1"),
        ("Na rahunku 3.00 grn", 3.0, "b-2"),
    ] {
        let r = low.control(json!({"op": "ussd-table", "table": {"*111#": answer}}));
        assert_eq!(r["ok"], true, "{r}");
        central
            .send(
                "gsmgw/gw-ussd/cmd/ussd",
                &format!(r#"{{"request_id":"{rid}","slot":1,"code":"*111#"}}"#),
            )
            .await;
        let r = central
            .expect(&format!("gsmgw/gw-ussd/reply/{rid}"), T, |_| true)
            .await;
        assert_eq!(r["result"]["balance"]["amount"], amount, "{r}");
        central
            .expect("gsmgw/gw-ussd/modem/1/state", T, |v| {
                v["balance"]["amount"] == amount
            })
            .await;
    }
    let again = central
        .expect("gsmgw/gw-ussd/event/alarm", T, |v| {
            v["code"] == "balance-low"
        })
        .await;
    assert!(
        again["message"].as_str().unwrap().contains("3.00 UAH"),
        "{again}"
    );
    let alarms = central
        .log
        .iter()
        .filter(|(t, v)| t.ends_with("/event/alarm") && v["code"] == "balance-low")
        .count();
    assert_eq!(alarms, 2, "one per drop below the threshold");

    // cmd/ussd on the Huawei SIM: a menu answered in packed hex, then a network-initiated
    // message in UCS-2 becomes event/ussd.
    central
        .send(
            "gsmgw/gw-ussd/cmd/ussd",
            r#"{"request_id":"m-1","slot":2,"code":"*100#","replies":["2"]}"#,
        )
        .await;
    let r = central.expect("gsmgw/gw-ussd/reply/m-1", T, |_| true).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["result"]["text"], "Taryf: Bezlimit, 150 grn/misyats",
        "{r}"
    );
    assert_eq!(r["result"]["steps"][0]["status"], "menu", "{r}");
    assert_eq!(r["result"]["steps"][1]["sent"], "2", "{r}");
    let raws: Vec<String> = ok.control(json!({"op": "state"}))["ussd"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["raw"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        raws,
        ["AA582C3602", "AA180C3602", "32"],
        "packed hex all the way"
    );
    let r = ok.control(
        json!({"op": "ussd", "text": "Рахунок поповнено на 50 грн", "network_initiated": true}),
    );
    assert_eq!(r["ok"], true, "{r}");
    let ev = central
        .expect("gsmgw/gw-ussd/event/ussd", T, |_| true)
        .await;
    assert_eq!(ev["slot"], 2, "{ev}");
    assert_eq!(ev["text"], "Рахунок поповнено на 50 грн");
    assert_eq!(ev["dcs"], 72);
    assert_eq!(ev["network_initiated"], true);
}
