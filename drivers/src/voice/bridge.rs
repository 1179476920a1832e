//! One call's media: the modem's voice port on one side, an RTP stream on the other.
//!
//! Modem → RTP: every 320-byte frame read from the voice port is encoded and sent at once as one
//! 20 ms packet; the RTP timestamp follows the frame count (the modem's clock).
//! RTP → modem: audio goes through the [`JitterBuffer`], and one frame is written to the modem
//! per frame read from it, so playout follows the modem's clock and drift is absorbed there.
//! When the modem is silent for 60 ms (or there is no port), a local 20 ms clock takes over.
//! A single task owns all the state; the [`Bridge`] handle only sends it commands.
//!
//! Here the handle and its set-up; [`media`] is the task that pumps the audio.

mod media;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::jitter::JitterBuffer;
use super::port::VoicePort;
use super::rtp::{self, RtpReceiveStats, RtpSender};
use super::wav::WavWriter;
use super::{Codec, FRAME_SAMPLES};
use media::Media;

/// Errors of the voice media layer.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    /// An I/O error (socket, file, tty).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The voice port could not be opened.
    #[error("cannot open voice port {}: {reason}", path.display())]
    PortOpen {
        /// The tty path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The voice port reached end of file (device gone).
    #[error("voice port closed")]
    PortClosed,
    /// An RTP packet shorter than its fixed header.
    #[error("RTP packet too short ({0} bytes)")]
    RtpTooShort(usize),
    /// An RTP packet with a version other than 2.
    #[error("RTP version {0}, expected 2")]
    RtpVersion(u8),
    /// CSRCs or a header extension run past the end of the packet.
    #[error("RTP packet truncated")]
    RtpTruncated,
    /// The padding count is zero or longer than the payload.
    #[error("RTP padding invalid")]
    RtpPadding,
    /// A telephone-event payload shorter than 4 bytes.
    #[error("telephone-event payload too short ({0} bytes)")]
    TelephoneEventTooShort(usize),
    /// A WAV file could not be written or parsed.
    #[error("WAV: {0}")]
    Wav(String),
}

/// How one call's media is set up.
#[derive(Debug)]
pub struct BridgeConfig {
    /// The modem's PCM port; None = no audio from/to the modem (RTP side only).
    pub voice_port: Option<PathBuf>,
    /// The RTP socket, already bound.
    pub rtp: UdpSocket,
    /// Where RTP goes (from SDP); None until known.
    pub remote: Option<SocketAddr>,
    /// The negotiated audio codec.
    pub codec: Codec,
    /// The negotiated telephone-event payload type.
    pub dtmf_pt: Option<u8>,
    /// WAV recording path: stereo, left = modem side, right = RTP side.
    pub record: Option<PathBuf>,
}

/// Something the media task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEvent {
    /// A completed RFC 4733 digit received from RTP (reported once per event).
    Dtmf(char),
    /// The voice port failed to open or vanished; RTP keeps running.
    PortError(String),
    /// The first packet from the far end arrived.
    FirstRtp,
}

/// Counters of one call's media.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BridgeStats {
    /// Frames read from the voice port.
    pub frames_from_modem: u64,
    /// Frames written (queued) to the voice port.
    pub frames_to_modem: u64,
    /// RTP packets sent.
    pub rtp_sent: u64,
    /// Well-formed RTP packets received.
    pub rtp_received: u64,
    /// RTP packets lost (RFC 3550 expected minus received).
    pub rtp_lost: u64,
    /// Audio packets that arrived after their playout time.
    pub late: u64,
    /// Frames concealed toward the modem.
    pub concealed: u64,
    /// Frames dropped to follow the modem's clock.
    pub drift_drops: u64,
    /// RFC 3550 interarrival jitter of received RTP audio, ms.
    pub jitter_ms: f64,
    /// Stereo frames written to the recording.
    pub recorded_frames: u64,
    /// Datagrams that were not valid RTP (dropped).
    pub rtp_malformed: u64,
    /// Frames not written to the modem because its port was not keeping up.
    pub to_modem_dropped: u64,
}

