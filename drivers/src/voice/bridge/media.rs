//! The media task: pumps PCM frames between the voice port and RTP (encode/send, receive/
//! jitter buffer/playout on the modem's clock or the local one), ringback, DTMF both ways,
//! recording and the counters.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{BridgeEvent, BridgeStats, Command, VoiceError};
use crate::voice::jitter::JitterBuffer;
use crate::voice::port::VoicePort;
use crate::voice::rtp::{self, DtmfSender, RtpReceiveStats, RtpSender};
use crate::voice::tone::ToneGenerator;
use crate::voice::wav::WavWriter;
use crate::voice::{Codec, FRAME_MS, FRAME_SAMPLES, Frame};

/// Length of a DTMF digit sent with [`super::Bridge::send_dtmf`], in samples (100 ms).
const DTMF_SAMPLES: u16 = 800;
/// Modem silence after which the local clock paces playout.
const MODEM_IDLE: Duration = Duration::from_millis(60);
/// Ringback cadence in frames: 1 s on out of 5 s.
const RINGBACK_ON_FRAMES: u32 = 50;
const RINGBACK_CYCLE_FRAMES: u32 = 250;
/// Ringback tone.
const RINGBACK_HZ: f64 = 425.0;
const RINGBACK_AMPLITUDE: i16 = 6000;
/// Frames queued toward the modem before new ones are dropped.
const TO_MODEM_QUEUE: usize = 4;

/// The open voice port as seen by the media task.
pub(super) struct PortLink {
    to_modem: mpsc::Sender<Frame>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for PortLink {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

pub(super) struct Ringback {
    tone: ToneGenerator,
    frame: u32,
}

impl Ringback {
    fn next_frame(&mut self) -> Frame {
        let on = self.frame % RINGBACK_CYCLE_FRAMES < RINGBACK_ON_FRAMES;
        self.frame = self.frame.wrapping_add(1);
        if on {
            self.tone.next_frame()
        } else {
            [0; FRAME_SAMPLES]
        }
    }
}

pub(super) type PortResult = (u64, Result<Frame, VoiceError>);

/// The media task's state.
pub(super) struct Media {
    pub(super) socket: UdpSocket,
    pub(super) remote: Option<SocketAddr>,
    pub(super) codec: Codec,
    pub(super) dtmf_pt: Option<u8>,
    pub(super) sender: RtpSender,
    pub(super) dtmf_out: Option<DtmfSender>,
    pub(super) dtmf_queue: VecDeque<char>,
    pub(super) jitter: JitterBuffer,
    pub(super) rx_stats: RtpReceiveStats,
    /// The telephone event being received: (timestamp, event code).
    pub(super) rx_event: Option<(u32, u8)>,
    /// Timestamps of events already reported (end packets come three times).
    pub(super) rx_events_done: VecDeque<u32>,
    pub(super) wav: Option<WavWriter>,
    pub(super) port: Option<PortLink>,
    pub(super) port_gen: u64,
    pub(super) from_port_tx: mpsc::Sender<PortResult>,
    pub(super) events: mpsc::Sender<BridgeEvent>,
    pub(super) ringback: Option<Ringback>,
    pub(super) last_modem_frame: Option<Instant>,
    pub(super) first_rtp_seen: bool,
    pub(super) stats: BridgeStats,
    pub(super) epoch: Instant,
    pub(super) pkt: Vec<u8>,
    pub(super) enc: Vec<u8>,
    pub(super) dec: Vec<i16>,
}

impl Media {
    pub(super) async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Command>,
        mut from_port: mpsc::Receiver<PortResult>,
    ) -> BridgeStats {
        let mut tick = tokio::time::interval(Duration::from_millis(FRAME_MS));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut rbuf = [0u8; 2048];
        loop {
            tokio::select! {
                biased;
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => break,
                },
                Some((generation, res)) = from_port.recv() => self.on_port(generation, res),
                r = self.socket.recv_from(&mut rbuf) => match r {
                    Ok((n, _from)) => self.on_rtp(&rbuf[..n]),
                    Err(e) => tracing::debug!(error = %e, "RTP receive error"),
                },
                _ = tick.tick() => self.on_local_tick(),
            }
        }
        self.port = None;
        if let Some(mut w) = self.wav.take() {
            if let Err(e) = w.finish() {
                tracing::warn!(error = %e, "could not finish the recording");
            }
        }
        self.snapshot()
    }

