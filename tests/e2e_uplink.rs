//! End to end: the real binary, simulated modems on pseudo-terminals, a real mosquitto.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{AgentProc, Broker, Central, SimModem, write_config};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_sees_birth_identified_modems_and_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let quectel = SimModem::start(
        dir.path(),
        "modem1",
        &[
            "--dialect",
            "quectel",
            "--imei",
            "861698041234567",
            "--imsi",
            "255030123456781",
        ],
    );
    // A Huawei that reports its signal every 200 ms: the agent must shrug it off.
    let huawei = SimModem::start(
        dir.path(),
        "modem2",
        &[
            "--dialect",
            "huawei",
            "--imei",
            "863035021122330",
            "--signal-urc-interval-ms",
            "200",
        ],
    );
    let cfg = write_config(
        dir.path(),
        "gw-e2e",
        &broker.url(),
        &[(1, &quectel.link), (2, &huawei.link)],
    );
    let mut central = Central::connect(broker.port, "gsmgw/gw-e2e/#").await;
    let agent = AgentProc::start(&cfg);

    let birth = central
        .expect("gsmgw/gw-e2e/status", T, |v| v["online"] == json!(true))
        .await;
    assert!(birth["version"].as_str().unwrap().contains("git"));
    assert!(birth["boot_id"].as_str().is_some_and(|s| !s.is_empty()));

    let m1 = central
        .expect("gsmgw/gw-e2e/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    assert_eq!(m1["imei"], "861698041234567");
    assert_eq!(m1["imsi"], "255030123456781");
    assert_eq!(m1["dialect"], "quectel");
    assert_eq!(m1["pcm_voice"], true, "{m1}");
    assert_eq!(m1["sim"], "ready");
    assert!(m1["registration"] == "home" || m1["registration"] == "roaming");
    assert!(m1["iccid"].as_str().is_some_and(|s| s.len() >= 18), "{m1}");
    let m2 = central
        .expect("gsmgw/gw-e2e/modem/2/state", T, |v| v["state"] == "ready")
        .await;
    assert_eq!(m2["imei"], "863035021122330");
    assert_eq!(m2["dialect"], "huawei");
    assert!(m2["signal_dbm"].as_i64().is_some(), "{m2}");

    // The simulator really answered over the PTY: it logged the agent's identity queries.
    let st = quectel.control(json!({"op": "state"}));
    assert_eq!(st["ok"], true, "{st}");
    let log = st.to_string();
    assert!(log.contains("AT+CGSN") && log.contains("AT+QCCID"), "{log}");

    let status = agent.terminate();
    assert!(status.success(), "agent exit status {status:?}");
    central
        .expect("gsmgw/gw-e2e/status", T, |v| v["online"] == json!(false))
        .await;
    // A central server that subscribes later still finds the retained goodbye.
    let mut late = Central::connect(broker.port, "gsmgw/gw-e2e/status").await;
    late.expect("gsmgw/gw-e2e/status", T, |v| v["online"] == json!(false))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_keeps_running_without_broker_and_publishes_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start();
    broker.stop();
    let sim = SimModem::start(dir.path(), "modem1", &["--dialect", "simcom"]);
    let cfg = write_config(dir.path(), "gw-late", &broker.url(), &[(1, &sim.link)]);
    let agent = AgentProc::start(&cfg);
    // The agent brings the modem up with no broker; the simulator sees it configured.
    common::wait_for(T, "the agent to configure the modem", || {
        let st = sim.control(json!({"op": "state"}));
        st.to_string()
            .contains("AT+CNMI")
            .then_some(())
            .or_else(|| st.to_string().contains("AT+CMGF=0").then_some(()))
    });
    broker.restart();
    let mut central = Central::connect(broker.port, "gsmgw/gw-late/#").await;
    central
        .expect("gsmgw/gw-late/status", T, |v| v["online"] == json!(true))
        .await;
    central
        .expect("gsmgw/gw-late/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    // The broker goes away and comes back: the agent reconnects and says hello again.
    broker.restart();
    let mut central = Central::connect(broker.port, "gsmgw/gw-late/#").await;
    central
        .expect("gsmgw/gw-late/status", T, |v| v["online"] == json!(true))
        .await;
    agent.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplugged_modem_goes_absent_and_comes_back_ready() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &["--dialect", "generic"]);
    let cfg = write_config(dir.path(), "gw-plug", &broker.url(), &[(1, &sim.link)]);
    let mut central = Central::connect(broker.port, "gsmgw/gw-plug/#").await;
    let _agent = AgentProc::start(&cfg);
    central
        .expect("gsmgw/gw-plug/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    assert_eq!(sim.control(json!({"op": "unplug"}))["ok"], true);
    central
        .expect("gsmgw/gw-plug/modem/1/state", T, |v| v["state"] == "absent")
        .await;
    assert_eq!(sim.control(json!({"op": "replug"}))["ok"], true);
    central
        .expect("gsmgw/gw-plug/modem/1/state", T, |v| v["state"] == "ready")
        .await;
}

/// While the broker is away the agent tries again with a backoff that never waits more than
/// 10 s (jittered), so a broker that comes back is used within about 10 s, however long it
/// was gone. Each attempt is seen at a stand-in that accepts and hangs up on the broker's port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_attempts_never_wait_more_than_ten_seconds() {
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start();
    let cfg = write_config(dir.path(), "gw-back", &broker.url(), &[]);
    let mut central =
        Central::connect_as(broker.port, "gsmgw/gw-back/status", "central-back", false).await;
    let _agent = AgentProc::start(&cfg);
    let birth = central
        .expect("gsmgw/gw-back/status", T, |v| v["online"] == true)
        .await;

    broker.stop();
    let listener = TcpListener::bind(("127.0.0.1", broker.port)).expect("take the broker's port");
    listener.set_nonblocking(true).expect("nonblocking");
    let attempts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let start = Instant::now();
    let window = Duration::from_secs(35);
    {
        let attempts = attempts.clone();
        std::thread::spawn(move || {
            while start.elapsed() < window {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        // Only the agent's attempts count (the central's client retries too):
                        // its MQTT CONNECT names its client id.
                        let at = Instant::now();
                        let mut buf = [0u8; 256];
                        conn.set_nonblocking(false).ok();
                        conn.set_read_timeout(Some(Duration::from_secs(1))).ok();
                        let n = std::io::Read::read(&mut conn, &mut buf).unwrap_or(0);
                        if buf[..n].windows(7).any(|w| w == b"gw-back") {
                            attempts.lock().unwrap().push(at);
                        }
                        drop(conn); // hang up: the attempt fails like a broker that is away
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
        .join()
        .expect("stand-in");
    }
    let end = Instant::now();
    let attempts = attempts.lock().unwrap().clone();
    assert!(attempts.len() >= 5, "{} attempts in 35 s", attempts.len());
    let mut gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.push(end - *attempts.last().unwrap());
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_millis(10_500)),
        "a wait over 10 s: {gaps:?}"
    );
    // It backs off rather than hammering the broker's address.
    assert!(
        gaps[gaps.len() - 3..gaps.len() - 1]
            .iter()
            .all(|g| *g >= Duration::from_secs(2)),
        "{gaps:?}"
    );

    broker.restart();
    let back = central
        .expect("gsmgw/gw-back/status", Duration::from_secs(12), |v| {
            v["online"] == true
        })
        .await;
    assert_eq!(
        back["boot_id"], birth["boot_id"],
        "a reconnect, not a restart"
    );
}
