//! RTP (RFC 3550) headers, a sender for one outgoing stream (audio frames and RFC 4733
//! telephone events), and receive statistics (loss, interarrival jitter).

use super::{FRAME_SAMPLES, VoiceError};

/// Fixed RTP header length without CSRCs.
pub const HEADER_LEN: usize = 12;
/// The RTP version this code speaks.
pub const VERSION: u8 = 2;

/// An RTP header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpHeader {
    /// P: the payload ends with padding (parse strips it; write never pads).
    pub padding: bool,
    /// X: a header extension followed (parse skips it; write never adds one).
    pub extension: bool,
    /// M: marker (start of a talkspurt, first packet of a telephone event).
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp in 8 kHz sample units.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Contributing sources.
    pub csrcs: heapless::Vec<u32, 15>,
}

impl RtpHeader {
    /// Appends the header (without extension; padding bit as given) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let cc = self.csrcs.len() as u8 & 0x0F;
        out.push((VERSION << 6) | (u8::from(self.padding) << 5) | cc);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in &self.csrcs {
            out.extend_from_slice(&c.to_be_bytes());
        }
    }
}

/// A parsed RTP packet borrowing its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The header.
    pub header: RtpHeader,
    /// The payload, extension skipped and padding removed.
    pub payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> Result<u16, VoiceError> {
    match b.get(at..at + 2) {
        Some(s) => Ok(u16::from_be_bytes([s[0], s[1]])),
        None => Err(VoiceError::RtpTruncated),
    }
}

fn be32(b: &[u8], at: usize) -> Result<u32, VoiceError> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]])),
        None => Err(VoiceError::RtpTruncated),
    }
}

/// Parses one RTP packet; any malformed input is an error, never a panic.
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, VoiceError> {
    if buf.len() < HEADER_LEN {
        return Err(VoiceError::RtpTooShort(buf.len()));
    }
    let version = buf[0] >> 6;
    if version != VERSION {
        return Err(VoiceError::RtpVersion(version));
    }
    let padding = buf[0] & 0x20 != 0;
    let extension = buf[0] & 0x10 != 0;
    let cc = usize::from(buf[0] & 0x0F);
    let mut header = RtpHeader {
        padding,
        extension,
        marker: buf[1] & 0x80 != 0,
        payload_type: buf[1] & 0x7F,
        sequence: be16(buf, 2)?,
        timestamp: be32(buf, 4)?,
        ssrc: be32(buf, 8)?,
        csrcs: heapless::Vec::new(),
    };
    let mut at = HEADER_LEN;
    for _ in 0..cc {
        let c = be32(buf, at)?;
        // cc <= 15 by construction, so the push cannot fail.
        let _ = header.csrcs.push(c);
        at += 4;
    }
    if extension {
        let words = usize::from(be16(buf, at + 2)?);
        at += 4 + words * 4;
        if at > buf.len() {
            return Err(VoiceError::RtpTruncated);
        }
    }
    let mut end = buf.len();
    if padding {
        let pad = usize::from(buf[end - 1]);
        if pad == 0 || at + pad > end {
            return Err(VoiceError::RtpPadding);
        }
        end -= pad;
    }
    Ok(RtpPacket {
        header,
        payload: &buf[at..end],
    })
}

/// An RFC 4733 telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-9, 10 = *, 11 = #, 12-15 = A-D).
    pub event: u8,
    /// E: the event has ended.
    pub end: bool,
    /// Volume in -dBm0 (0-63).
    pub volume: u8,
    /// Duration so far in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Appends the 4-byte payload to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.event);
        out.push((u8::from(self.end) << 7) | (self.volume & 0x3F));
        out.extend_from_slice(&self.duration.to_be_bytes());
    }
}

/// Parses an RFC 4733 telephone-event payload (only the first 4 bytes are read).
pub fn parse_telephone_event(payload: &[u8]) -> Result<TelephoneEvent, VoiceError> {
    match payload {
        [event, flags, d0, d1, ..] => Ok(TelephoneEvent {
            event: *event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([*d0, *d1]),
        }),
        _ => Err(VoiceError::TelephoneEventTooShort(payload.len())),
    }
}

/// The RFC 4733 event code for a DTMF digit (`0-9 * # A-D`, letters case-insensitive).
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// The DTMF digit for an RFC 4733 event code (0-15).
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// Random words from a v4 UUID (the crate already depends on uuid; no rand needed).
fn random_u32s() -> [u32; 3] {
    let b = uuid::Uuid::new_v4().into_bytes();
    [
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[10], b[11]]),
        u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
    ]
}

