//! Voice media: the modem's PCM voice port (8 kHz, 16-bit little-endian mono, 20 ms frames of
//! 320 bytes), G.711 μ-law/A-law, RTP with RFC 4733 telephone events, a jitter buffer toward the
//! modem that follows the modem's clock, WAV recording, and the bridge that ties one call's
//! voice port to its RTP stream. Signalling (SIP, SDP) lives in [`crate::sip`].

pub mod bridge;
pub mod g711;
pub mod jitter;
pub mod port;
pub mod rtp;
pub mod tone;
pub mod wav;

pub use bridge::{Bridge, BridgeConfig, BridgeEvent, BridgeStats, VoiceError};

/// Samples per second on the modem's voice port and in G.711.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 160;
/// Bytes in one 20 ms frame of 16-bit little-endian PCM.
pub const FRAME_BYTES: usize = FRAME_SAMPLES * 2;
/// One frame's duration in milliseconds.
pub const FRAME_MS: u64 = 20;

/// A G.711 codec as negotiated in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, RTP payload type 0.
    Pcmu,
    /// G.711 A-law, RTP payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The SDP encoding name (`a=rtpmap:<pt> <name>/8000`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec for an SDP encoding name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// The codec for a static payload type.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }
}

/// One 20 ms frame of linear PCM.
pub type Frame = [i16; FRAME_SAMPLES];

/// Little-endian bytes (as the modem sends them) to samples; `bytes` must be FRAME_BYTES long,
/// missing bytes read as silence.
pub fn frame_from_le(bytes: &[u8]) -> Frame {
    let mut f = [0i16; FRAME_SAMPLES];
    for (s, b) in f.iter_mut().zip(bytes.chunks_exact(2)) {
        *s = i16::from_le_bytes([b[0], b[1]]);
    }
    f
}

/// Samples to the modem's little-endian bytes.
pub fn frame_to_le(frame: &Frame) -> [u8; FRAME_BYTES] {
    let mut out = [0u8; FRAME_BYTES];
    for (o, s) in out.chunks_exact_mut(2).zip(frame.iter()) {
        o.copy_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_round_trip() {
        let mut f = [0i16; FRAME_SAMPLES];
        for (i, s) in f.iter_mut().enumerate() {
            *s = (i as i16 - 80) * 300;
        }
        assert_eq!(frame_from_le(&frame_to_le(&f)), f);
    }
}
