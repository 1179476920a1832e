//! SIPp in the voice end-to-end tests: it plays the PBX (UAS scenarios `pbx_*.xml`) and the SIP
//! caller (UAC scenarios `caller_*.xml`) from tests/sipp/. Also here: RTP packets and pcap files
//! for SIPp's `play_pcap_audio`, and [`RtpSink`], a UDP socket that collects the RTP the agent
//! sends and tells what is in it (tone frequency, DTMF digits).
//!
//! Scenario variables are passed with `-set` (SIPp 3.6 wants them declared with
//! `<Global variables="..."/>` in the scenario, and refers to them as `[$name]`). SIPp opens the
//! pcap file of `play_pcap_audio` when it parses the scenario and expands no variables there, so
//! [`Sipp::start`] renders the scenario into its temp dir with every `[$name]` inside a
//! `play_pcap_*` attribute replaced by that variable's value (an absolute path).
//!
//! `play_pcap_audio` sends through a raw socket: SIPp must run as root (we do, CI does).
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Payload type of RFC 4733 telephone events in our SDP.
pub const DTMF_PT: u8 = 101;
/// Payload type of PCMU.
pub const PCMU_PT: u8 = 0;
/// Payload type of PCMA.
pub const PCMA_PT: u8 = 8;

/// The directory of the scenario files.
pub fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/local/bin".into()])
        .map(|d| d.join("sipp"))
        .find(|p| p.is_file())
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
    super::apt_install("sip-tester");
    find_sipp()
}

/// A free UDP port on 127.0.0.1 (bound and released: free now, very likely still free later).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind a UDP port")
        .port()
}

/// An even UDP port `p` on 127.0.0.1 with `p + 1` free as well (an RTP/RTCP pair).
pub fn free_even_udp_port_pair() -> u16 {
    free_even_udp_ports(2)
}

/// An even port `p` with `p .. p + n` all free on 127.0.0.1.
fn free_even_udp_ports(n: u16) -> u16 {
    for _ in 0..200 {
        let first = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
        let p = first.local_addr().expect("local addr").port();
        if p % 2 != 0 || p > u16::MAX - n {
            continue;
        }
        let rest: Vec<_> = (1..n)
            .map(|i| UdpSocket::bind(("127.0.0.1", p + i)))
            .collect();
        if rest.iter().all(|r| r.is_ok()) {
            return p;
        }
    }
    panic!("no {n} consecutive free UDP ports on 127.0.0.1");
}

/// A SIPp run to be started: scenario tests/sipp/NAME.xml, on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Sipp {
    scenario: String,
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
        let template = scenario_dir().join(format!("{}.xml", self.scenario));
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
        let rendered = render_scenario(&text, &self.vars)
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
            scenario_dir().join(path)
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

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = s.len() - max;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

// ---------------------------------------------------------------------------------------------
// G.711

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// G.711 μ-law encoder.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && pcm & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// G.711 μ-law decoder.
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    (if u & 0x80 != 0 { -magnitude } else { magnitude }) as i16
}

