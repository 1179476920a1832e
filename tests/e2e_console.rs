//! The technician console on a pseudo-terminal, driven like picocom would: login, lockout,
//! first password, idle logout, every command, garbage, configuration changes refused and
//! saved, and MQTT credentials changed live against a broker that requires them.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{AgentProc, Broker, Central, SimModem, gsmgw_bin};

const T: Duration = Duration::from_secs(30);

/// The terminal side of a pseudo-terminal; the agent gets the other side's path.
struct Pty {
    master: File,
    _slave: OwnedFd,
    path: PathBuf,
    seen: Arc<Mutex<Vec<u8>>>,
    cursor: usize,
}

impl Pty {
    fn open() -> Pty {
        let pty = gsmgw_testkit::pty::open_pair();
        let (master, path) = (pty.master, pty.path);
        let mut reader = master.try_clone().expect("clone master");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            master,
            _slave: pty.slave,
            path,
            seen,
            cursor: 0,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to the console");
    }

    /// Types a line as picocom sends it (CR).
    fn line(&mut self, text: &str) {
        self.send(text.as_bytes());
        self.send(b"\r");
    }

    fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits for `pat` after what was already matched; returns the text up to its end.
    fn expect(&mut self, pat: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let seen = self.seen.lock().unwrap();
                let tail = &seen[self.cursor..];
                if let Some(i) = tail.windows(pat.len()).position(|w| w == pat.as_bytes()) {
                    let out = String::from_utf8_lossy(&tail[..i + pat.len()]).into_owned();
                    self.cursor += i + pat.len();
                    return out;
                }
            }
            assert!(
                Instant::now() < deadline,
                "console did not show {pat:?} within {timeout:?}; after the last match it showed:\n{}",
                String::from_utf8_lossy(&self.seen.lock().unwrap()[self.cursor..])
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a command and returns its output (up to the next prompt).
    fn run(&mut self, prompt: &str, cmd: &str) -> String {
        self.line(cmd);
        self.expect(prompt, T)
    }
}

/// `gsmgw passwd-hash` with the password on stdin.
fn hash_of(password: &str) -> String {
    let mut child = Command::new(gsmgw_bin())
        .arg("passwd-hash")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gsmgw passwd-hash");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let h = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(h.starts_with("$argon2id$"), "{h}");
    h
}

fn write_cfg(
    dir: &Path,
    gw: &str,
    mqtt: &str,
    modem: &Path,
    console_dev: &Path,
    console_extra: &str,
) -> PathBuf {
    let text = format!(
        "# written by e2e_console\n[gateway]\nid = \"{gw}\"\ndata_dir = \"{}\"\n\n[mqtt]\n{mqtt}\nkeep_alive_secs = 5\n\n[[modem]]\nslot = 1\nport = \"{}\"\n\n[console]\ndevice = \"{}\" # the technician's cable\n{console_extra}\n",
        dir.join("data").display(),
        modem.display(),
        console_dev.display()
    );
    let path = dir.join("gsmgw.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// A broker, one simulated modem and an agent whose console (password `tech-pass-1`, MQTT
/// credentials gw / mqtt-secret) is on a pty, logged in at prompt `{gw}> `.
fn logged_in(
    gw: &str,
) -> (
    tempfile::TempDir,
    Broker,
    SimModem,
    Pty,
    std::path::PathBuf,
    AgentProc,
) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &[]);
    let mut pty = Pty::open();
    let hash = hash_of("tech-pass-1");
    let cfg = write_cfg(
        dir.path(),
        gw,
        &format!(
            "url = \"{}\"\nusername = \"gw\"\npassword = \"mqtt-secret\"",
            broker.url()
        ),
        &sim.link,
        &pty.path,
        &format!("password_hash = \"{hash}\""),
    );
    let agent = AgentProc::start(&cfg);
    login(&mut pty, "tech-pass-1", &format!("{gw}> "));
    (dir, broker, sim, pty, cfg, agent)
}

fn login(pty: &mut Pty, password: &str, prompt: &str) {
    pty.expect("Password: ", T);
    pty.line(password);
    pty.expect("logged in", T);
    pty.expect(prompt, T);
}

fn wait_ready(pty: &mut Pty, prompt: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = pty.run(prompt, "modems");
        // The `modems` table: a row starting with the slot number and its state.
        if out
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["1", "ready"]))
        {
            return;
        }
        assert!(Instant::now() < deadline, "modem never ready: {out}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn wrong_passwords_slow_down_then_lock_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &[]);
    let mut pty = Pty::open();
    let hash = hash_of("right-password");
    let cfg = write_cfg(
        dir.path(),
        "gw-lock",
        &format!("url = \"{}\"", broker.url()),
        &sim.link,
        &pty.path,
        &format!("password_hash = \"{hash}\""),
    );
    let agent = AgentProc::start(&cfg);
    pty.expect("gw-lock console", T);
    let start = Instant::now();
    for i in 1..=5 {
        pty.expect("Password: ", T);
        pty.line(&format!("guess-{i}"));
        pty.expect("wrong password", T);
    }
    // Delays of 1, 2, 4 and 8 s after the first four failures.
    assert!(
        start.elapsed() >= Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    pty.expect("console locked", T);
    // The right password is not even checked while locked.
    pty.line("right-password");
    pty.expect("console locked", T);
    assert!(!pty.transcript().contains("logged in"));
    // Nothing typed at the password prompt is echoed.
    assert!(!pty.transcript().contains("guess-"));

    // A restart (a power cut, here) does not lift the lockout: it is kept in the store.
    agent.kill();
    let _agent = AgentProc::start(&cfg);
    pty.expect("gw-lock console", T);
    let locked = pty.expect("console locked", T);
    assert!(!locked.contains("Password: "), "{locked}");
    pty.line("right-password");
    pty.expect("console locked", T);
    assert!(!pty.transcript().contains("logged in"));
}

#[test]
fn first_login_chooses_a_password_and_idle_sessions_log_out() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sim = SimModem::start(dir.path(), "modem1", &[]);
    let mut pty = Pty::open();
    let cfg = write_cfg(
        dir.path(),
        "gw-new",
        &format!("url = \"{}\"", broker.url()),
        &sim.link,
        &pty.path,
        "idle_logout_secs = 30",
    );
    let _agent = AgentProc::start(&cfg);
    pty.expect("No console password is set", T);
    pty.expect("New password: ", T);
    pty.line("short");
    pty.expect("Again: ", T);
    pty.line("short");
    pty.expect("too short", T);
    pty.expect("New password: ", T);
    pty.line("field-pass-1");
    pty.expect("Again: ", T);
    pty.line("field-pass-2");
    pty.expect("differ", T);
    pty.expect("New password: ", T);
    pty.line("field-pass-1");
    pty.expect("Again: ", T);
    pty.line("field-pass-1");
    pty.expect("password set (stored in", T);
    pty.expect("gw-new> ", T);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("password_hash = \"$argon2id$"), "{text}");
    assert!(
        text.contains("# the technician's cable"),
        "comments kept: {text}"
    );
    let check = Command::new(gsmgw_bin())
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    // Idle for the configured 30 s: logged out, and the new password is asked for.
    let t0 = Instant::now();
    pty.expect("idle for 30 s: logged out", Duration::from_secs(45));
    assert!(t0.elapsed() >= Duration::from_secs(25));
    pty.expect("Password: ", T);
    pty.line("field-pass-1");
    pty.expect("logged in", T);
    pty.expect("gw-new> ", T);
    // Ctrl-D logs out too.
    pty.send(b"\x04");
    pty.expect("bye", T);
    pty.expect("Password: ", T);
}

