//! The voice PCM port: a second raw pty (like a Quectel's /dev/ttyUSB4 audio port) that carries
//! the call's voice as 20 ms frames of 8 kHz 16-bit little-endian mono, both ways, while the
//! device says a call is active and its voice path is on (the dialect's rule). Toward the agent
//! it plays the far end (a test tone or silence) at exactly 50 frames/s; from the agent it keeps
//! the last 2 s of samples for the `voice-stats` op. The device decides *when* audio flows; this
//! task only moves bytes, so its timing does not depend on AT traffic.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::SimError;
use super::pty::{self, Pty};
use crate::voice::tone::{self, ToneGenerator};
use crate::voice::{FRAME_BYTES, FRAME_MS, SAMPLE_RATE, frame_to_le};

/// Received samples kept (2 s).
const KEEP_SAMPLES: usize = 2 * SAMPLE_RATE as usize;
/// Samples the statistics look at (the last 1 s).
const STATS_SAMPLES: usize = SAMPLE_RATE as usize;
/// Default peak amplitude of the far end's tone.
const DEFAULT_AMPLITUDE: i16 = 8000;

/// What the far end says and what the agent sent, shared by the port task and the control ops.
#[derive(Debug, Default)]
struct VoiceShared {
    /// The far end's tone (None = silence).
    tone: Option<ToneGenerator>,
    tone_hz: f64,
    amplitude: i16,
    frames_sent: u64,
    frames_dropped: u64,
    frames_received: u64,
    bytes_received: u64,
    /// Bytes of the frame being received (frames are counted per 320 bytes).
    partial_bytes: usize,
    /// The low byte of a sample split across reads.
    odd_byte: Option<u8>,
    received: VecDeque<i16>,
}

impl VoiceShared {
    /// The far end's next 20 ms.
    fn next_frame(&mut self) -> [u8; FRAME_BYTES] {
        match &mut self.tone {
            Some(g) => frame_to_le(&g.next_frame()),
            None => [0u8; FRAME_BYTES],
        }
    }

    /// Bytes the agent wrote; outside streaming they are read and thrown away (counted only).
    fn received(&mut self, bytes: &[u8], streaming: bool) {
        self.bytes_received += bytes.len() as u64;
        if !streaming {
            self.partial_bytes = 0;
            self.odd_byte = None;
            return;
        }
        for &b in bytes {
            match self.odd_byte.take() {
                None => self.odd_byte = Some(b),
                Some(lo) => {
                    if self.received.len() >= KEEP_SAMPLES {
                        self.received.pop_front();
                    }
                    self.received.push_back(i16::from_le_bytes([lo, b]));
                }
            }
        }
        self.partial_bytes += bytes.len();
        self.frames_received += (self.partial_bytes / FRAME_BYTES) as u64;
        self.partial_bytes %= FRAME_BYTES;
    }

    fn reset(&mut self) {
        self.frames_sent = 0;
        self.frames_dropped = 0;
        self.frames_received = 0;
        self.bytes_received = 0;
        self.partial_bytes = 0;
        self.odd_byte = None;
        self.received.clear();
    }

    fn stats(&self, streaming: bool) -> Value {
        let skip = self.received.len().saturating_sub(STATS_SAMPLES);
        let last: Vec<i16> = self.received.iter().skip(skip).copied().collect();
        json!({
            "streaming": streaming,
            "frames_sent": self.frames_sent,
            "frames_dropped": self.frames_dropped,
            "frames_received": self.frames_received,
            "bytes_received": self.bytes_received,
            "dominant_hz": dominant_hz(&last),
            "rms": tone::rms(&last),
            "tone_hz": self.tone_hz,
            "amplitude": self.amplitude,
        })
    }
}

/// The far end's view of what the agent sent: the dominant frequency of the last second.
fn dominant_hz(samples: &[i16]) -> Option<f64> {
    tone::dominant_frequency(samples, 25.0)
}

fn lock(shared: &Mutex<VoiceShared>) -> MutexGuard<'_, VoiceShared> {
    // A panic elsewhere cannot leave the counters in a state worth refusing to read.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The voice port as the runner sees it: plug/unplug it with the AT port, tell it whether to
/// stream, answer the `voice-*` control ops.
pub(crate) struct VoiceLink {
    link: PathBuf,
    last_path: Option<PathBuf>,
    plugged: bool,
    shared: Arc<Mutex<VoiceShared>>,
    streaming: watch::Sender<bool>,
    ports: mpsc::UnboundedSender<Option<Pty>>,
    task: JoinHandle<()>,
}

