//! Test harness of the end-to-end tests, the part that needs the gsmgw binary: simulated modems
//! on real pseudo-terminals (the `gsmgw modemsim` process), the agent as a process, a config
//! for it, and an MQTT subscriber that plays the central server. The rest (mosquitto, SIPp,
//! kamailio, ports, waiting, per-test logs) is the testkit's, re-exported here. Everything waits
//! on events with timeouts. What the processes log goes to a file of the test, printed only if
//! the test fails.
#![allow(dead_code, unused_imports)]

pub mod sipp;

pub use gsmgw_testkit::kamailio;
pub use gsmgw_testkit::logs::ProcLog;
pub use gsmgw_testkit::{Broker, apt_install, free_port, wait_for};

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

/// The gsmgw binary under test.
pub fn gsmgw_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gsmgw")
}

/// A simulated modem: a `gsmgw modemsim` process on a pseudo-terminal.
pub struct SimModem {
    child: Child,
    log: ProcLog,
    /// The port link the agent opens.
    pub link: PathBuf,
    /// The control socket.
    pub control: PathBuf,
}

impl SimModem {
    /// Starts a simulated modem with extra `gsmgw modemsim` flags; waits for its port.
    pub fn start(dir: &Path, name: &str, args: &[&str]) -> SimModem {
        let link = dir.join(name);
        let control = dir.join(format!("{name}.sock"));
        let log = ProcLog::new(&format!("modemsim-{name}"));
        let child = Command::new(gsmgw_bin())
            .arg("modemsim")
            .arg("--link")
            .arg(&link)
            .arg("--control")
            .arg(&control)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log.stdio())
            .spawn()
            .expect("start gsmgw modemsim");
        let (l, c) = (link.clone(), control.clone());
        wait_for(
            Duration::from_secs(10),
            "the simulated modem's port",
            || (l.exists() && c.exists()).then_some(()),
        );
        SimModem {
            child,
            log,
            link,
            control,
        }
    }

    /// Messages stored on the simulated modem now (SM, ME and SR).
    pub fn stored_count(&self) -> u64 {
        let st = self.control(serde_json::json!({"op": "state"}));
        ["SM", "ME", "SR"]
            .iter()
            .map(|s| st["sms"]["storages"][s]["used"].as_u64().unwrap_or(0))
            .sum()
    }

    /// Sends one control message and returns the reply.
    pub fn control(&self, msg: Value) -> Value {
        let mut s = UnixStream::connect(&self.control).expect("connect control socket");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        writeln!(s, "{msg}").expect("write control");
        let mut line = String::new();
        BufReader::new(&s)
            .read_line(&mut line)
            .expect("read control reply");
        serde_json::from_str(&line).expect("control reply is JSON")
    }
}

impl Drop for SimModem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent, run as `gsmgw run --config FILE`.
pub struct AgentProc {
    child: Child,
    log: ProcLog,
}

impl AgentProc {
    /// Starts the agent.
    /// Its log (stderr) goes to the test's `agent.log` (`agent-2.log` for a second one ...).
    pub fn start(config: &Path) -> AgentProc {
        Self::spawn(config, Some("info"))
    }

    /// Like [`AgentProc::start`], at the agent's default log level (no `GSMGW_LOG`).
    pub fn start_default_level(config: &Path) -> AgentProc {
        Self::spawn(config, None)
    }

    /// Like [`AgentProc::start`], with these environment variables set.
    #[allow(dead_code)]
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> AgentProc {
        Self::spawn_env(config, Some("info"), env)
    }

    fn spawn(config: &Path, level: Option<&str>) -> AgentProc {
        Self::spawn_env(config, level, &[])
    }

    fn spawn_env(config: &Path, level: Option<&str>, env: &[(&str, &str)]) -> AgentProc {
        let log = ProcLog::new("agent");
        let mut cmd = Command::new(gsmgw_bin());
        cmd.arg("run").arg("--config").arg(config);
        match level {
            Some(l) => cmd.env("GSMGW_LOG", l),
            None => cmd.env_remove("GSMGW_LOG"),
        };
        cmd.envs(env.iter().copied());
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.stdio())
            .spawn()
            .expect("start gsmgw run");
        AgentProc { child, log }
    }

    /// What the agent logged so far.
    pub fn log(&self) -> String {
        self.log.read()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The agent's process id (for /proc measurements).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the agent to stop (SIGTERM) and waits for it; returns its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.stop()
    }

    /// Like [`AgentProc::terminate`], keeping the handle (to read its log afterwards).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not stop on SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the agent hard (a power cut, as far as the broker is concerned).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a gsmgw config for the given modems (slot, port link) into `dir`.