    fn snapshot(&self) -> BridgeStats {
        let js = self.jitter.stats();
        BridgeStats {
            rtp_received: self.rx_stats.received(),
            rtp_lost: self.rx_stats.lost(),
            late: js.late,
            concealed: js.concealed,
            drift_drops: js.drift_drops,
            jitter_ms: self.rx_stats.jitter_ms(),
            ..self.stats
        }
    }

    fn emit(&self, ev: BridgeEvent) {
        if let Err(e) = self.events.try_send(ev) {
            tracing::debug!(event = ?e.into_inner(), "bridge event dropped");
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::SetRemote(a) => self.remote = Some(a),
            Command::AttachPort(path) => match VoicePort::open(&path) {
                Ok(port) => self.attach(port),
                Err(e) => {
                    tracing::warn!(error = %e, "voice port");
                    self.emit(BridgeEvent::PortError(e.to_string()));
                }
            },
            Command::Ringback(true) => {
                if self.ringback.is_none() {
                    self.ringback = Some(Ringback {
                        tone: ToneGenerator::new(RINGBACK_HZ, RINGBACK_AMPLITUDE),
                        frame: 0,
                    });
                }
            }
            Command::Ringback(false) => self.ringback = None,
            Command::Dtmf(d) => self.dtmf_queue.push_back(d),
            Command::Stats(reply) => {
                let _ = reply.send(self.snapshot());
            }
        }
    }