/// G.711 A-law decoder.
pub fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let exponent = i32::from((a >> 4) & 0x07);
    let mut t = i32::from(a & 0x0F) << 4;
    t += 8;
    if exponent > 0 {
        t = (t + 0x100) << (exponent - 1);
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

// ---------------------------------------------------------------------------------------------
// RTP packets and pcap files

/// One RTP packet (version 2, no CSRC, no extension).
pub fn rtp_packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push((pt & 0x7F) | if marker { 0x80 } else { 0 });
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Builds one RTP stream (8 kHz, 20 ms packets) piece by piece, keeping sequence numbers,
/// timestamps and the tone's phase continuous. Each returned packet takes one 20 ms slot in
/// [`write_rtp_pcap`], and the timestamp advances by 160 per packet, DTMF included.
#[derive(Debug, Clone)]
pub struct RtpStream {
    /// The stream's SSRC.
    pub ssrc: u32,
    seq: u16,
    ts: u32,
    sample: u64,
    first: bool,
}

impl RtpStream {
    /// A new stream.
    pub fn new(ssrc: u32) -> RtpStream {
        RtpStream {
            ssrc,
            seq: 1000,
            ts: 16_000,
            sample: 0,
            first: true,
        }
    }

    fn audio(&mut self, samples: &[i16]) -> Vec<u8> {
        let payload: Vec<u8> = samples.iter().map(|s| linear_to_ulaw(*s)).collect();
        let p = rtp_packet(PCMU_PT, self.first, self.seq, self.ts, self.ssrc, &payload);
        self.first = false;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        p
    }

    /// PCMU packets of a sine tone; `amplitude` is a fraction of full scale (0..=1).
    pub fn tone(&mut self, freq_hz: f64, seconds: f64, amplitude: f64) -> Vec<Vec<u8>> {
        let n = (seconds * 50.0).round() as usize;
        let amp = amplitude.clamp(0.0, 1.0) * 32767.0;
        (0..n)
            .map(|_| {
                let samples: Vec<i16> = (0..160)
                    .map(|_| {
                        let t = self.sample as f64 / 8000.0;
                        self.sample += 1;
                        (amp * (2.0 * std::f64::consts::PI * freq_hz * t).sin()).round() as i16
                    })
                    .collect();
                self.audio(&samples)
            })
            .collect()
    }

    /// PCMU packets of silence.
    pub fn silence(&mut self, seconds: f64) -> Vec<Vec<u8>> {
        let n = (seconds * 50.0).round() as usize;
        self.sample += 160 * n as u64;
        (0..n).map(|_| self.audio(&[0; 160])).collect()
    }

    /// One RFC 4733 event (100 ms): five packets with durations 160..800 (M bit on the first),
    /// then three end packets (E bit) with duration 800, all with the event's timestamp.
    pub fn digit(&mut self, digit: char, pt: u8) -> Vec<Vec<u8>> {
        let event = dtmf_event(digit).unwrap_or_else(|| panic!("not a DTMF digit: {digit:?}"));
        let ts = self.ts;
        let mut out = Vec::new();
        for k in 1..=8u16 {
            let end = k > 5;
            let duration = 160 * k.min(5);
            let payload = [
                event,
                if end { 0x80 } else { 0 } | 10, // E bit, volume -10 dBm0
                (duration >> 8) as u8,
                duration as u8,
            ];
            out.push(rtp_packet(pt, k == 1, self.seq, ts, self.ssrc, &payload));
            self.seq = self.seq.wrapping_add(1);
        }
        self.ts = self.ts.wrapping_add(160 * out.len() as u32);
        self.sample += 160 * out.len() as u64;
        out
    }
}

/// RFC 4733 event code of a DTMF digit (0-9, *, #, A-D).
pub fn dtmf_event(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// The DTMF digit of an RFC 4733 event code.
pub fn dtmf_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// PCMU packets (payload type 0, 20 ms) of a sine tone; `amplitude` is a fraction of full scale.
pub fn pcmu_tone_packets(freq_hz: f64, seconds: f64, amplitude: f64) -> Vec<Vec<u8>> {
    RtpStream::new(0x5EED_0001).tone(freq_hz, seconds, amplitude)
}

/// The RFC 4733 packets of one digit (see [`RtpStream::digit`]).
pub fn rfc4733_digit_packets(digit: char, pt: u8) -> Vec<Vec<u8>> {
    RtpStream::new(0x5EED_0002).digit(digit, pt)
}

/// A stream with several digits: 200 ms PCMU silence, then each digit followed by 200 ms silence.
pub fn dtmf_sequence_packets(digits: &str, pt: u8) -> Vec<Vec<u8>> {
    let mut s = RtpStream::new(0x5EED_0003);
    let mut out = s.silence(0.2);
    for d in digits.chars() {
        out.extend(s.digit(d, pt));
        out.extend(s.silence(0.2));
    }
    out
}

fn ip_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes RTP packets as a classic libpcap file (microsecond timestamps, Ethernet link type)
/// of Ethernet + IPv4 + UDP 127.0.0.1:40000 → 127.0.0.1:6000 frames, one every `ptime_ms`.
/// SIPp's `play_pcap_audio` keeps the timing and rewrites the addresses and ports.
pub fn write_rtp_pcap(path: &Path, packets: &[Vec<u8>], ptime_ms: u32) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    let (src, dst) = ([127, 0, 0, 1], [127, 0, 0, 1]);
    let (sport, dport) = (40000u16, 6000u16);
    let start_us: u64 = 1_700_000_000 * 1_000_000;
    for (i, rtp) in packets.iter().enumerate() {
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut frame = Vec::with_capacity(14 + ip_len);
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend_from_slice(&(i as u16).to_be_bytes()); // identification
        ip.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]); // DF, TTL 64, UDP, checksum
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let c = ip_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        frame.extend_from_slice(&ip);
        let mut udp = Vec::with_capacity(udp_len);
        udp.extend_from_slice(&sport.to_be_bytes());
        udp.extend_from_slice(&dport.to_be_bytes());
        udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(rtp);
        let mut pseudo = Vec::with_capacity(12 + udp.len());
        pseudo.extend_from_slice(&src);
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
        pseudo.extend_from_slice(&udp);
        let c = match ip_checksum(&pseudo) {
            0 => 0xFFFF,
            c => c,
        };
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        frame.extend_from_slice(&udp);

        let t = start_us + i as u64 * u64::from(ptime_ms) * 1000;
        f.extend_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&frame);
    }
    std::fs::write(path, f).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------------