impl VoiceLink {
    /// Open the first voice pty, link it at `link` and start the port task.
    pub(crate) fn open(link: PathBuf) -> Result<VoiceLink, SimError> {
        let first = Pty::open(None)?;
        pty::replace_link(&link, first.path())?;
        let last_path = Some(first.path().to_path_buf());
        let shared = Arc::new(Mutex::new(VoiceShared {
            amplitude: DEFAULT_AMPLITUDE,
            ..VoiceShared::default()
        }));
        let (streaming, streaming_rx) = watch::channel(false);
        let (ports, ports_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_port(shared.clone(), streaming_rx, ports_rx, first));
        Ok(VoiceLink {
            link,
            last_path,
            plugged: true,
            shared,
            streaming,
            ports,
            task,
        })
    }

    /// The modem went away: the voice port vanishes with the AT port.
    pub(crate) fn unplug(&mut self) {
        if !self.plugged {
            return;
        }
        self.plugged = false;
        let _ = self.ports.send(None);
        pty::remove_link(&self.link);
    }

    /// The modem came back: a new voice pty under a new number, linked at the same path.
    pub(crate) fn plug(&mut self) {
        if self.plugged {
            return;
        }
        match Pty::open(self.last_path.as_deref()) {
            Ok(p) => {
                if let Err(e) = pty::replace_link(&self.link, p.path()) {
                    tracing::warn!("modemsim voice port: {e}");
                }
                self.last_path = Some(p.path().to_path_buf());
                self.plugged = true;
                let _ = self.ports.send(Some(p));
            }
            Err(e) => tracing::warn!("modemsim: cannot open a new voice pty: {e}"),
        }
    }

    /// Start or stop streaming (the device's verdict after every change).
    pub(crate) fn set_streaming(&self, on: bool) {
        self.streaming.send_if_modified(|v| {
            let changed = *v != on;
            *v = on;
            changed
        });
    }

    /// The slave path of the current voice pty (None while unplugged).
    pub(crate) fn pty_path(&self) -> Option<&std::path::Path> {
        if self.plugged {
            self.last_path.as_deref()
        } else {
            None
        }
    }

    /// `voice-tone`, `voice-stats`, `voice-reset`; `streaming` is the device's current verdict.
    pub(crate) fn control(&self, op: &str, msg: &Value, streaming: bool) -> Result<Value, String> {
        match op {
            "voice-tone" => {
                let hz = match msg.get("hz") {
                    None | Some(Value::Null) => 0.0,
                    Some(v) => v.as_f64().ok_or("hz must be a number")?,
                };
                if !(0.0..=4000.0).contains(&hz) {
                    return Err("hz must be 0 (silence) to 4000".into());
                }
                let amplitude = match msg.get("amplitude") {
                    None | Some(Value::Null) => DEFAULT_AMPLITUDE,
                    Some(v) => v
                        .as_u64()
                        .and_then(|a| i16::try_from(a).ok())
                        .ok_or("amplitude must be 0-32767")?,
                };
                let mut s = lock(&self.shared);
                s.tone_hz = hz;
                s.amplitude = amplitude;
                s.tone = (hz > 0.0).then(|| ToneGenerator::new(hz, amplitude));
                Ok(json!({"ok": true, "hz": hz, "amplitude": amplitude}))
            }
            "voice-stats" => {
                let mut v = lock(&self.shared).stats(streaming);
                if let Some(m) = v.as_object_mut() {
                    m.insert("ok".into(), Value::Bool(true));
                    let path = self.pty_path().map(|p| p.display().to_string());
                    m.insert("pty".into(), json!(path));
                }
                Ok(v)
            }
            "voice-reset" => {
                lock(&self.shared).reset();
                Ok(json!({"ok": true}))
            }
            _ => Err(format!("unknown op {op:?}")),
        }
    }
}

impl Drop for VoiceLink {
    fn drop(&mut self) {
        self.task.abort();
        pty::remove_link(&self.link);
    }
}