/// Frames queued from the modem reader to the media task.
const FROM_MODEM_QUEUE: usize = 8;
const EVENT_QUEUE: usize = 32;

#[derive(Debug)]
enum Command {
    SetRemote(SocketAddr),
    AttachPort(PathBuf),
    Ringback(bool),
    Dtmf(char),
    Stats(tokio::sync::oneshot::Sender<BridgeStats>),
}

/// Handle to one call's running media.
#[derive(Debug)]
pub struct Bridge {
    cmd: mpsc::UnboundedSender<Command>,
    local: SocketAddr,
    dtmf_pt: Option<u8>,
    task: JoinHandle<BridgeStats>,
}

impl Bridge {
    /// Starts the media task: opens the voice port and the recording if configured.
    pub async fn start(
        cfg: BridgeConfig,
    ) -> Result<(Bridge, mpsc::Receiver<BridgeEvent>), VoiceError> {
        let local = cfg.rtp.local_addr()?;
        let wav = match &cfg.record {
            Some(path) => Some(WavWriter::create(path)?),
            None => None,
        };
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (from_port_tx, from_port_rx) = mpsc::channel(FROM_MODEM_QUEUE);
        let mut media = Media {
            socket: cfg.rtp,
            remote: cfg.remote,
            codec: cfg.codec,
            dtmf_pt: cfg.dtmf_pt,
            sender: RtpSender::new(),
            dtmf_out: None,
            dtmf_queue: VecDeque::new(),
            jitter: JitterBuffer::default(),
            rx_stats: RtpReceiveStats::default(),
            rx_event: None,
            rx_events_done: VecDeque::new(),
            wav,
            port: None,
            port_gen: 0,
            from_port_tx,
            events: events_tx,
            ringback: None,
            last_modem_frame: None,
            first_rtp_seen: false,
            stats: BridgeStats::default(),
            epoch: Instant::now(),
            pkt: Vec::with_capacity(256),
            enc: Vec::with_capacity(FRAME_SAMPLES),
            dec: Vec::with_capacity(FRAME_SAMPLES),
        };
        if let Some(path) = cfg.voice_port {
            let port = VoicePort::open(&path)?;
            media.attach(port);
        }
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(media.run(cmd_rx, from_port_rx));
        Ok((
            Bridge {
                cmd: cmd_tx,
                local,
                dtmf_pt: cfg.dtmf_pt,
                task,
            },
            events_rx,
        ))
    }

    /// The RTP socket's local address.
    pub fn local_rtp_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sets (or changes) where RTP is sent.
    pub fn set_remote(&self, addr: SocketAddr) {
        let _ = self.cmd.send(Command::SetRemote(addr));
    }

    /// Opens the voice port now (replacing any open one); failures arrive as
    /// [`BridgeEvent::PortError`].
    pub fn attach_port(&self, path: PathBuf) {
        let _ = self.cmd.send(Command::AttachPort(path));
    }

    /// Sends locally generated ringback (425 Hz, 1 s on, 4 s off) to RTP instead of modem
    /// audio while on.
    pub fn set_ringback(&self, on: bool) {
        let _ = self.cmd.send(Command::Ringback(on));
    }

    /// Sends a ~100 ms RFC 4733 digit toward RTP; false if no telephone-event payload type was
    /// negotiated, the digit is not DTMF, or the bridge has stopped.
    pub fn send_dtmf(&self, digit: char) -> bool {
        if self.dtmf_pt.is_none() || rtp::digit_to_event(digit).is_none() {
            return false;
        }
        self.cmd.send(Command::Dtmf(digit)).is_ok()
    }

