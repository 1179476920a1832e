//! SIPp runs: a scenario file (by default from the workspace's tests/sipp/; the drivers' tests
//! have their own directory, see [`Sipp::scenarios`]) rendered into a temp dir and run on
//! 127.0.0.1, its exit code the verdict. In the voice end-to-end tests it plays the PBX (UAS
//! scenarios `pbx_*.xml`) and the SIP caller (UAC scenarios `caller_*.xml`); in the drivers'
//! tests a registrar and a called party.
//!
//! Scenario variables are passed with `-set` (SIPp 3.6 wants them declared with
//! `<Global variables="..."/>` in the scenario, and refers to them as `[$name]`). SIPp opens the
//! pcap file of `play_pcap_audio` when it parses the scenario and expands no variables there, so
//! [`Sipp::start`] renders the scenario into its temp dir with every `[$name]` inside a
//! `play_pcap_*` attribute replaced by that variable's value (an absolute path).
//!
//! `play_pcap_audio` sends through a raw socket: SIPp must run as root (we do, CI does).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{free_even_udp_ports, free_udp_port, tail};

/// The directory of the workspace's scenario files, tests/sipp/.
pub fn scenario_dir() -> PathBuf {
    let testkit = Path::new(env!("CARGO_MANIFEST_DIR"));
    testkit
        .parent()
        .unwrap_or(testkit)
        .join("tests")
        .join("sipp")
}

fn find_sipp() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SIPP") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
    }
    crate::find_program("sipp", &["/usr/bin", "/usr/local/bin"])
}

/// The `sipp` binary ($SIPP, else from PATH). If there is none, installs Debian's sip-tester
/// with apt-get (tests run as root); panics if that does not give one either, or if it was built
/// without pcap play support.
pub fn ensure_sipp() -> PathBuf {
    static SIPP: OnceLock<PathBuf> = OnceLock::new();
    SIPP.get_or_init(|| {
        let sipp = find_sipp().or_else(install_sipp).unwrap_or_else(|| {
            panic!(
                "sipp not found and `apt-get install -y sip-tester` did not provide it: install \
                 SIPp 3.6 with pcap support (Debian package sip-tester) or set SIPP=/path/to/sipp"
            )
        });
        let out = Command::new(&sipp)
            .arg("-v")
            .output()
            .unwrap_or_else(|e| panic!("run {} -v: {e}", sipp.display()));
        let version = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            version.contains("PCAP"),
            "{} lacks pcap play support (play_pcap_audio): {}",
            sipp.display(),
            version.trim()
        );
        sipp
    })
    .clone()
}

fn install_sipp() -> Option<PathBuf> {
    crate::apt_install("sip-tester");
    find_sipp()
}

/// A SIPp run to be started: scenario tests/sipp/NAME.xml, on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Sipp {
    scenario: String,
    scenarios: PathBuf,
    local_ip: String,
    local_port: Option<u16>,
    media_port: Option<u16>,
    remote: Option<String>,
    calls: u32,
    vars: Vec<(String, String)>,
    service: Option<String>,
    timeout: Duration,
    args: Vec<String>,
    digest: Option<(String, String)>,
    edits: Vec<(String, String)>,
}

impl Sipp {
    /// Scenario `name` (tests/sipp/NAME.xml, `.xml` optional). Defaults: a free local port, a
    /// free even media port, one call, `-timeout 30s -timeout_error`.
    pub fn new(name: &str) -> Sipp {
        Sipp {
            scenario: name.trim_end_matches(".xml").to_string(),
            scenarios: scenario_dir(),
            local_ip: "127.0.0.1".to_string(),
            local_port: None,
            media_port: None,
            remote: None,
            calls: 1,
            vars: Vec::new(),
            service: None,
            timeout: Duration::from_secs(30),
            args: Vec::new(),
            digest: None,
            edits: Vec::new(),
        }
    }

    /// Takes the scenario (and relative pcap paths) from `dir` instead of tests/sipp/.
    pub fn scenarios(mut self, dir: impl Into<PathBuf>) -> Sipp {
        self.scenarios = dir.into();
        self
    }

    /// Replaces the first `from` (which must occur in the scenario) by `to` before it runs: a variant of
    /// a scenario without another file (another SDP, another expected status).
    pub fn edit(mut self, from: &str, to: &str) -> Sipp {
        self.edits.push((from.to_string(), to.to_string()));
        self
    }

    /// A caller that answers the gateway's digest challenge to its INVITE with these
    /// credentials (see [`with_digest_answer`]): what a PBX on a static trunk does.
    pub fn digest(mut self, user: &str, password: &str) -> Sipp {
        self.digest = Some((user.to_string(), password.to_string()));
        self
    }