#[test]
fn every_command_and_garbage_over_the_serial_console() {
    let (_dir, broker, _sim, mut pty, cfg, _agent) = logged_in("gw-con");
    let p = "gw-con> ";

    let help = pty.run(p, "help");
    for c in [
        "status",
        "modems",
        "modem N [--json]",
        "at N CMD",
        "sms send",
        "sms recent",
        "queue",
        "config show",
        "reset modem N",
        "log [N]",
        "passwd",
        "exit",
        "campaign",
        "calls",
        "ussd N CODE",
    ] {
        assert!(help.contains(c), "help lacks {c}: {help}");
    }
    wait_ready(&mut pty, p);
    let status = pty.run(p, "status");
    for s in [
        "version",
        "uptime",
        "mqtt    connected",
        "outbox",
        "disk",
        "free of",
        "1 ready",
        "sip     off",
        "calls   0 in progress",
    ] {
        assert!(status.contains(s), "status lacks {s}: {status}");
    }
    let calls = pty.run(p, "calls");
    assert!(calls.contains("no calls in progress"), "{calls}");
    let m = pty.run(p, "modem 1");
    assert!(
        m.contains("\r\nimei          ") && m.contains("state         ready"),
        "{m}"
    );
    let m = pty.run(p, "modem 1 --json");
    assert!(m.contains("\"imei\""), "{m}");
    assert!(pty.run(p, "modem 9").contains("no modem in slot 9"));
    let at = pty.run(p, "at 1 AT+CSQ");
    assert!(at.contains("+CSQ:") && at.contains("OK"), "{at}");
    assert!(pty.run(p, "at 1 ATI").contains("OK"));
    assert!(pty.run(p, "at 1 rm -rf").contains("must start with AT"));
    assert!(pty.run(p, "at 7 AT").contains("no enabled modem in slot 7"));
    // USSD: through the same registry as cmd/ussd (the simulator answers every code).
    let u = pty.run(p, "ussd 1 *111#");
    assert!(
        u.contains("> *111#\r\n< [done] Balance: 42.00 UAH") && u.contains("balance: 42.00 UAH"),
        "{u:?}"
    );
    let u = pty.run(p, "ussd 1 *111#;AT+CFUN=0");
    assert!(
        u.contains("refused (bad-field)") && u.contains("only digits"),
        "{u}"
    );
    assert!(pty.run(p, "ussd x *1#").contains("usage: ussd N CODE"));

    // SMS: validated like the MQTT command, queued as a job, then sent by the modem.
    let bad = pty.run(p, "sms send 1 12345 hi");
    assert!(bad.contains("refused (bad-number)"), "{bad}");
    let bad = pty.run(p, "sms send 4 +380501234567 hi");
    assert!(bad.contains("refused (unknown-slot)"), "{bad}");
    let ok = pty.run(p, "sms send auto +380501234567 hello from the console");
    assert!(ok.contains("queued as job"), "{ok}");
    let deadline = Instant::now() + T;
    loop {
        let recent = pty.run(p, "sms recent");
        if recent.contains("sent") && recent.contains("+380501234567") {
            break;
        }
        assert!(Instant::now() < deadline, "SMS never sent: {recent}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let q = pty.run(p, "queue");
    assert!(q.contains("jobs by state") && q.contains("sent"), "{q}");
    let log = pty.run(p, "log 50");
    assert!(log.contains("SMS queued at the console"), "{log}");

    // Campaigns from the central server, controlled at the console.
    assert!(pty.run(p, "campaign list").contains("no campaigns"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let central = rt.block_on(Central::connect(broker.port, "gsmgw/gw-con/reply/#"));
    rt.block_on(central.send(
        "gsmgw/gw-con/cmd/campaign",
        r#"{"request_id":"camp-1","campaign_id":"spring","text":"hi {name}","recipients":[{"to":"+380501234567","fields":{"name":"A"}},{"to":"+380671112233"}],"start_at":"2099-01-01T00:00:00Z"}"#,
    ));
    let deadline = Instant::now() + T;
    let list = loop {
        let list = pty.run(p, "campaign list");
        if list.contains("spring") {
            break list;
        }
        assert!(Instant::now() < deadline, "campaign never listed: {list}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        list.contains("running") && list.contains("queued 2"),
        "{list}"
    );
    assert!(
        pty.run(p, "campaign pause spring")
            .contains("campaign spring: paused")
    );
    assert!(
        pty.run(p, "campaign resume spring")
            .contains("campaign spring: running")
    );
    let cancel = pty.run(p, "campaign cancel spring");
    assert!(
        cancel.contains("cancelled (2 queued messages cancelled)"),
        "{cancel}"
    );
    assert!(
        pty.run(p, "campaign pause nope")
            .contains("refused (unknown-campaign)")
    );
    assert!(pty.run(p, "campaign frob").contains("usage: campaign"));
    drop(central);

    // Configuration: secrets masked; an invalid value refused with the reason, nothing saved.
    let before = std::fs::read(&cfg).unwrap();
    let show = pty.run(p, "config show");
    assert!(show.contains("password = \"********\""), "{show}");
    assert!(
        !show.contains("mqtt-secret") && !show.contains("$argon2"),
        "{show}"
    );
    assert!(pty.run(p, "config get mqtt.password").contains("********"));
    assert!(
        pty.run(p, "config get modem[1].baud")
            .contains("default 115200")
    );
    let refused = pty.run(p, "config set mqtt.keep_alive_secs 2");
    assert!(
        refused.contains("refused, nothing changed") && refused.contains("mqtt.keep_alive_secs"),
        "{refused}"
    );
    let refused = pty.run(p, "config set mqtt.url http://example.invalid");
    assert!(refused.contains("mqtt.url"), "{refused}");
    let refused = pty.run(p, "config set modem[1].baud fast");
    assert!(refused.contains("whole number"), "{refused}");
    assert!(pty.run(p, "config diff").contains("no changes"));
    assert!(pty.run(p, "config save").contains("saved to"));
    assert_eq!(
        std::fs::read(&cfg).unwrap(),
        before,
        "nothing changed on disk"
    );

    let set = pty.run(p, "config set console.idle_logout_secs 900");
    assert!(set.contains("set (not saved"), "{set}");
    let diff = pty.run(p, "config diff");
    assert!(diff.contains("+idle_logout_secs = 900"), "{diff}");
    let apply = pty.run(p, "config apply");
    assert!(
        apply.contains("console: password and idle logout in effect now"),
        "{apply}"
    );
    assert!(apply.contains("not saved yet"), "{apply}");
    let saved = pty.run(p, "config save");
    assert!(saved.contains("saved to"), "{saved}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("idle_logout_secs = 900") && text.contains("# written by e2e_console"));
    let mut bak = cfg.as_os_str().to_owned();
    bak.push(".bak");
    assert_eq!(std::fs::read(PathBuf::from(bak)).unwrap(), before);
    let set = pty.run(p, "config set modem[1].group kyivstar");
    assert!(set.contains("set"), "{set}");
    assert!(
        pty.run(p, "config apply")
            .contains("needs a restart of the agent")
    );
    assert!(pty.run(p, "config revert").contains("thrown away"));

    // Garbage: binary bytes, escape sequences, an overlong line — the console carries on.
    let mut garbage: Vec<u8> = (0u16..512).map(|i| (i * 37 % 256) as u8).collect();
    garbage.retain(|b| !matches!(b, b'\r' | b'\n' | 0x03 | 0x04 | 0x15));
    pty.send(&garbage);
    pty.send(b"\r");
    pty.expect(p, T);
    pty.send(&[b'x'; 5000]);
    let long = pty.run(p, "");
    assert!(long.contains('\x07'), "bell for the overlong line");
    assert!(long.contains("line too long, nothing done"), "{long}");
    // Arrow keys are swallowed; bytes that are not UTF-8 are erased like any character.
    pty.send(b"\x1b[A\x1b[Dsta\xff\xfe\x7f\x7ftus");
    assert!(pty.run(p, "").contains("uptime"));

    // Line editing as terminals send it: DEL or BS, Ctrl-U, Ctrl-C, CRLF.
    pty.send(b"statuz\x7fs\r");
    assert!(pty.expect(p, T).contains("uptime"));
    pty.send(b"statuz\x08s\r\n");
    assert!(pty.expect(p, T).contains("uptime"));
    pty.send(b"reboot everything\x15modems\r");
    assert!(pty.expect(p, T).contains("SLOT  STATE"));
    pty.send(b"reset modem 1\x03");
    pty.expect("^C", T);
    pty.expect(p, T);

    assert!(pty.run(p, "frobnicate").contains("unknown command"));
    let reset = pty.run(p, "reset modem 1");
    assert!(reset.contains("reset started"), "{reset}");
    wait_ready(&mut pty, p);

    // passwd, then log in with the new password.
    pty.line("passwd");
    pty.expect("Current password: ", T);
    pty.line("tech-pass-1");
    pty.expect("New password: ", T);
    pty.line("tech-pass-2");
    pty.expect("Again: ", T);
    pty.line("tech-pass-2");
    pty.expect("password changed (stored in", T);
    pty.expect(p, T);
    pty.line("exit");
    pty.expect("bye", T);
    login(&mut pty, "tech-pass-2", p);
    assert!(
        !pty.transcript().contains("tech-pass"),
        "passwords never echoed"
    );

    // A modem change needs the agent restarted: saved first, then `restart` from here.
    assert!(
        pty.run(p, "config set modem[1].group field-test")
            .contains("set")
    );
    assert!(pty.run(p, "restart").contains("unsaved changes"));
    assert!(pty.run(p, "config save").contains("saved to"));
    pty.line("restart");
    pty.expect("restarting the agent", T);
    pty.expect("gw-con console", T);
    login(&mut pty, "tech-pass-2", p);
    let log = pty.run(p, "log 500");
    assert!(log.matches("agent starting").count() >= 2, "{log}");
    assert!(
        pty.run(p, "config get modem[1].group")
            .contains("field-test")
    );
    wait_ready(&mut pty, p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_mqtt_credentials_are_applied_live() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_auth(&[("gw-auth", "new-pass"), ("central", "central-pass")]);
    let sim = SimModem::start(dir.path(), "modem1", &[]);
    let mut pty = Pty::open();
    let hash = hash_of("tech-pass-1");
    let cfg = write_cfg(
        dir.path(),
        "gw-auth",
        &format!(
            "url = \"{}\"\nusername = \"gw-auth\"\npassword = \"old-pass\"",
            broker.url()
        ),
        &sim.link,
        &pty.path,
        &format!("password_hash = \"{hash}\""),
    );
    let mut central =
        Central::connect_auth(broker.port, "gsmgw/gw-auth/#", "central", "central-pass").await;
    let _agent = AgentProc::start(&cfg);
    let p = "gw-auth> ";
    let mut pty = tokio::task::spawn_blocking(move || {
        login(&mut pty, "tech-pass-1", p);
        wait_ready(&mut pty, p);
        let status = pty.run(p, "status");
        assert!(status.contains("mqtt    not connected"), "{status}");
        assert!(
            pty.run(p, "config set mqtt.password new-pass")
                .contains("set")
        );
        let apply = pty.run(p, "config apply");
        assert!(
            apply.contains("mqtt: applied; uplink reconnected"),
            "{apply}"
        );
        assert!(apply.contains("not saved yet"), "{apply}");
        pty
    })
    .await
    .unwrap();
    let online = central
        .expect("gsmgw/gw-auth/status", T, |v| v["online"] == true)
        .await;
    assert!(online["boot_id"].is_string(), "{online}");
    central
        .expect("gsmgw/gw-auth/modem/1/state", T, |v| v["state"] == "ready")
        .await;
    tokio::task::spawn_blocking(move || {
        let status = pty.run(p, "status");
        assert!(status.contains("mqtt    connected"), "{status}");
        assert!(status.contains("1 ready"), "{status}");
        let log = pty.run(p, "log 100");
        let after = log
            .split("uplink restarting with new MQTT settings")
            .nth(1)
            .unwrap_or_else(|| panic!("no restart in the log: {log}"));
        // The modem kept running: it was not initialised again.
        assert!(!after.contains("initializing"), "{log}");
        assert!(pty.run(p, "config save").contains("saved to"));
        // A typo in the password: the uplink does not connect, and goes back by itself.
        assert!(
            pty.run(p, "config set mqtt.password typo-pass")
                .contains("set")
        );
        pty.line("config apply");
        let apply = pty.expect(p, Duration::from_secs(90));
        assert!(
            apply.contains("mqtt: NOT applied")
                && apply
                    .contains("went back to the previous MQTT settings (reconnected with them)"),
            "{apply}"
        );
        let status = pty.run(p, "status");
        assert!(status.contains("mqtt    connected"), "{status}");
        assert!(pty.run(p, "config revert").contains("thrown away"));
        assert!(pty.run(p, "config apply").contains("nothing to apply"));
    })
    .await
    .unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("password = \"new-pass\""), "{text}");
    assert!(!broker.log().is_empty());
}

/// Hostile input at the console: a line over the bound is refused whole and nothing of it runs
/// (an SMS is not sent shortened); a changed secret shows in `config diff` as changed without
/// its value; a burst of garbage with Ctrl-C, Ctrl-D, escape sequences, NUL and other control
/// bytes neither ends the session nor, after a real logout, counts as failed logins.
#[test]
fn overlong_lines_secrets_in_diff_and_control_bytes_in_garbage() {
    let (_dir, _broker, _sim, mut pty, _cfg, _agent) = logged_in("gw-hostile");
    let p = "gw-hostile> ";

    // 600 bytes of SMS command: refused whole, nothing queued; the next line works.
    let long = format!("sms send auto +380501234567 {}", "a".repeat(600));
    let out = pty.run(p, &long);
    assert!(out.contains("line too long, nothing done"), "{out}");
    assert!(!out.contains("queued"), "{out}");
    let q = pty.run(p, "queue");
    assert!(q.contains("(none)"), "no job: {q}");
    assert!(pty.run(p, "sms recent").contains("no SMS"), "nothing sent");
    assert!(pty.run(p, "status").contains("uptime"));
    // A username over the bound is not saved cut.
    let out = pty.run(p, &format!("config set mqtt.username {}", "u".repeat(600)));
    assert!(out.contains("line too long, nothing done"), "{out}");
    assert!(pty.run(p, "config diff").contains("no changes"));

    // A changed password: shown as changed, never as a value.
    assert!(
        pty.run(p, "config set mqtt.password other-secret")
            .contains("set")
    );
    let diff = pty.run(p, "config diff");
    assert!(
        diff.contains("~mqtt.password = *** → *** (changed)"),
        "{diff}"
    );
    assert!(
        !diff.contains("other-secret") && !diff.contains("mqtt-secret"),
        "{diff}"
    );
    assert!(pty.run(p, "config revert").contains("thrown away"));

    // Garbage with every kind of control byte, lines and Ctrl-D on empty lines inside it: the
    // session carries on.
    let garbage: &[u8] =
        b"\x00\x01ab\x03\r\x04\x1b[Zx\x04\r\x02\x04\r\x04\x1b\x1b[1;5A\x00\r\x04\x07\x0b\x1f\r";
    pty.send(garbage);
    pty.send(b"status\r");
    let out = pty.expect("uptime", T);
    assert!(!out.contains("bye") && !out.contains("Password"), "{out}");
    pty.expect(p, T);

    // A real logout, then a garbage burst at the password prompt: nothing counts as a failed
    // login (no "wrong password", no delay, no lockout); the right password logs in at once.
    pty.send(b"\x04");
    pty.expect("bye", T);
    pty.expect("Password: ", T);
    // Every line of the burst carries a control byte, wherever the agent's reads cut it
    // (a prompt drops what was typed ahead of it): none can be a password.
    let mut burst = Vec::new();
    for _ in 0..3 {
        burst.extend_from_slice(b"\x01\x02guess\r\x1b[A\x00x\r\x04\x04y\r\x03");
        burst.extend_from_slice(&b"z\x01".repeat(400));
        burst.extend_from_slice(b"\r");
    }
    pty.send(&burst);
    pty.expect("garbled input ignored", T);
    // Then the right password, typed again until it meets a prompt of its own (a copy may
    // land in what the agent drops as typed ahead while it still works through the burst).
    let deadline = Instant::now() + T;
    'login: loop {
        pty.line("tech-pass-1");
        let tried = Instant::now();
        while tried.elapsed() < Duration::from_secs(2) {
            if pty.transcript().contains("logged in") {
                break 'login;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            Instant::now() < deadline,
            "never logged in:\n{}",
            pty.transcript()
        );
    }
    pty.expect("logged in", T);
    pty.expect(p, T);
    let t = pty.transcript();
    assert!(
        !t.contains("wrong password") && !t.contains("console locked"),
        "garbage counted as failed logins:\n{t}"
    );
}
