//! The agent under a service manager: the test binds the `NOTIFY_SOCKET` systemd would and
//! reads what `gsmgw run` tells it — READY=1 once it is up, STATUS lines, WATCHDOG=1 pings
//! while every essential task turns (also with the broker away), no more pings once a task
//! is wedged (fault injection), STOPPING=1 on SIGTERM; a start that cannot work sends no
//! READY=1 and exits non-zero.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{AgentProc, SimModem, write_config};

/// The service manager's end of the notification socket.
struct Manager {
    sock: UnixDatagram,
    started: Instant,
    /// (seconds since start, datagram) in arrival order.
    seen: Vec<(f64, String)>,
}

impl Manager {
    fn bind(dir: &Path) -> (Manager, String) {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let m = Manager {
            sock,
            started: Instant::now(),
            seen: Vec::new(),
        };
        (m, path.to_str().unwrap().to_string())
    }

    /// Reads datagrams until `done` holds for what was seen, or `timeout` (then panics).
    fn until(&mut self, what: &str, timeout: Duration, done: impl Fn(&[(f64, String)]) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while !done(&self.seen) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the agent sent: {:#?}",
                self.seen
            );
            if let Ok(n) = self.sock.recv(&mut buf) {
                let t = self.started.elapsed().as_secs_f64();
                self.seen
                    .push((t, String::from_utf8_lossy(&buf[..n]).into_owned()));
            }
        }
    }

    /// Reads datagrams for `d`, whatever comes.
    fn for_a_while(&mut self, d: Duration) {
        let until = Instant::now() + d;
        self.until("nothing", d + Duration::from_secs(1), |_| {
            Instant::now() >= until
        });
    }

    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    fn pings_after(&self, t: f64) -> usize {
        self.seen
            .iter()
            .filter(|(at, m)| *at > t && m.lines().any(|l| l == "WATCHDOG=1"))
            .count()
    }
}

fn has(seen: &[(f64, String)], line: &str) -> bool {
    seen.iter()
        .any(|(_, m)| m.lines().any(|l| l.starts_with(line)))
}

/// A broker URL where nothing listens.
fn no_broker() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("mqtt://127.0.0.1:{port}")
}

#[test]
fn systemd_hears_ready_status_pings_and_stopping_also_without_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let modem = SimModem::start(dir.path(), "modem1", &[]);
    let cfg = write_config(dir.path(), "gw-wd", &no_broker(), &[(1, &modem.link)]);
    let (mut m, sock) = Manager::bind(dir.path());
    let mut agent = AgentProc::start_with_env(
        &cfg,
        &[("NOTIFY_SOCKET", &sock), ("WATCHDOG_USEC", "1000000")],
    );
    m.until("READY=1", Duration::from_secs(20), |s| has(s, "READY=1"));
    let first = &m.seen[0].1;
    assert!(
        first.lines().next() == Some("READY=1") && first.contains("STATUS="),
        "the first notification is READY=1 with a status: {first:?}"
    );
    m.until(
        "a status with the modem ready",
        Duration::from_secs(30),
        |s| has(s, "STATUS=1/1 modems ready, uplink not connected"),
    );
    // Pings every half WATCHDOG_USEC although the broker is away: it is recovered inside.
    let t = m.started.elapsed().as_secs_f64();
    m.until("pings", Duration::from_secs(10), |s| {
        s.iter()
            .filter(|(at, msg)| *at > t && msg.contains("WATCHDOG=1"))
            .count()
            >= 4
    });
    assert!(agent.stop().success(), "{}", agent.log());
    m.until("STOPPING=1", Duration::from_secs(5), |s| {
        has(s, "STOPPING=1")
    });
}