pub fn write_config(dir: &Path, gateway: &str, mqtt_url: &str, modems: &[(u16, &Path)]) -> PathBuf {
    let modems: Vec<(u16, &Path, &str)> = modems.iter().map(|(s, p)| (*s, *p, "")).collect();
    write_config_with(dir, gateway, mqtt_url, "", &modems)
}

/// Like [`write_config`], with extra `[gateway]` lines and extra lines per modem.
pub fn write_config_with(
    dir: &Path,
    gateway: &str,
    mqtt_url: &str,
    gateway_extra: &str,
    modems: &[(u16, &Path, &str)],
) -> PathBuf {
    let mut text = format!(
        "[gateway]\nid = \"{gateway}\"\ndata_dir = \"{}\"\n{gateway_extra}\n\n[mqtt]\nurl = \"{mqtt_url}\"\nkeep_alive_secs = 5\n",
        dir.join("data").display()
    );
    for (slot, port, extra) in modems {
        text.push_str(&format!(
            "\n[[modem]]\nslot = {slot}\nport = \"{}\"\n{extra}\n",
            port.display()
        ));
    }
    text.push_str("\n[console]\ndevice = \"none\"\n");
    let path = dir.join("gsmgw.toml");
    std::fs::write(&path, text).expect("write config");
    // Private, as a config with secrets should be (the agent warns about a readable one).
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod config");
    path
}

/// An MQTT client playing the central server.
pub struct Central {
    client: AsyncClient,
    rx: tokio::sync::mpsc::UnboundedReceiver<(String, Value, bool)>,
    /// Everything received so far, in order (for assertions on sequences).
    pub log: Vec<(String, Value)>,
    /// Received and not yet matched by `expect`, in order.
    backlog: Vec<(String, Value)>,
}

impl Central {
    /// Connects to the broker and subscribes to `filter`.
    pub async fn connect(port: u16, filter: &str) -> Central {
        let id = format!("central-{}", std::process::id() ^ free_port() as u32);
        Self::connect_as(port, filter, &id, true).await
    }

    /// Like `connect`, with a client id and session kind of our own (a persistent session
    /// keeps receiving across broker restarts).
    pub async fn connect_as(port: u16, filter: &str, id: &str, clean: bool) -> Central {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_clean_session(clean);
        o.set_max_packet_size(1024 * 1024, 1024 * 1024);
        Self::start(o, filter).await
    }

    /// Like `connect`, for sending commands of up to 300 MiB (oversized-command tests).
    pub async fn connect_big(port: u16, filter: &str) -> Central {
        let id = format!("central-big-{}", std::process::id() ^ free_port() as u32);
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        // Its own commands come back on the filter too.
        o.set_max_packet_size(300 * 1024 * 1024, 300 * 1024 * 1024);
        Self::start(o, filter).await
    }

    /// Connects with `o`, subscribes to `filter` and collects what arrives.
    async fn start(o: MqttOptions, filter: &str) -> Central {
        let (client, mut el) = AsyncClient::new(o, 64);
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let v = serde_json::from_slice(&p.payload)
                            .unwrap_or(Value::String(String::from_utf8_lossy(&p.payload).into()));
                        if tx.send((p.topic.clone(), v, p.retain)).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Central {
            client,
            rx,
            log: Vec::new(),
            backlog: Vec::new(),
        }
    }

    /// Publishes raw bytes (QoS 1).
    pub async fn send_bytes(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
    }

    /// Publishes a command payload (QoS 1).
    pub async fn send(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .expect("publish");
    }

    /// Waits for a message on `topic` whose payload satisfies `pred`. Per topic, messages are
    /// taken in order: a match consumes it and every earlier message of the same topic;
    /// messages of other topics wait for their own `expect`.
    pub async fn expect(
        &mut self,
        topic: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(i) = self.backlog.iter().position(|(t, v)| t == topic && pred(v)) {
            let (_, v) = self.backlog.remove(i);
            let mut k = 0;
            self.backlog.retain(|(t, _)| {
                k += 1;
                !(t == topic && k <= i)
            });
            return v;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((t, v, _))) => {
                    self.log.push((t.clone(), v.clone()));
                    if t == topic && pred(&v) {
                        self.backlog.retain(|(bt, _)| bt != topic);
                        return v;
                    }
                    self.backlog.push((t, v));
                }
                _ => panic!(
                    "no matching message on {topic} within {timeout:?}; unmatched:\n{}",
                    self.backlog
                        .iter()
                        .map(|(t, v)| format!("{t}: {v}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

impl Central {
    /// Like `connect`, logging in to the broker as `user` with `pass`.
    pub async fn connect_auth(port: u16, filter: &str, user: &str, pass: &str) -> Central {
        let id = format!("central-auth-{}", std::process::id() ^ free_port() as u32);
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_credentials(user, pass);
        o.set_max_packet_size(1024 * 1024, 1024 * 1024);
        Self::start(o, filter).await
    }
}
