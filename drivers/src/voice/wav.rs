//! Call recording as a WAV file: 8 kHz, 16-bit PCM, stereo with the modem (GSM) side on the
//! left and the RTP (SIP) side on the right. Sizes are written as 0 first and fixed when the
//! recording is finished (or, best effort, when the writer is dropped).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{FRAME_SAMPLES, Frame, SAMPLE_RATE, VoiceError};

const CHANNELS: u16 = 2;
const BITS: u16 = 16;
const HEADER_LEN: u32 = 44;

/// Writes a stereo recording frame by frame.
#[derive(Debug)]
pub struct WavWriter {
    out: Option<BufWriter<File>>,
    data_bytes: u32,
    frames: u64,
}

fn header(data_bytes: u32) -> [u8; HEADER_LEN as usize] {
    let block_align = CHANNELS * BITS / 8;
    let byte_rate = SAMPLE_RATE * u32::from(block_align);
    let mut h = [0u8; HEADER_LEN as usize];
    let mut at = 0;
    let mut put = |b: &[u8]| {
        h[at..at + b.len()].copy_from_slice(b);
        at += b.len();
    };
    put(b"RIFF");
    put(&(36u32.saturating_add(data_bytes)).to_le_bytes());
    put(b"WAVE");
    put(b"fmt ");
    put(&16u32.to_le_bytes());
    put(&1u16.to_le_bytes()); // PCM
    put(&CHANNELS.to_le_bytes());
    put(&SAMPLE_RATE.to_le_bytes());
    put(&byte_rate.to_le_bytes());
    put(&block_align.to_le_bytes());
    put(&BITS.to_le_bytes());
    put(b"data");
    put(&data_bytes.to_le_bytes());
    h
}

impl WavWriter {
    /// Creates (truncates) `path` and writes a header with zero sizes.
    pub fn create(path: &Path) -> Result<Self, VoiceError> {
        // Recordings are calls: private to the agent (0600) whatever the umask.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        out.write_all(&header(0))?;
        Ok(WavWriter {
            out: Some(out),
            data_bytes: 0,
            frames: 0,
        })
    }

    /// Appends 20 ms: `left` is the modem side, `right` the RTP side.
    pub fn write_frames(&mut self, left: &Frame, right: &Frame) -> Result<(), VoiceError> {
        let Some(out) = self.out.as_mut() else {
            return Err(VoiceError::Wav("recording already finished".into()));
        };
        let mut buf = [0u8; FRAME_SAMPLES * 4];
        for (i, (l, r)) in left.iter().zip(right.iter()).enumerate() {
            buf[i * 4..i * 4 + 2].copy_from_slice(&l.to_le_bytes());
            buf[i * 4 + 2..i * 4 + 4].copy_from_slice(&r.to_le_bytes());
        }
        // RIFF sizes are 32-bit: stop growing rather than write a corrupt file (~37 h).
        let Some(new_size) = self
            .data_bytes
            .checked_add(buf.len() as u32)
            .filter(|&n| n <= u32::MAX - HEADER_LEN)
        else {
            return Err(VoiceError::Wav("recording too long".into()));
        };
        out.write_all(&buf)?;
        self.data_bytes = new_size;
        self.frames += 1;
        Ok(())
    }

    /// Frame pairs written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Writes the final sizes and flushes; the writer accepts no more frames.
    pub fn finish(&mut self) -> Result<(), VoiceError> {
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        out.flush()?;
        let mut file = out
            .into_inner()
            .map_err(|e| VoiceError::Io(e.into_error()))?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header(self.data_bytes))?;
        file.flush()?;
        Ok(())
    }
}

impl Drop for WavWriter {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::warn!(error = %e, "could not finish the recording");
        }
    }
}

/// Reads a 16-bit PCM WAV file (for tests and tools): (channels, sample rate, interleaved
/// samples).
pub fn read_wav(path: &Path) -> Result<(u16, u32, Vec<i16>), VoiceError> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    parse_wav(&bytes)
}

/// Parses a 16-bit PCM WAV image: (channels, sample rate, interleaved samples).
pub fn parse_wav(bytes: &[u8]) -> Result<(u16, u32, Vec<i16>), VoiceError> {
    let bad = |why: &str| VoiceError::Wav(why.to_string());
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(bad("not a RIFF/WAVE file"));
    }
    let mut at = 12;
    let mut fmt: Option<(u16, u32, u16)> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body_start = at + 8;
        let body_end = body_start.saturating_add(len).min(bytes.len());
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err(bad("short fmt chunk"));
                }
                let format = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                let bits = u16::from_le_bytes([body[14], body[15]]);
                if format != 1 || bits != 16 {
                    return Err(bad("not 16-bit PCM"));
                }
                fmt = Some((channels, rate, bits));
            }
            b"data" => {
                let Some((channels, rate, _)) = fmt else {
                    return Err(bad("data before fmt"));
                };
                let samples = body
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                return Ok((channels, rate, samples));
            }
            _ => {}
        }
        at = body_start.saturating_add(len).saturating_add(len & 1);
    }
    Err(bad("no data chunk"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("gsmgw-wav-{}-{name}.wav", std::process::id()))
    }

    #[test]
    fn writes_and_reads_stereo() {
        let path = temp_path("rw");
        let mut w = WavWriter::create(&path).unwrap();
        let left = [100i16; FRAME_SAMPLES];
        let right = [-7i16; FRAME_SAMPLES];
        for _ in 0..3 {
            w.write_frames(&left, &right).unwrap();
        }
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 44 + 3 * 640);
        assert_eq!(
            u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            36 + 1920
        );
        assert_eq!(
            u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]),
            1920
        );
        let (channels, rate, samples) = read_wav(&path).unwrap();
        assert_eq!((channels, rate), (2, 8000));
        assert_eq!(samples.len(), 3 * 320);
        assert!(samples.chunks(2).all(|p| p == [100, -7]));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn drop_fixes_sizes() {
        let path = temp_path("drop");
        {
            let mut w = WavWriter::create(&path).unwrap();
            w.write_frames(&[1; FRAME_SAMPLES], &[2; FRAME_SAMPLES])
                .unwrap();
        }
        let (_, _, samples) = read_wav(&path).unwrap();
        assert_eq!(samples.len(), 320);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_wav(b"").is_err());
        assert!(parse_wav(b"RIFF\0\0\0\0WAVEdata\x04\0\0\0abcd").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(mut buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            if buf.len() >= 12 {
                buf[0..4].copy_from_slice(b"RIFF");
                buf[8..12].copy_from_slice(b"WAVE");
            }
            let _ = parse_wav(&buf);
        }
    }
}
