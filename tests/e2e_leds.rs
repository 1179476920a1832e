//! Status LEDs through a fake `/sys/class/leds` tree: the agent writes the kernel's triggers
//! (heartbeat, timer blinks, steady on/off) as a modem starts, becomes ready, is unplugged,
//! as the broker goes and comes back, and when the agent stops; a missing LED is one warning.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{AgentProc, Broker, SimModem, write_config_with};
use serde_json::json;

/// A directory as the kernel makes one for an LED.
fn fake_led(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for f in ["trigger", "brightness", "delay_on", "delay_off"] {
        std::fs::write(d.join(f), "").unwrap();
    }
    std::fs::write(d.join("max_brightness"), "255\n").unwrap();
    d
}

/// What the LED shows, read back the way the kernel would act on it.
fn shows(d: &Path) -> String {
    let r = |f: &str| {
        std::fs::read_to_string(d.join(f))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    match r("trigger").as_str() {
        "heartbeat" => "heartbeat".into(),
        "timer" if r("delay_on") == "1000" && r("delay_off") == "1000" => "slow blink".into(),
        "timer" if r("delay_on") == "100" && r("delay_off") == "100" => "fast blink".into(),
        "none" if r("brightness") == "255" => "on".into(),
        "none" if r("brightness") == "0" => "off".into(),
        other => format!("trigger {other:?}"),
    }
}

fn wait_shows(d: &Path, want: &str, timeout: Duration, log: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = shows(d);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} shows {now}, not {want}; agent log:\n{}",
            d.display(),
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_led_pattern_follows_modems_the_broker_and_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let leds = dir.path().join("leds");
    let (sys, up, m1, m2) = (
        fake_led(&leds, "sys"),
        fake_led(&leds, "up"),
        fake_led(&leds, "m1"),
        fake_led(&leds, "m2"),
    );
    let profile = dir.path().join("board.toml");
    std::fs::write(
        &profile,
        format!(
            "name = \"test-board\"\n\
             [[led]]\nrole = \"system\"\nsysfs = \"{}\"\n\
             [[led]]\nrole = \"uplink\"\nsysfs = \"{}\"\n\
             [[led]]\nrole = \"modem\"\nslot = 1\nsysfs = \"{}\"\n\
             [[led]]\nrole = \"modem\"\nslot = 2\nsysfs = \"{}\"\n\
             [[led]]\nrole = \"modem\"\nslot = 3\nsysfs = \"{}\"\n",
            sys.display(),
            up.display(),
            m1.display(),
            m2.display(),
            leds.join("not-there").display()
        ),
    )
    .unwrap();
    let mut broker = Broker::start();
    // The SIM stays busy for a while: the modem is initializing long enough to be seen.
    let modem = SimModem::start(dir.path(), "modem1", &["--sim-busy-secs", "4"]);
    let missing = dir.path().join("ttyUSB-missing");
    let cfg = write_config_with(
        dir.path(),
        "gw-leds",
        &broker.url(),
        &format!("board_profile = \"{}\"", profile.display()),
        &[(1, &modem.link, ""), (2, &missing, "")],
    );
    let mut agent = AgentProc::start(&cfg);
    let t = Duration::from_secs(30);

    wait_shows(&sys, "heartbeat", t, || agent.log());
    wait_shows(&m1, "slow blink", t, || agent.log());
    wait_shows(&m1, "on", t, || agent.log());
    wait_shows(&m2, "fast blink", t, || agent.log());
    wait_shows(&up, "on", t, || agent.log());

    broker.stop();
    wait_shows(&up, "slow blink", t, || agent.log());
    broker.restart();
    wait_shows(&up, "on", t, || agent.log());

    assert_eq!(modem.control(json!({"op": "unplug"}))["ok"], true);
    wait_shows(&m1, "fast blink", t, || agent.log());
    assert_eq!(modem.control(json!({"op": "replug"}))["ok"], true);
    wait_shows(&m1, "on", t, || agent.log());

    assert!(agent.stop().success(), "{}", agent.log());
    assert_eq!(shows(&sys), "off");
    let log = agent.log();
    assert_eq!(
        log.matches("status LED cannot be set").count(),
        1,
        "one warning for the missing LED:\n{log}"
    );
}