    /// The loopback address SIPp binds (default 127.0.0.1; 127.0.0.2 plays another host).
    pub fn local_ip(mut self, ip: &str) -> Sipp {
        assert!(ip.starts_with("127."), "tests stay on loopback");
        self.local_ip = ip.to_string();
        self
    }

    /// SIP port SIPp binds on 127.0.0.1 (`-p`); for a UAS this is the PBX address the agent
    /// is configured with.
    pub fn local_port(mut self, port: u16) -> Sipp {
        self.local_port = Some(port);
        self
    }

    /// Media port (`-mp`): SIPp binds it (and the next three), and `play_pcap_audio` sends from
    /// it. Defaults to a free even port.
    pub fn media_port(mut self, port: u16) -> Sipp {
        self.media_port = Some(port);
        self
    }

    /// The peer, `host:port` (a UAC's target: the agent's SIP address).
    pub fn remote(mut self, addr: impl Into<String>) -> Sipp {
        self.remote = Some(addr.into());
        self
    }

    /// Number of calls (`-m N`); more than one also sets `-l N`, so all run at once.
    pub fn calls(mut self, n: u32) -> Sipp {
        self.calls = n.max(1);
        self
    }

    /// A scenario variable (`-set name value`, `[$name]` in the scenario). Pcap paths given
    /// this way are also written into `play_pcap_*` attributes.
    pub fn var(mut self, name: &str, value: impl ToString) -> Sipp {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_string(), value.to_string()));
        self
    }

    /// The Request-URI user of a UAC (`-s`): the number the SIP caller dials.
    pub fn service(mut self, s: &str) -> Sipp {
        self.service = Some(s.to_string());
        self
    }

    /// Global timeout (`-timeout`, failing with `-timeout_error`); default 30 s.
    pub fn timeout(mut self, d: Duration) -> Sipp {
        self.timeout = d;
        self
    }

    /// Any other SIPp argument.
    pub fn arg(mut self, a: impl Into<String>) -> Sipp {
        self.args.push(a.into());
        self
    }

    /// Renders the scenario and starts SIPp in the foreground (its exit code is the verdict).
    /// For a UAS (no `remote`) waits until its SIP port is bound, so the agent can be started
    /// right after.
    pub fn start(self) -> SippProc {
        let sipp = ensure_sipp();
        let dir = tempfile::Builder::new()
            .prefix(&format!("sipp-{}-", self.scenario))
            .tempdir()
            .expect("tempdir");
        let template = self.scenarios.join(format!("{}.xml", self.scenario));
        let text = std::fs::read_to_string(&template)
            .unwrap_or_else(|e| panic!("read {}: {e}", template.display()));
        let mut text = text;
        for (from, to) in &self.edits {
            assert!(
                text.contains(from.as_str()),
                "scenario {} has no {from:?} to edit",
                self.scenario
            );
            text = text.replacen(from.as_str(), to, 1);
        }
        let text = match &self.digest {
            Some((user, password)) => with_digest_answer(&text, user, password)
                .unwrap_or_else(|e| panic!("scenario {}: {e}", self.scenario)),
            None => text,
        };
        let rendered = render_scenario_in(&text, &self.vars, &self.scenarios)
            .unwrap_or_else(|e| panic!("scenario {}: {e}", self.scenario));
        let scenario = dir.path().join(format!("{}.xml", self.scenario));
        std::fs::write(&scenario, rendered).expect("write the rendered scenario");

        let local_port = self.local_port.unwrap_or_else(free_udp_port);
        // SIPp binds the media port and the next three (audio and video, RTP and RTCP).
        let media_port = self.media_port.unwrap_or_else(|| free_even_udp_ports(4));
        let mut cmd = Command::new(&sipp);
        cmd.arg("-sf")
            .arg(&scenario)
            .args(["-i", &self.local_ip, "-bind_local"])
            .args(["-p", &local_port.to_string()])
            .args(["-mp", &media_port.to_string()])
            .args(["-m", &self.calls.to_string()]);
        if self.calls > 1 {
            cmd.args(["-l", &self.calls.to_string()]);
        }
        let globals = declared_globals(&text);
        for (name, value) in &self.vars {
            if globals.contains(name) {
                cmd.args(["-set", name, value]);
            } else {
                // Only pcap paths may be set without being declared: they were rendered in.
                let used = pcap_attr_spans(&text)
                    .iter()
                    .any(|(a, b)| text[*a..*b].contains(&format!("[${name}]")));
                assert!(
                    used,
                    "scenario {} has no variable {name} (declared: {globals:?})",
                    self.scenario
                );
            }
        }
        if let Some(s) = &self.service {
            cmd.args(["-s", s]);
        }
        let secs = self.timeout.as_secs().max(1);
        cmd.args(["-timeout", &format!("{secs}s"), "-timeout_error"])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(dir.path().join("errors.log"))
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(dir.path().join("messages.log"))
            .arg("-trace_screen")
            .arg("-screen_file")
            .arg(dir.path().join("screen.log"))
            .arg("-nostdin")
            .args(&self.args);
        if let Some(r) = &self.remote {
            cmd.arg(r);
        }
        let stdout = std::fs::File::create(dir.path().join("stdout.log")).expect("stdout.log");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr.log");
        // Printed if the test fails (while SIPp's temp dir is still there).
        for file in ["errors.log", "messages.log", "stderr.log"] {
            crate::logs::watch(
                &format!("sipp {} {file}", self.scenario),
                &dir.path().join(file),
            );
        }
        let child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", sipp.display()));
        let mut p = SippProc {
            child: Some(child),
            dir,
            scenario: self.scenario,
            local_port,
            media_port,
            result: None,
        };
        if self.remote.is_none() {
            p.wait_bound(Duration::from_secs(10));
        }
        p
    }
}