/// The state of one outgoing RTP stream.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    seq: u16,
    ts: u32,
    sent_any_audio: bool,
}

impl Default for RtpSender {
    fn default() -> Self {
        Self::new()
    }
}

impl RtpSender {
    /// A stream with random SSRC, starting sequence number and timestamp.
    pub fn new() -> Self {
        let [ssrc, seq, ts] = random_u32s();
        Self::with_start(ssrc, seq as u16, ts)
    }

    /// A stream with the given SSRC, sequence number and timestamp (tests).
    pub fn with_start(ssrc: u32, seq: u16, ts: u32) -> Self {
        RtpSender {
            ssrc,
            seq,
            ts,
            sent_any_audio: false,
        }
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The next sequence number to be used.
    pub fn next_sequence(&self) -> u16 {
        self.seq
    }

    /// The timestamp of the next audio frame.
    pub fn timestamp(&self) -> u32 {
        self.ts
    }

    /// Advances the timestamp by `samples` without sending (silence, suppressed audio).
    pub fn skip(&mut self, samples: u32) {
        self.ts = self.ts.wrapping_add(samples);
    }

    fn header(&mut self, pt: u8, marker: bool, ts: u32) -> RtpHeader {
        let h = RtpHeader {
            marker,
            payload_type: pt,
            sequence: self.seq,
            timestamp: ts,
            ssrc: self.ssrc,
            ..RtpHeader::default()
        };
        self.seq = self.seq.wrapping_add(1);
        h
    }

    /// Writes an audio packet with the already-encoded `payload` into `out` (cleared first) and
    /// advances the timestamp by the payload's sample count (one byte per sample in G.711).
    pub fn audio_packet(&mut self, pt: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let marker = !self.sent_any_audio;
        self.sent_any_audio = true;
        let h = self.header(pt, marker, self.ts);
        h.write(out);
        out.extend_from_slice(payload);
        self.skip(payload.len() as u32);
    }

    /// Writes a telephone-event packet into `out` (cleared first); the timestamp is the event's
    /// start and does not advance.
    pub fn event_packet(
        &mut self,
        pt: u8,
        start_ts: u32,
        marker: bool,
        ev: &TelephoneEvent,
        out: &mut Vec<u8>,
    ) {
        out.clear();
        let h = self.header(pt, marker, start_ts);
        h.write(out);
        ev.write(out);
    }
}

/// How often the final (E bit) packet of an event is sent.
pub const EVENT_END_REPEATS: usize = 3;
/// Volume of generated events, -dBm0.
pub const EVENT_VOLUME: u8 = 10;

/// One outgoing DTMF digit as RFC 4733 packets, advanced once per 20 ms tick.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    start_ts: u32,
    total: u16,
    elapsed: u16,
    done: bool,
}

impl DtmfSender {
    /// A digit lasting `duration_samples`, starting at timestamp `start_ts`; None for a
    /// character that is not a DTMF digit.
    pub fn new(digit: char, start_ts: u32, duration_samples: u16) -> Option<Self> {
        Some(DtmfSender {
            event: digit_to_event(digit)?,
            start_ts,
            total: duration_samples.max(FRAME_SAMPLES as u16),
            elapsed: 0,
            done: false,
        })
    }

    /// The event's timestamp.
    pub fn start_ts(&self) -> u32 {
        self.start_ts
    }

    /// All packets have been produced.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The packets for the next 20 ms as (marker, payload): one while the tone lasts, then the
    /// end packet [`EVENT_END_REPEATS`] times, then nothing.
    pub fn tick(&mut self) -> Vec<(bool, TelephoneEvent)> {
        if self.done {
            return Vec::new();
        }
        let first = self.elapsed == 0;
        self.elapsed = self
            .elapsed
            .saturating_add(FRAME_SAMPLES as u16)
            .min(self.total);
        let ev = TelephoneEvent {
            event: self.event,
            end: self.elapsed >= self.total,
            volume: EVENT_VOLUME,
            duration: self.elapsed,
        };
        if ev.end {
            self.done = true;
            (0..EVENT_END_REPEATS)
                .map(|i| (first && i == 0, ev))
                .collect()
        } else {
            vec![(first, ev)]
        }
    }
}