// Receiving RTP

/// One received RTP packet.
#[derive(Debug, Clone)]
pub struct RtpPacket {
    /// Who sent it.
    pub from: SocketAddr,
    /// When it arrived.
    pub at: Instant,
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Payload (padding removed).
    pub payload: Vec<u8>,
}

/// Parses an RTP packet (None if it is not RTP version 2).
pub fn parse_rtp(from: SocketAddr, data: &[u8]) -> Option<RtpPacket> {
    if data.len() < 12 || data[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(data[0] & 0x0F);
    let mut off = 12 + 4 * cc;
    if data[0] & 0x10 != 0 {
        let ext = data.get(off + 2..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = data.len();
    if data[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*data.last()?))?;
    }
    Some(RtpPacket {
        from,
        at: Instant::now(),
        pt: data[1] & 0x7F,
        marker: data[1] & 0x80 != 0,
        seq: u16::from_be_bytes([data[2], data[3]]),
        ts: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        payload: data.get(off..end)?.to_vec(),
    })
}

/// Decodes the PCMU (0) or PCMA (8) payloads of payload type `pt`, in arrival order.
pub fn decode_audio(packets: &[RtpPacket], pt: u8) -> Vec<i16> {
    let decode: fn(u8) -> i16 = match pt {
        PCMU_PT => ulaw_to_linear,
        PCMA_PT => alaw_to_linear,
        other => panic!("no decoder for payload type {other}"),
    };
    packets
        .iter()
        .filter(|p| p.pt == pt)
        .flat_map(|p| p.payload.iter().map(|b| decode(*b)))
        .collect()
}

/// The RFC 4733 digits in `packets` of payload type `pt`, one per event (SSRC and timestamp),
/// in arrival order.
pub fn decode_dtmf(packets: &[RtpPacket], pt: u8) -> String {
    let mut seen = HashSet::new();
    packets
        .iter()
        .filter(|p| p.pt == pt && p.payload.len() >= 4)
        .filter(|p| seen.insert((p.ssrc, p.ts)))
        .filter_map(|p| dtmf_digit(p.payload[0]))
        .collect()
}

fn goertzel_power(samples: &[f64], freq_hz: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq_hz / 8000.0).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for x in samples {
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

fn hann(samples: &[i16]) -> Vec<f64> {
    let n = samples.len();
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos();
            f64::from(*s) * w
        })
        .collect()
}