async fn read_opt(pty: &Option<Pty>, buf: &mut [u8]) -> Result<usize, SimError> {
    match pty {
        Some(p) => p.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Write one frame without blocking. The rest of an earlier, partly written frame goes first so
/// the reader's 320-byte alignment holds; if even that does not fit, this frame is dropped.
fn write_frame(p: &Pty, unsent: &mut Vec<u8>, frame: &[u8]) -> bool {
    if !unsent.is_empty() {
        match p.try_write(unsent) {
            Ok(n) => {
                unsent.drain(..n);
            }
            Err(e) => {
                tracing::debug!("voice pty write: {e}");
                unsent.clear();
            }
        }
        if !unsent.is_empty() {
            return false;
        }
    }
    match p.try_write(frame) {
        Ok(0) => false,
        Ok(n) => {
            unsent.extend_from_slice(&frame[n..]);
            true
        }
        Err(e) => {
            tracing::debug!("voice pty write: {e}");
            false
        }
    }
}

/// The port task: a frame every 20 ms on a deadline schedule (late ticks are caught up, so the
/// long-run rate is exactly 50 frames/s) while streaming; reads whatever the agent writes.
async fn run_port(
    shared: Arc<Mutex<VoiceShared>>,
    mut streaming_rx: watch::Receiver<bool>,
    mut ports: mpsc::UnboundedReceiver<Option<Pty>>,
    first: Pty,
) {
    let frame_time = Duration::from_millis(FRAME_MS);
    let mut pty = Some(first);
    let mut streaming = false;
    let mut next = Instant::now();
    let mut unsent: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let due = streaming && pty.is_some();
        tokio::select! {
            biased;
            p = ports.recv() => match p {
                None => break,
                Some(p) => {
                    pty = p;
                    unsent.clear();
                }
            },
            r = streaming_rx.changed() => {
                if r.is_err() {
                    break;
                }
                let on = *streaming_rx.borrow_and_update();
                if on && !streaming {
                    // A new call: the agent must not get the tail of an earlier one.
                    if let Some(p) = &pty {
                        p.flush_toward_client();
                    }
                    unsent.clear();
                    next = Instant::now();
                }
                streaming = on;
            }
            _ = tokio::time::sleep_until(next), if due => {
                let frame = lock(&shared).next_frame();
                let sent = match &pty {
                    Some(p) => write_frame(p, &mut unsent, &frame),
                    None => false,
                };
                let mut s = lock(&shared);
                if sent {
                    s.frames_sent += 1;
                } else {
                    s.frames_dropped += 1;
                }
                next += frame_time;
            }
            r = read_opt(&pty, &mut buf) => match r {
                Ok(n) => lock(&shared).received(&buf[..n], streaming),
                Err(e) => {
                    tracing::debug!("voice pty read: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::FRAME_SAMPLES;

    #[test]
    fn frames_are_counted_across_reads_and_ignored_when_not_streaming() {
        let mut s = VoiceShared::default();
        s.received(&[1u8; 100], false);
        assert_eq!((s.bytes_received, s.frames_received), (100, 0));
        assert!(s.received.is_empty());
        s.received(&[0u8; 301], true);
        s.received(&[0u8; 19], true);
        s.received(&[0u8; 330], true);
        assert_eq!(s.frames_received, 2);
        assert_eq!(s.received.len(), 325);
        s.reset();
        assert_eq!((s.bytes_received, s.frames_received), (0, 0));
    }

    #[test]
    fn keeps_two_seconds_and_finds_the_agents_tone() {
        let mut s = VoiceShared::default();
        let mut g = ToneGenerator::new(440.0, 6000);
        for _ in 0..150 {
            s.received(&frame_to_le(&g.next_frame()), true);
        }
        assert_eq!(s.received.len(), KEEP_SAMPLES);
        assert_eq!(s.frames_received, 150);
        let v = s.stats(true);
        let hz = v["dominant_hz"].as_f64().unwrap_or(0.0);
        assert!((hz - 440.0).abs() <= 1.0, "{v}");
        assert!(v["rms"].as_f64().unwrap_or(0.0) > 4000.0);
    }

    #[test]
    fn finds_tones_off_the_coarse_grid_over_a_whole_second() {
        for freq in [440.0, 1000.0, 1337.0, 2111.0, 3399.0] {
            let mut g = ToneGenerator::new(freq, 6000);
            let samples: Vec<i16> = (0..50).flat_map(|_| g.next_frame()).collect();
            let found = dominant_hz(&samples).unwrap_or(0.0);
            assert!((found - freq).abs() <= 1.0, "{freq} Hz found as {found}");
        }
        assert_eq!(dominant_hz(&[0i16; 8000]), None);
    }

    #[test]
    fn silence_until_a_tone_is_set() {
        let mut s = VoiceShared::default();
        assert_eq!(s.next_frame(), [0u8; FRAME_BYTES]);
        s.tone = Some(ToneGenerator::new(1000.0, 8000));
        let f = crate::voice::frame_from_le(&s.next_frame());
        assert_eq!(f.len(), FRAME_SAMPLES);
        assert!(tone::rms(&f) > 1000.0);
    }
}