/// Receive statistics of one incoming stream: RFC 3550 extended sequence numbers (loss) and
/// interarrival jitter.
#[derive(Debug, Clone, Default)]
pub struct RtpReceiveStats {
    ssrc: Option<u32>,
    base_ext: u64,
    highest_ext: u64,
    received: u64,
    /// Loss folded in from earlier SSRCs.
    lost_before: u64,
    transit: Option<i64>,
    jitter: f64,
}

impl RtpReceiveStats {
    /// Accounts for a packet; `arrival_ts` is the arrival time in 8 kHz units on a local clock.
    /// `audio` packets feed the jitter estimate (telephone events repeat timestamps).
    pub fn update(&mut self, ssrc: u32, seq: u16, ts: u32, arrival_ts: i64, audio: bool) {
        if self.ssrc != Some(ssrc) {
            self.lost_before += self.lost_current();
            self.ssrc = Some(ssrc);
            self.base_ext = (1 << 32) + u64::from(seq);
            self.highest_ext = self.base_ext;
            self.received = 0;
            self.transit = None;
        } else {
            let delta = i64::from(seq.wrapping_sub(self.highest_ext as u16) as i16);
            let ext = (self.highest_ext as i64 + delta) as u64;
            if ext > self.highest_ext {
                self.highest_ext = ext;
            }
            if ext < self.base_ext {
                self.base_ext = ext;
            }
        }
        self.received += 1;
        if audio {
            let transit = arrival_ts - i64::from(ts);
            if let Some(prev) = self.transit {
                // Timestamps wrap at 2^32: take the difference modulo 2^32, sign-extended.
                let d = ((transit - prev) as i32).unsigned_abs();
                self.jitter += (f64::from(d) - self.jitter) / 16.0;
            }
            self.transit = Some(transit);
        }
    }

    fn lost_current(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        let expected = self.highest_ext - self.base_ext + 1;
        expected.saturating_sub(self.received)
    }

    /// Packets received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets lost (expected minus received, never negative), over all SSRCs seen.
    pub fn lost(&self) -> u64 {
        self.lost_before + self.lost_current()
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter / 8.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trip() {
        let mut h = RtpHeader {
            marker: true,
            payload_type: 101,
            sequence: 0xFFFF,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
            ..RtpHeader::default()
        };
        h.csrcs.push(7).unwrap();
        let mut out = Vec::new();
        h.write(&mut out);
        out.extend_from_slice(b"abc");
        let p = parse(&out).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, b"abc");
    }

