//! A mosquitto of our own on a free 127.0.0.1 port, with its own config and data dir: anonymous
//! (the default), with users (`password_file`, made with `mosquitto_passwd`), with a TLS
//! listener, with persistence, or with any other config line. Its log goes to a log file of the
//! test ([`crate::logs`]). Stopped when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::logs::ProcLog;

/// The mosquitto binary (Debian puts it in /usr/sbin, which is not always on PATH).
pub fn mosquitto_path() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("mosquitto")
}

/// A TLS listener: the broker's certificate and key, and the CA it trusts for client
/// certificates.
#[derive(Debug, Clone)]
pub struct Tls {
    /// `cafile`.
    pub cafile: PathBuf,
    /// `certfile`.
    pub certfile: PathBuf,
    /// `keyfile`.
    pub keyfile: PathBuf,
    /// `require_certificate`: clients must show a certificate signed by `cafile`.
    pub require_certificate: bool,
}

/// How to start a broker; [`Mosquitto::start`] starts it.
#[derive(Debug, Clone, Default)]
pub struct Mosquitto {
    users: Vec<(String, String)>,
    tls: Option<Tls>,
    persistence: bool,
    lines: Vec<String>,
}

impl Mosquitto {
    /// Anonymous clients, no persistence, plain MQTT.
    pub fn new() -> Mosquitto {
        Mosquitto::default()
    }

    /// Only these users (name, password) may connect (`allow_anonymous false`).
    pub fn users(mut self, users: &[(&str, &str)]) -> Mosquitto {
        self.users = users
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect();
        self
    }

    /// Only a TLS listener.
    pub fn tls(mut self, tls: Tls) -> Mosquitto {
        self.tls = Some(tls);
        self
    }

    /// Persistent sessions in the broker's data dir (kept across [`Broker::restart`]).
    pub fn persistence(mut self) -> Mosquitto {
        self.persistence = true;
        self
    }

    /// Any other `mosquitto.conf` line.
    pub fn line(mut self, line: &str) -> Mosquitto {
        self.lines.push(line.to_string());
        self
    }

    /// Starts it and waits until it accepts connections; panics if it does not.
    pub fn start(self) -> Broker {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Mosquitto::start`], with an error instead of a panic (for benches).
    pub fn try_start(self) -> Result<Broker, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let port = crate::free_port();
        let d = dir.path();
        let log = ProcLog::new("mosquitto");
        let mut conf = format!("listener {port} 127.0.0.1\n");
        if let Some(t) = &self.tls {
            conf.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                t.cafile.display(),
                t.certfile.display(),
                t.keyfile.display(),
                t.require_certificate
            ));
        }
        if self.users.is_empty() {
            conf.push_str("allow_anonymous true\n");
        } else {
            let pwfile = d.join("passwd");
            for (i, (user, pass)) in self.users.iter().enumerate() {
                let mut cmd = Command::new("mosquitto_passwd");
                cmd.arg("-b");
                if i == 0 {
                    cmd.arg("-c");
                }
                let st = cmd
                    .arg(&pwfile)
                    .arg(user)
                    .arg(pass)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map_err(|e| {
                        format!("run mosquitto_passwd (apt-get install -y mosquitto): {e}")
                    })?;
                if !st.success() {
                    return Err("mosquitto_passwd failed".into());
                }
            }
            conf.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                pwfile.display()
            ));
        }
        if self.persistence {
            conf.push_str(&format!(
                "persistence true\npersistence_location {}/\n",
                d.display()
            ));
        } else {
            conf.push_str("persistence false\n");
        }
        for l in &self.lines {
            conf.push_str(l);
            conf.push('\n');
        }
        conf.push_str(&format!(
            "log_dest file {}\n# run as root (CI): keep root, so the data dir stays writable\nuser root\n",
            log.path().display()
        ));
        let conf_path = d.join("mosquitto.conf");
        std::fs::write(&conf_path, conf).map_err(|e| format!("write mosquitto.conf: {e}"))?;
        let mut b = Broker {
            child: None,
            port,
            tls: self.tls.is_some(),
            conf: conf_path,
            log,
            _dir: dir,
        };
        b.try_restart()?;
        Ok(b)
    }
}

/// A running mosquitto (stopped on drop).
pub struct Broker {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    tls: bool,
    conf: PathBuf,
    log: ProcLog,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// Anonymous clients and persistent sessions (a restart keeps them), up to 100000 queued
    /// messages per client: the broker of the end-to-end tests.
    pub fn start() -> Broker {
        Mosquitto::new()
            .persistence()
            .line("max_queued_messages 100000")
            .start()
    }

    /// Only `users` (name, password) may connect.
    pub fn start_auth(users: &[(&str, &str)]) -> Broker {
        Mosquitto::new().users(users).start()
    }

    /// The broker's URL for a gsmgw config (`mqtts://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// What the broker logged (for failure messages).
    pub fn log(&self) -> String {
        self.log.read()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        crate::tail_lines(&self.log(), lines)
    }

    /// Stops the broker cleanly (SIGTERM: it saves its persistent sessions); the port stays
    /// reserved for `restart`.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::terminate(&mut c, Duration::from_secs(10));
        }
    }

    /// Starts (again) on the same port, with the same config.
    pub fn restart(&mut self) {
        self.try_restart().unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_restart(&mut self) -> Result<(), String> {
        self.stop();
        let child = Command::new(mosquitto_path())
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log.stdio())
            .spawn()
            .map_err(|e| {
                format!("start mosquitto (install it: apt-get install -y mosquitto): {e}")
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!(
                    "mosquitto exited ({status}):\n{}",
                    self.log_tail(20)
                ));
            }
            if Instant::now() > deadline {
                return Err("timed out waiting for mosquitto to listen".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