// The wedge is the test-only `fault-injection` feature (`./tests/run` builds with
// --all-features).
#[cfg(feature = "fault-injection")]
#[test]
fn pings_stop_when_an_essential_task_is_wedged() {
    let dir = tempfile::tempdir().unwrap();
    let modem = SimModem::start(dir.path(), "modem1", &[]);
    let cfg = write_config(dir.path(), "gw-wedge", &no_broker(), &[(1, &modem.link)]);
    let (mut m, sock) = Manager::bind(dir.path());
    let agent = AgentProc::start_with_env(
        &cfg,
        &[
            ("NOTIFY_SOCKET", &sock),
            ("WATCHDOG_USEC", "1000000"),
            ("GSMGW_STALE_AFTER_SECS", "2"),
            ("GSMGW_FAULT_WEDGE", "sender:4"),
        ],
    );
    m.until("READY=1", Duration::from_secs(20), |s| has(s, "READY=1"));
    m.until("pings before the wedge", Duration::from_secs(10), |s| {
        s.iter()
            .filter(|(_, msg)| msg.contains("WATCHDOG=1"))
            .count()
            >= 2
    });
    m.until(
        "a status naming the wedged task",
        Duration::from_secs(20),
        |s| has(s, "STATUS=wedged: sender silent"),
    );
    let wedged_at = m
        .seen
        .iter()
        .find(|(_, msg)| msg.contains("STATUS=wedged"))
        .map(|(t, _)| *t)
        .unwrap();
    m.for_a_while(Duration::from_secs(3));
    assert_eq!(
        m.pings_after(wedged_at),
        0,
        "pings went on with the sender wedged: {:#?}",
        m.seen
    );
    let log = agent.log();
    assert!(
        log.contains("not feeding the watchdog: sender silent"),
        "{log}"
    );
    agent.kill();
}

#[test]
fn a_start_that_cannot_work_sends_no_ready() {
    let dir = tempfile::tempdir().unwrap();
    // data_dir is a regular file: the store cannot be opened.
    let cfg = dir.path().join("gsmgw.toml");
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\nid = \"gw-bad\"\ndata_dir = \"{}\"\n\n[mqtt]\nurl = \"{}\"\n\n[console]\ndevice = \"none\"\n",
            blocker.join("data").display(),
            no_broker()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (mut m, sock) = Manager::bind(dir.path());
    let mut agent = AgentProc::start_with_env(&cfg, &[("NOTIFY_SOCKET", &sock)]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while agent.running() {
        assert!(Instant::now() < deadline, "the agent runs: {}", agent.log());
        m.for_a_while(Duration::from_millis(200));
    }
    m.for_a_while(Duration::from_millis(300));
    assert!(!has(&m.seen, "READY=1"), "{:#?}", m.seen);
    let status = agent.stop();
    assert!(!status.success(), "{status:?}\n{}", agent.log());
}

/// A board profile naming a hardware watchdog: `path` stands in for /dev/watchdog (every
/// write is a feed, a final `V` the magic close).
fn watchdog_board(dir: &Path) -> (String, std::path::PathBuf) {
    let device = dir.join("watchdog");
    std::fs::write(&device, "").unwrap();
    let profile = dir.join("board.toml");
    std::fs::write(
        &profile,
        format!("name = \"wd-board\"\nwatchdog = \"{}\"\n", device.display()),
    )
    .unwrap();
    (format!("board_profile = \"{}\"", profile.display()), device)
}

fn feeds(device: &Path) -> String {
    std::fs::read_to_string(device).unwrap()
}

fn wait_feeds(device: &Path, n: usize, agent: &AgentProc) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while feeds(device).matches('1').count() < n {
        assert!(Instant::now() < deadline, "not fed: {}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_hardware_watchdog_is_fed_and_disarmed_on_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let modem = SimModem::start(dir.path(), "modem1", &[]);
    let (extra, device) = watchdog_board(dir.path());
    let cfg = common::write_config_with(
        dir.path(),
        "gw-hwwd",
        &no_broker(),
        &extra,
        &[(1, &modem.link, "")],
    );
    let mut agent = AgentProc::start(&cfg);
    wait_feeds(&device, 3, &agent);
    assert!(agent.stop().success(), "{}", agent.log());
    let fed = feeds(&device);
    assert!(fed.ends_with('V'), "no magic close: {fed:?}");
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_wedged_task_stops_feeding_the_hardware_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let modem = SimModem::start(dir.path(), "modem1", &[]);
    let (extra, device) = watchdog_board(dir.path());
    let cfg = common::write_config_with(
        dir.path(),
        "gw-hwwd2",
        &no_broker(),
        &extra,
        &[(1, &modem.link, "")],
    );
    let agent = AgentProc::start_with_env(
        &cfg,
        &[
            ("GSMGW_STALE_AFTER_SECS", "2"),
            ("GSMGW_FAULT_WEDGE", "sender:3"),
        ],
    );
    wait_feeds(&device, 2, &agent);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !agent
        .log()
        .contains("not feeding the watchdog: sender silent")
    {
        assert!(Instant::now() < deadline, "{}", agent.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = feeds(&device).len();
    std::thread::sleep(Duration::from_secs(3)); // no event marks "nothing happened"
    assert_eq!(feeds(&device).len(), before, "fed while wedged");
    agent.kill();
}