    pub(super) fn attach(&mut self, port: VoicePort) {
        tracing::debug!(path = %port.path().display(), "voice port attached");
        self.port_gen += 1;
        let generation = self.port_gen;
        let (mut reader, mut writer) = port.into_split();
        let tx = self.from_port_tx.clone();
        let reader = tokio::spawn(async move {
            loop {
                let r = reader.read_frame().await;
                let failed = r.is_err();
                if tx.send((generation, r)).await.is_err() || failed {
                    break;
                }
            }
        });
        let (to_modem, mut rx) = mpsc::channel::<Frame>(TO_MODEM_QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                if let Err(e) = writer.write_frame(&f).await {
                    // The reader reports the port's loss.
                    tracing::debug!(error = %e, "voice port write failed");
                    break;
                }
            }
        });
        self.port = Some(PortLink {
            to_modem,
            reader,
            writer,
        });
    }

    fn on_port(&mut self, generation: u64, res: Result<Frame, VoiceError>) {
        if generation != self.port_gen || self.port.is_none() {
            return;
        }
        match res {
            Ok(frame) => {
                self.stats.frames_from_modem += 1;
                self.last_modem_frame = Some(Instant::now());
                self.playout(Some(&frame));
                if self.ringback.is_none() {
                    self.rtp_tick(Some(&frame));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "voice port lost");
                self.port = None;
                self.last_modem_frame = None;
                self.emit(BridgeEvent::PortError(e.to_string()));
            }
        }
    }

    fn on_local_tick(&mut self) {
        let idle = self
            .last_modem_frame
            .is_none_or(|t| t.elapsed() >= MODEM_IDLE);
        if idle {
            self.playout(None);
        }
        if let Some(rb) = self.ringback.as_mut() {
            let f = rb.next_frame();
            self.rtp_tick(Some(&f));
        } else if idle {
            self.rtp_tick(None);
        }
    }

    /// One frame toward the modem (and the recording).
    fn playout(&mut self, from_modem: Option<&Frame>) {
        let out = self.jitter.pop();
        if let Some(link) = &self.port {
            match link.to_modem.try_send(out) {
                Ok(()) => self.stats.frames_to_modem += 1,
                Err(mpsc::error::TrySendError::Full(_)) => self.stats.to_modem_dropped += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        if let Some(w) = self.wav.as_mut() {
            let silence = [0i16; FRAME_SAMPLES];
            match w.write_frames(from_modem.unwrap_or(&silence), &out) {
                Ok(()) => self.stats.recorded_frames += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "recording stopped");
                    self.wav = None;
                }
            }
        }
    }

    /// One 20 ms step of the outgoing RTP stream: a telephone event, audio, or nothing (the
    /// timestamp advances in every case).
    fn rtp_tick(&mut self, audio: Option<&Frame>) {
        if self.dtmf_out.is_none() {
            if let Some(d) = self.dtmf_queue.pop_front() {
                self.dtmf_out = DtmfSender::new(d, self.sender.timestamp(), DTMF_SAMPLES);
            }
        }
        if let (Some(d), Some(pt)) = (self.dtmf_out.as_mut(), self.dtmf_pt) {
            let start = d.start_ts();
            let packets = d.tick();
            if d.is_done() {
                self.dtmf_out = None;
            }
            for (marker, ev) in packets {
                self.sender
                    .event_packet(pt, start, marker, &ev, &mut self.pkt);
                self.send_pkt();
            }
            self.sender.skip(FRAME_SAMPLES as u32);
            return;
        }
        match audio {
            Some(frame) if self.remote.is_some() => {
                self.enc.clear();
                self.codec.encode(frame, &mut self.enc);
                self.sender
                    .audio_packet(self.codec.payload_type(), &self.enc, &mut self.pkt);
                self.send_pkt();
            }
            _ => self.sender.skip(FRAME_SAMPLES as u32),
        }
    }

    fn send_pkt(&mut self) {
        let Some(remote) = self.remote else { return };
        match self.socket.try_send_to(&self.pkt, remote) {
            Ok(_) => self.stats.rtp_sent += 1,
            Err(e) => tracing::debug!(error = %e, "RTP send failed"),
        }
    }

    fn on_rtp(&mut self, datagram: &[u8]) {
        let packet = match rtp::parse(datagram) {
            Ok(p) => p,
            Err(_) => {
                self.stats.rtp_malformed += 1;
                return;
            }
        };
        if !self.first_rtp_seen {
            self.first_rtp_seen = true;
            self.emit(BridgeEvent::FirstRtp);
        }
        let h = &packet.header;
        let arrival = (self.epoch.elapsed().as_micros() * 8 / 1000) as i64;
        let pt = h.payload_type;
        if Some(pt) == self.dtmf_pt {
            self.rx_stats
                .update(h.ssrc, h.sequence, h.timestamp, arrival, false);
            match rtp::parse_telephone_event(packet.payload) {
                Ok(ev) => self.on_telephone_event(h.timestamp, ev),
                Err(_) => self.stats.rtp_malformed += 1,
            }
        } else if let Some(codec) = Codec::from_payload_type(pt) {
            self.rx_stats
                .update(h.ssrc, h.sequence, h.timestamp, arrival, true);
            self.dec.clear();
            codec.decode(packet.payload, &mut self.dec);
            self.jitter.push(h.sequence, h.timestamp, &self.dec);
        } else {
            self.rx_stats
                .update(h.ssrc, h.sequence, h.timestamp, arrival, false);
        }
    }

    fn report_digit(&mut self, ts: u32, event: u8) {
        if self.rx_events_done.len() >= 8 {
            self.rx_events_done.pop_front();
        }
        self.rx_events_done.push_back(ts);
        if let Some(d) = rtp::event_to_digit(event) {
            tracing::debug!(digit = %d, "DTMF received");
            self.emit(BridgeEvent::Dtmf(d));
        }
    }

    fn on_telephone_event(&mut self, ts: u32, ev: rtp::TelephoneEvent) {
        if self.rx_events_done.contains(&ts) {
            return;
        }
        if let Some((active_ts, active_ev)) = self.rx_event {
            if active_ts != ts {
                // The previous event's end packets were all lost: it still happened.
                self.rx_event = None;
                self.report_digit(active_ts, active_ev);
            }
        }
        if ev.end {
            self.rx_event = None;
            self.report_digit(ts, ev.event);
        } else {
            self.rx_event = Some((ts, ev.event));
        }
    }
}
