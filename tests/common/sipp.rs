//! SIPp in the voice end-to-end tests (the runner is the testkit's, re-exported here): it plays
//! the PBX (UAS scenarios `pbx_*.xml`) and the SIP caller (UAC scenarios `caller_*.xml`) from
//! tests/sipp/. Also here: RTP packets and pcap files for SIPp's `play_pcap_audio`, and
//! [`RtpSink`], a UDP socket that collects the RTP the agent sends and tells what is in it (tone
//! frequency, DTMF digits).
#![allow(dead_code, unused_imports)]

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use gsmgw_testkit::sipp::*;
pub use gsmgw_testkit::{free_even_udp_port_pair, free_udp_port};

/// Payload type of RFC 4733 telephone events in our SDP.
pub const DTMF_PT: u8 = 101;
/// Payload type of PCMU.
pub const PCMU_PT: u8 = 0;
/// Payload type of PCMA.
pub const PCMA_PT: u8 = 8;

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