/// The strongest frequency (Hz) in 8 kHz `samples` (the last second of them): a Goertzel scan
/// of 100..=3900 Hz in 25 Hz steps over 40 ms blocks, refined in 1 Hz steps over the whole
/// second. None if there are fewer than 100 ms of samples or they are (near) silent.
pub fn dominant_hz_of(samples: &[i16]) -> Option<f64> {
    let samples = &samples[samples.len().saturating_sub(8000)..];
    if samples.len() < 800 {
        return None;
    }
    let rms =
        (samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
    if rms < 30.0 {
        return None;
    }
    let blocks: Vec<Vec<f64>> = samples.chunks_exact(320).map(hann).collect();
    let coarse = (4..=156)
        .map(|k| f64::from(k) * 25.0)
        .map(|f| (f, blocks.iter().map(|b| goertzel_power(b, f)).sum::<f64>()))
        .max_by(|a, b| a.1.total_cmp(&b.1))?
        .0;
    let whole = hann(samples);
    let fine = (-30..=30)
        .map(|d| coarse + f64::from(d))
        .map(|f| (f, goertzel_power(&whole, f)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?
        .0;
    Some(fine)
}

/// A UDP socket on 127.0.0.1 (an even port) that collects the RTP sent to it, in a
/// background thread. Bind it before starting SIPp and pass its port as `rtpsink`, so the
/// scenario's SDP sends the agent's RTP here.
pub struct RtpSink {
    port: u16,
    packets: Arc<Mutex<Vec<RtpPacket>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpSink {
    /// Binds and starts collecting.
    pub fn bind() -> RtpSink {
        let sock = (0..200)
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind the RTP sink"))
            .find(|s| s.local_addr().is_ok_and(|a| a.port() % 2 == 0))
            .expect("an even UDP port for the RTP sink");
        let port = sock.local_addr().expect("local addr").port();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set_read_timeout");
        let packets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (packets.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if let Some(pkt) = parse_rtp(from, &buf[..n]) {
                        p.lock().unwrap().push(pkt);
                    }
                }
            }
        });
        RtpSink {
            port,
            packets,
            stop,
            thread: Some(thread),
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many RTP packets arrived.
    pub fn packets(&self) -> usize {
        self.packets.lock().unwrap().len()
    }

    /// A copy of every packet so far.
    pub fn received(&self) -> Vec<RtpPacket> {
        self.packets.lock().unwrap().clone()
    }

    /// Forgets what arrived so far.
    pub fn clear(&self) {
        self.packets.lock().unwrap().clear();
    }

    /// The distinct SSRCs, in order of first arrival.
    pub fn ssrcs(&self) -> Vec<u32> {
        let mut seen = HashSet::new();
        self.received()
            .iter()
            .filter(|p| seen.insert(p.ssrc))
            .map(|p| p.ssrc)
            .collect()
    }

    /// The distinct senders, in order of first arrival.
    pub fn senders(&self) -> Vec<SocketAddr> {
        let mut seen = HashSet::new();
        self.received()
            .iter()
            .filter(|p| seen.insert(p.from))
            .map(|p| p.from)
            .collect()
    }

    /// Decoded PCMU (0) or PCMA (8) audio of payload type `pt`, in arrival order.
    pub fn audio_samples(&self, pt: u8) -> Vec<i16> {
        decode_audio(&self.received(), pt)
    }

    /// Like [`RtpSink::audio_samples`], for one SSRC only.
    pub fn audio_samples_ssrc(&self, pt: u8, ssrc: u32) -> Vec<i16> {
        let pkts: Vec<_> = self
            .received()
            .into_iter()
            .filter(|p| p.ssrc == ssrc)
            .collect();
        decode_audio(&pkts, pt)
    }

    /// The dominant frequency of the last second of audio (PCMU or PCMA, whichever payload
    /// type arrived last); see [`dominant_hz_of`].
    pub fn dominant_hz(&self) -> Option<f64> {
        let pkts = self.received();
        let pt = pkts
            .iter()
            .rev()
            .find(|p| p.pt == PCMU_PT || p.pt == PCMA_PT)?
            .pt;
        dominant_hz_of(&decode_audio(&pkts, pt))
    }

    /// The RFC 4733 digits received with payload type 101.
    pub fn dtmf_digits(&self) -> String {
        decode_dtmf(&self.received(), DTMF_PT)
    }

    /// Waits until `pred` holds (polled every 20 ms); false at the timeout.
    pub fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&RtpSink) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RtpSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A proxy's place in the path

/// One SIP datagram a [`ProxyStandIn`] received.
#[derive(Debug, Clone)]
pub struct SipDatagram {
    /// Who sent it.
    pub from: SocketAddr,
    /// The message as text.
    pub text: String,
}

impl SipDatagram {
    /// The request method (None for a response).
    pub fn method(&self) -> Option<&str> {
        let first = self.text.split(' ').next()?;
        (!first.starts_with("SIP/")).then_some(first)
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> &str {
        self.text.split(' ').nth(1).unwrap_or("")
    }

    /// The values of every line of header `name` (full name, case-insensitive), in order.
    pub fn header_lines(&self, name: &str) -> Vec<String> {
        header_lines(&self.text, name)
    }

    /// The Route entries, one per name-addr, in order (header lines and commas both split).
    pub fn routes(&self) -> Vec<String> {
        self.header_lines("Route")
            .iter()
            .flat_map(|v| v.split(", ").map(str::to_string).collect::<Vec<_>>())
            .collect()
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

/// A UDP socket on 127.0.0.1 standing where a record-routing proxy's address is: it keeps
/// every datagram it receives (source and text) and, like a loose router whose Route entry
/// names it, relays requests to `forward_to` and anything coming from `forward_to` to
/// `back_to`. Headers pass unchanged. The test proves where the agent sends in-dialog requests
/// by the socket they arrive on.
pub struct ProxyStandIn {
    port: u16,
    got: Arc<Mutex<Vec<SipDatagram>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProxyStandIn {
    /// Binds a free port; relays to `forward_to` (and back to `back_to`) when given.
    pub fn start(forward_to: Option<SocketAddr>, back_to: Option<SocketAddr>) -> ProxyStandIn {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the proxy stand-in");
        let port = sock.local_addr().expect("local addr").port();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set_read_timeout");
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let dest = if Some(from) == forward_to {
                    back_to
                } else {
                    forward_to
                };
                if let Some(d) = dest {
                    let _ = sock.send_to(&buf[..n], d);
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                g.lock().unwrap().push(SipDatagram { from, text });
            }
        });
        ProxyStandIn {
            port,
            got,
            stop,
            thread: Some(thread),
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<SipDatagram> {
        self.got.lock().unwrap().clone()
    }

    /// The requests of `method` received so far.
    pub fn requests(&self, method: &str) -> Vec<SipDatagram> {
        self.received()
            .into_iter()
            .filter(|d| d.method() == Some(method))
            .collect()
    }

    /// Waits until a `method` request has arrived (polled every 20 ms); panics at the timeout.
    pub fn wait_request(&self, method: &str, timeout: Duration) -> SipDatagram {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(d) = self.requests(method).into_iter().next() {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "no {method} reached the proxy on 127.0.0.1:{} within {timeout:?}; got {:?}",
                self.port,
                self.received()
                    .iter()
                    .map(|d| d.text.lines().next().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ProxyStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