    #[test]
    fn skips_extension_and_padding() {
        let mut buf = vec![0x80 | 0x20 | 0x10, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        buf.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // one-word extension
        buf.extend_from_slice(b"pay");
        buf.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let p = parse(&buf).unwrap();
        assert!(p.header.extension && p.header.padding);
        assert_eq!(p.payload, b"pay");
        assert_eq!(p.header.sequence, 1);
        assert_eq!(p.header.timestamp, 2);
        assert_eq!(p.header.ssrc, 3);
    }

    #[test]
    fn rejects_bad_packets() {
        assert!(matches!(
            parse(&[0x80; 11]),
            Err(VoiceError::RtpTooShort(11))
        ));
        assert!(matches!(parse(&[0x40; 12]), Err(VoiceError::RtpVersion(1))));
        // CSRC count beyond the buffer.
        let mut b = vec![0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0; 8]);
        assert!(matches!(parse(&b), Err(VoiceError::RtpTruncated)));
        // Extension length beyond the buffer.
        let b = [0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
        assert!(matches!(parse(&b), Err(VoiceError::RtpTruncated)));
        // Padding longer than the payload, and zero padding.
        let b = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9];
        assert!(matches!(parse(&b), Err(VoiceError::RtpPadding)));
        let b = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(parse(&b), Err(VoiceError::RtpPadding)));
    }

    #[test]
    fn digits_and_codes() {
        for (d, c) in [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('A', 12),
            ('D', 15),
        ] {
            assert_eq!(digit_to_event(d), Some(c));
            assert_eq!(event_to_digit(c), Some(d));
        }
        assert_eq!(digit_to_event('b'), Some(13));
        assert_eq!(digit_to_event('x'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn telephone_event_round_trip() {
        let ev = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        let mut out = Vec::new();
        ev.write(&mut out);
        assert_eq!(out, [11, 0x8A, 0x03, 0x20]);
        assert_eq!(parse_telephone_event(&out).unwrap(), ev);
        assert!(parse_telephone_event(&out[..3]).is_err());
    }

    #[test]
    fn sender_audio_advances_timestamp() {
        let mut s = RtpSender::with_start(42, 65535, u32::MAX - 100);
        let mut out = Vec::new();
        s.audio_packet(0, &[0xFF; 160], &mut out);
        let p = parse(&out).unwrap();
        assert!(p.header.marker);
        assert_eq!(p.header.sequence, 65535);
        assert_eq!(p.header.timestamp, u32::MAX - 100);
        assert_eq!(p.payload.len(), 160);
        s.audio_packet(0, &[0xFF; 160], &mut out);
        let p = parse(&out).unwrap();
        assert!(!p.header.marker);
        assert_eq!(p.header.sequence, 0);
        assert_eq!(p.header.timestamp, 59);
    }

    #[test]
    fn dtmf_sequence() {
        let mut s = RtpSender::with_start(1, 10, 1000);
        let mut d = DtmfSender::new('#', s.timestamp(), 800).unwrap();
        let mut packets = Vec::new();
        let mut out = Vec::new();
        while !d.is_done() {
            for (m, ev) in d.tick() {
                s.event_packet(101, d.start_ts(), m, &ev, &mut out);
                packets.push(out.clone());
            }
            s.skip(160);
        }
        assert_eq!(packets.len(), 4 + 3);
        let parsed: Vec<_> = packets.iter().map(|p| parse(p).unwrap()).collect();
        let events: Vec<_> = parsed
            .iter()
            .map(|p| parse_telephone_event(p.payload).unwrap())
            .collect();
        assert!(parsed[0].header.marker);
        assert!(parsed[1..].iter().all(|p| !p.header.marker));
        assert!(parsed.iter().all(|p| p.header.timestamp == 1000));
        let seqs: Vec<u16> = parsed.iter().map(|p| p.header.sequence).collect();
        assert_eq!(seqs, (10..17).collect::<Vec<u16>>());
        let durs: Vec<u16> = events.iter().map(|e| e.duration).collect();
        assert_eq!(durs, [160, 320, 480, 640, 800, 800, 800]);
        assert_eq!(events.iter().filter(|e| e.end).count(), 3);
        assert!(events.iter().all(|e| e.event == 11));
        // Audio time kept advancing meanwhile.
        assert_eq!(s.timestamp(), 1000 + 5 * 160);
    }

    #[test]
    fn receive_stats_loss_and_wrap() {
        let mut r = RtpReceiveStats::default();
        let mut seq = 65530u16;
        let mut ts = 0u32;
        for i in 0..20 {
            if i != 7 && i != 8 {
                r.update(9, seq, ts, i64::from(ts) + 500, true);
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
        }
        assert_eq!(r.received(), 18);
        assert_eq!(r.lost(), 2);
        assert!(r.jitter_ms() < 0.001);
        // A duplicate does not make loss negative.
        r.update(9, seq.wrapping_sub(1), ts, 0, false);
        assert_eq!(r.lost(), 1);
    }

    #[test]
    fn receive_stats_jitter() {
        let mut r = RtpReceiveStats::default();
        for i in 0..200u32 {
            // Every other packet arrives 10 ms (80 units) late.
            let late = if i % 2 == 1 { 80 } else { 0 };
            r.update(1, i as u16, i * 160, i64::from(i * 160 + late), true);
        }
        // Steady state of J += (80 - J)/16 is 80 units = 10 ms.
        assert!((r.jitter_ms() - 10.0).abs() < 0.5, "{}", r.jitter_ms());
    }

    proptest! {
        #[test]
        fn parse_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&buf);
            let _ = parse_telephone_event(&buf);
        }

        #[test]
        fn parse_versioned_never_panics(mut buf in proptest::collection::vec(any::<u8>(), 12..80)) {
            buf[0] = (buf[0] & 0x3F) | 0x80;
            if let Ok(p) = parse(&buf) {
                prop_assert!(p.payload.len() <= buf.len());
            }
        }

        #[test]
        fn write_parse_round_trip(
            m in any::<bool>(), pt in 0u8..128, seq in any::<u16>(), ts in any::<u32>(),
            ssrc in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let h = RtpHeader { marker: m, payload_type: pt, sequence: seq, timestamp: ts, ssrc, ..RtpHeader::default() };
            let mut out = Vec::new();
            h.write(&mut out);
            out.extend_from_slice(&payload);
            let p = parse(&out).unwrap();
            prop_assert_eq!(p.header, h);
            prop_assert_eq!(p.payload, &payload[..]);
        }
    }
}