/// A caller scenario that answers a digest challenge: after its first INVITE (the first
/// `<send retrans="500">`) it takes a 407, ACKs it and sends the INVITE again with CSeq 2 and
/// `Proxy-Authorization`; the requests after it move up by one (ACK and CANCEL 2, BYE 3).
pub fn with_digest_answer(text: &str, user: &str, password: &str) -> Result<String, String> {
    let start = text
        .find("  <send retrans=\"500\">")
        .ok_or("no <send retrans=\"500\"> for the INVITE")?;
    let end = text[start..]
        .find("</send>\n")
        .map(|i| start + i + "</send>\n".len())
        .ok_or("the INVITE's <send> is not closed")?;
    let block = &text[start..end];
    let c0 = block
        .find("<![CDATA[")
        .ok_or("no CDATA in the INVITE's <send>")?
        + 9;
    let c1 = block.find("]]>").ok_or("unterminated CDATA")?;
    let cdata = &block[c0..c1];
    let uri = cdata
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("INVITE "))
        .and_then(|l| l.split(' ').next())
        .ok_or("the first <send retrans=\"500\"> is not an INVITE")?;
    let at = cdata.find("CSeq: 1 INVITE").ok_or("no `CSeq: 1 INVITE`")?;
    let indent = &cdata[cdata[..at].rfind('\n').map_or(0, |i| i + 1)..at];
    let second = cdata.replacen(
        "CSeq: 1 INVITE",
        &format!("CSeq: 2 INVITE\n{indent}[authentication username={user} password={password}]"),
        1,
    );
    let challenge = format!(
        r#"
  <!-- Added by the test harness: the gateway challenges the INVITE; ACK the 407, send it again
       with credentials. A proxy on the way may send its own 100 first. -->
  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>

  <send>
    <![CDATA[

      ACK {uri} SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>

  <send retrans="500">
    <![CDATA[{second}]]>
  </send>
"#
    );
    let tail = text[end..]
        .replace("CSeq: 1 ACK", "CSeq: 2 ACK")
        .replace("CSeq: 1 CANCEL", "CSeq: 2 CANCEL")
        .replace("CSeq: 2 BYE", "CSeq: 3 BYE");
    Ok(format!("{}{challenge}{tail}", &text[..end]))
}

/// The variables a scenario declares with `<Global variables="a,b"/>` (the ones `-set` may set).
pub fn declared_globals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("<Global variables=\"") {
        let start = from + i + "<Global variables=\"".len();
        let Some(len) = text[start..].find('"') else {
            break;
        };
        out.extend(
            text[start..start + len]
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
        );
        from = start + len;
    }
    out
}

/// Byte ranges of the values of `play_pcap_audio|video|image="..."` attributes.
fn pcap_attr_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("play_pcap_") {
        let at = from + i;
        let Some(q) = text[at..].find('"') else { break };
        let start = at + q + 1;
        let Some(len) = text[start..].find('"') else {
            break;
        };
        spans.push((start, start + len));
        from = start + len + 1;
    }
    spans
}