    /// The counters so far (None once the bridge has stopped).
    pub async fn stats(&self) -> Option<BridgeStats> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.cmd.send(Command::Stats(tx)).ok()?;
        rx.await.ok()
    }

    /// Stops the media, finishes the recording and returns the counters.
    pub async fn stop(self) -> BridgeStats {
        drop(self.cmd);
        match self.task.await {
            Ok(stats) => stats,
            Err(e) => {
                tracing::error!(error = %e, "voice bridge task failed");
                BridgeStats::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::port::FrameReader;
    use crate::voice::rtp::DtmfSender;
    use crate::voice::tone::ToneGenerator;
    use crate::voice::{frame_to_le, g711, tone, wav};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio_serial::{SerialPort, SerialStream};

    const T: Duration = Duration::from_secs(10);

    struct Rig {
        bridge: Bridge,
        events: mpsc::Receiver<BridgeEvent>,
        master: SerialStream,
        far: UdpSocket,
        _slave: SerialStream,
    }

    async fn rig(dtmf_pt: Option<u8>, record: Option<PathBuf>, codec: Codec) -> Rig {
        let (master, slave) = SerialStream::pair().unwrap();
        let path = slave.name().unwrap();
        let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (bridge, events) = Bridge::start(BridgeConfig {
            voice_port: Some(PathBuf::from(path)),
            rtp,
            remote: Some(far.local_addr().unwrap()),
            codec,
            dtmf_pt,
            record,
        })
        .await
        .unwrap();
        Rig {
            bridge,
            events,
            master,
            far,
            _slave: slave,
        }
    }

    /// Receives RTP at the far end until `n` packets with payload type `pt` arrived.
    async fn collect_rtp(far: &UdpSocket, pt: u8, n: usize) -> Vec<(rtp::RtpHeader, Vec<u8>)> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < n {
            let (len, _) = tokio::time::timeout(T, far.recv_from(&mut buf))
                .await
                .expect("RTP in time")
                .unwrap();
            let p = rtp::parse(&buf[..len]).unwrap();
            if p.header.payload_type == pt {
                got.push((p.header.clone(), p.payload.to_vec()));
            }
        }
        got
    }

    fn tone_rtp(sender: &mut RtpSender, tone_gen: &mut ToneGenerator, codec: Codec) -> Vec<u8> {
        let mut enc = Vec::new();
        g711::encode(codec, &tone_gen.next_frame(), &mut enc);
        let mut pkt = Vec::new();
        sender.audio_packet(codec.payload_type(), &enc, &mut pkt);
        pkt
    }

    #[tokio::test]
    async fn modem_tone_arrives_as_rtp() {
        let mut r = rig(None, None, Codec::Pcma).await;
        let mut tone_gen = ToneGenerator::new(1000.0, 8000);
        let mut master = r.master;
        let feeder = tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_millis(20));
            for _ in 0..40 {
                iv.tick().await;
                master
                    .write_all(&frame_to_le(&tone_gen.next_frame()))
                    .await
                    .unwrap();
            }
            master
        });
        let packets = collect_rtp(&r.far, 8, 40).await;
        let mut samples = Vec::new();
        for (i, (h, payload)) in packets.iter().enumerate() {
            assert_eq!(payload.len(), 160);
            assert_eq!(h.marker, i == 0);
            if i > 0 {
                assert_eq!(h.sequence, packets[i - 1].0.sequence.wrapping_add(1));
                assert_eq!(h.timestamp, packets[i - 1].0.timestamp.wrapping_add(160));
            }
            g711::decode(Codec::Pcma, payload, &mut samples);
        }
        let f = tone::dominant_frequency(&samples, 25.0).unwrap();
        assert!((f - 1000.0).abs() <= 3.0, "{f}");
        let _master = feeder.await.unwrap();
        let stats = r.bridge.stop().await;
        assert_eq!(stats.frames_from_modem, 40);
        assert!(stats.rtp_sent >= 30);
        // Nothing came from RTP, so nothing but silence and no events.
        assert!(r.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn rtp_tone_reaches_the_modem() {
        let r = rig(None, None, Codec::Pcmu).await;
        let to = r.bridge.local_rtp_addr();
        let far = r.far;
        // The far end switches codec mid-way: both are decoded.
        let sender_task = tokio::spawn(async move {
            let mut s = RtpSender::with_start(7, 65500, 1);
            let mut tone_gen = ToneGenerator::new(700.0, 8000);
            let mut iv = tokio::time::interval(Duration::from_millis(20));
            for i in 0..100 {
                iv.tick().await;
                let codec = if i < 50 { Codec::Pcmu } else { Codec::Pcma };
                far.send_to(&tone_rtp(&mut s, &mut tone_gen, codec), to)
                    .await
                    .unwrap();
            }
            far
        });
        // The modem sends nothing: the local clock paces playout.
        let mut reader = FrameReader::new(r.master);
        let mut heard = Vec::new();
        while heard.len() < 25 * FRAME_SAMPLES {
            let f = tokio::time::timeout(T, reader.read_frame())
                .await
                .expect("frame in time")
                .unwrap();
            if tone::rms(&f) > 1000.0 {
                heard.extend_from_slice(&f);
            }
        }
        let f = tone::dominant_frequency(&heard, 25.0).unwrap();
        assert!((f - 700.0).abs() <= 3.0, "{f}");
        let _far = sender_task.await.unwrap();
        let stats = r.bridge.stop().await;
        assert!(stats.rtp_received >= 25);
        assert!(stats.frames_to_modem >= 25);
        assert_eq!(stats.rtp_malformed, 0);
    }

    #[tokio::test]
    async fn dtmf_from_rtp_is_reported_once() {
        let mut r = rig(Some(101), None, Codec::Pcmu).await;
        let to = r.bridge.local_rtp_addr();
        let mut s = RtpSender::with_start(9, 100, 5000);
        let mut pkt = Vec::new();
        // Garbage first: must be dropped, not fatal.
        r.far.send_to(b"\x00\x01junk", to).await.unwrap();
        for digit in ['5', '#'] {
            let mut d = DtmfSender::new(digit, s.timestamp(), 800).unwrap();
            while !d.is_done() {
                for (m, ev) in d.tick() {
                    s.event_packet(101, d.start_ts(), m, &ev, &mut pkt);
                    r.far.send_to(&pkt, to).await.unwrap();
                }
                s.skip(160);
            }
        }
        assert_eq!(
            tokio::time::timeout(T, r.events.recv()).await.unwrap(),
            Some(BridgeEvent::FirstRtp)
        );
        assert_eq!(
            tokio::time::timeout(T, r.events.recv()).await.unwrap(),
            Some(BridgeEvent::Dtmf('5'))
        );
        assert_eq!(
            tokio::time::timeout(T, r.events.recv()).await.unwrap(),
            Some(BridgeEvent::Dtmf('#'))
        );
        let stats = r.bridge.stop().await;
        assert_eq!(stats.rtp_malformed, 1);
        assert_eq!(stats.rtp_received, 14);
        assert_eq!(stats.rtp_lost, 0);
        // The repeated end packets produced no further events.
        assert!(r.events.recv().await.is_none());
    }

    #[tokio::test]
    async fn dtmf_toward_rtp() {
        let r = rig(Some(96), None, Codec::Pcmu).await;
        assert!(r.bridge.send_dtmf('7'));
        assert!(!r.bridge.send_dtmf('x'));
        let packets = collect_rtp(&r.far, 96, 7).await;
        let events: Vec<_> = packets
            .iter()
            .map(|(_, p)| rtp::parse_telephone_event(p).unwrap())
            .collect();
        assert!(packets[0].0.marker);
        assert!(
            packets
                .iter()
                .all(|(h, _)| h.timestamp == packets[0].0.timestamp)
        );
        assert!(events.iter().all(|e| e.event == 7));
        assert_eq!(events.iter().filter(|e| e.end).count(), 3);
        assert_eq!(events[6].duration, 800);
        r.bridge.stop().await;

        let r = rig(None, None, Codec::Pcmu).await;
        assert!(!r.bridge.send_dtmf('1'), "no telephone-event negotiated");
        r.bridge.stop().await;
    }

    #[tokio::test]
    async fn recording_has_both_sides() {
        let path = std::env::temp_dir().join(format!("gsmgw-bridge-{}.wav", std::process::id()));
        let r = rig(None, Some(path.clone()), Codec::Pcmu).await;
        let to = r.bridge.local_rtp_addr();
        let far = r.far;
        let mut master = r.master;
        // Modem side 1000 Hz, RTP side 500 Hz, both on 20 ms clocks; the modem's clock paces.
        let mut modem_gen = ToneGenerator::new(1000.0, 8000);
        let mut rtp_gen = ToneGenerator::new(500.0, 8000);
        let mut s = RtpSender::with_start(3, 0, 0);
        let mut iv = tokio::time::interval(Duration::from_millis(20));
        let mut to_modem = 0usize;
        let mut buf = [0u8; 4096];
        for _ in 0..75 {
            iv.tick().await;
            master
                .write_all(&frame_to_le(&modem_gen.next_frame()))
                .await
                .unwrap();
            far.send_to(&tone_rtp(&mut s, &mut rtp_gen, Codec::Pcmu), to)
                .await
                .unwrap();
            // Keep the pty from filling up.
            while let Ok(n) = master.try_read(&mut buf) {
                if n == 0 {
                    break;
                }
                to_modem += n;
            }
        }
        let stats = r.bridge.stop().await;
        assert!(to_modem > 0);
        assert!(stats.recorded_frames >= 70, "{stats:?}");
        let (channels, rate, samples) = wav::read_wav(&path).unwrap();
        assert_eq!((channels, rate), (2, 8000));
        assert_eq!(samples.len() as u64, stats.recorded_frames * 320);
        let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
        let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
        // Skip the prefetch at the start of the right channel.
        let lf = tone::dominant_frequency(&left[1600..], 25.0).unwrap();
        let rf = tone::dominant_frequency(&right[1600..], 25.0).unwrap();
        assert!((lf - 1000.0).abs() <= 3.0, "left {lf}");
        assert!((rf - 500.0).abs() <= 3.0, "right {rf}");
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn ringback_cadence_without_port() {
        let far = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (bridge, _events) = Bridge::start(BridgeConfig {
            voice_port: None,
            rtp: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            remote: None,
            codec: Codec::Pcmu,
            dtmf_pt: None,
            record: None,
        })
        .await
        .unwrap();
        bridge.set_remote(far.local_addr().unwrap());
        bridge.set_ringback(true);
        let packets = collect_rtp(&far, 0, 20).await;
        let mut samples = Vec::new();
        for (_, p) in &packets {
            g711::decode(Codec::Pcmu, p, &mut samples);
        }
        let f = tone::dominant_frequency(&samples, 25.0).unwrap();
        assert!((f - 425.0).abs() <= 3.0, "{f}");
        bridge.set_ringback(false);
        let stats = bridge.stop().await;
        assert_eq!(stats.frames_to_modem, 0);
        assert!(stats.rtp_sent >= 20);
    }

    #[tokio::test]
    async fn vanished_port_is_reported_and_rtp_continues() {
        let mut r = rig(None, None, Codec::Pcmu).await;
        drop(r.master);
        assert!(matches!(
            tokio::time::timeout(T, r.events.recv()).await.unwrap(),
            Some(BridgeEvent::PortError(_))
        ));
        // RTP still flows: ringback is sent on the local clock.
        r.bridge.set_ringback(true);
        collect_rtp(&r.far, 0, 3).await;
        r.bridge.attach_port(PathBuf::from("/nonexistent/ttyVOICE"));
        assert!(matches!(
            tokio::time::timeout(T, r.events.recv()).await.unwrap(),
            Some(BridgeEvent::PortError(_))
        ));
        r.bridge.stop().await;
    }
}