/// Replaces `[$name]` inside `play_pcap_*` attributes with the variable's value, made absolute
/// (relative paths are taken from tests/sipp/).
pub fn render_scenario(text: &str, vars: &[(String, String)]) -> Result<String, String> {
    render_scenario_in(text, vars, &scenario_dir())
}

/// [`render_scenario`] with relative pcap paths taken from `dir`.
pub fn render_scenario_in(
    text: &str,
    vars: &[(String, String)],
    dir: &Path,
) -> Result<String, String> {
    let mut out = text.to_string();
    for (a, b) in pcap_attr_spans(text).into_iter().rev() {
        let mut value = text[a..b].to_string();
        for (name, v) in vars {
            value = value.replace(&format!("[${name}]"), v);
        }
        if let Some(i) = value.find("[$") {
            return Err(format!(
                "it plays the pcap {value:?}: set {} with Sipp::var to a pcap file",
                &value[i..]
            ));
        }
        let path = Path::new(&value);
        let path = if path.is_absolute() {
            path.to_path_buf()
        } else {
            dir.join(path)
        };
        if !path.is_file() {
            return Err(format!("pcap file {} does not exist", path.display()));
        }
        out.replace_range(a..b, &path.to_string_lossy());
    }
    Ok(out)
}

/// How a SIPp run ended.
#[derive(Debug, Clone)]
pub struct SippResult {
    /// Exit code 0: every call went through the scenario.
    pub success: bool,
    /// The exit code (None: killed by a signal, or by us at the timeout).
    pub code: Option<i32>,
    /// The tail of SIPp's error and message logs, stderr and final screen.
    pub log: String,
}

impl SippResult {
    /// Panics with the SIP messages if the run failed.
    pub fn assert_success(&self, what: &str) {
        assert!(
            self.success,
            "SIPp {what} failed (exit {:?}):\n{}",
            self.code, self.log
        );
    }
}

/// A running SIPp (killed on drop).
pub struct SippProc {
    child: Option<Child>,
    dir: tempfile::TempDir,
    scenario: String,
    /// Its SIP port on 127.0.0.1.
    pub local_port: u16,
    /// Its media port (`-mp`).
    pub media_port: u16,
    result: Option<SippResult>,
}

impl SippProc {
    /// Its SIP address, `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.local_port)
    }

    /// The directory with its logs and rendered scenario.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn wait_bound(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if UdpSocket::bind(("127.0.0.1", self.local_port)).is_err() {
                return;
            }
            if let Some(r) = self.try_wait() {
                panic!(
                    "SIPp {} exited before binding 127.0.0.1:{} (exit {:?}):\n{}",
                    self.scenario, self.local_port, r.code, r.log
                );
            }
            assert!(
                Instant::now() < deadline,
                "SIPp {} did not bind 127.0.0.1:{} within {timeout:?}:\n{}",
                self.scenario,
                self.local_port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The result if SIPp has exited.
    pub fn try_wait(&mut self) -> Option<SippResult> {
        if self.result.is_none() {
            let child = self.child.as_mut()?;
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                self.result = Some(SippResult {
                    success: st.success(),
                    code: st.code(),
                    log: self.log(),
                });
            }
        }
        self.result.clone()
    }

    /// Waits for SIPp to exit; after `timeout` kills it and reports a failure.
    pub fn wait(&mut self, timeout: Duration) -> SippResult {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.try_wait() {
                return r;
            }
            if Instant::now() >= deadline {
                self.kill();
                let r = SippResult {
                    success: false,
                    code: None,
                    log: format!("(killed: still running after {timeout:?})\n{}", self.log()),
                };
                self.result = Some(r.clone());
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills SIPp (if it still runs).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What SIPp logged so far: the ends of its error log, SIP message log, stderr and screen.
    pub fn log(&self) -> String {
        let d = self.dir.path();
        let mut s = format!(
            "=== SIPp {} (port {}) ===\n",
            self.scenario, self.local_port
        );
        for (title, file, max) in [
            ("errors", "errors.log", 8_000),
            ("messages", "messages.log", 24_000),
            ("stderr", "stderr.log", 4_000),
            ("screen", "screen.log", 4_000),
        ] {
            let text = std::fs::read(d.join(file)).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            if text.trim().is_empty() {
                continue;
            }
            s.push_str(&format!("--- {title} ---\n{}\n", tail(&text, max)));
        }
        s
    }
}

impl Drop for SippProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The values of every line of header `name` in a SIP message's text (case-insensitive).
pub fn header_lines(text: &str, name: &str) -> Vec<String> {
    text.split("\r\n")
        .take_while(|l| !l.is_empty())
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .collect()
}
