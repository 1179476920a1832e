//! The modem's PCM voice port: a tty (USB serial function or pty) carrying 8 kHz 16-bit
//! little-endian mono in both directions. Reads arrive in arbitrary pieces and are reassembled
//! into 320-byte frames; buffers are fixed-size.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use super::{FRAME_BYTES, Frame, VoiceError, frame_from_le, frame_to_le};

/// Nominal baud rate; irrelevant on USB and ptys but required by the API.
const BAUD: u32 = 115_200;

/// Reassembles exactly [`FRAME_BYTES`]-byte frames from a byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: [u8; FRAME_BYTES],
    filled: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a byte stream.
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: [0; FRAME_BYTES],
            filled: 0,
        }
    }

    /// The next whole frame. Cancel-safe: a partial frame stays buffered for the next call.
    /// End of stream is [`VoiceError::PortClosed`].
    pub async fn read_frame(&mut self) -> Result<Frame, VoiceError> {
        while self.filled < FRAME_BYTES {
            let n = self.inner.read(&mut self.buf[self.filled..]).await?;
            if n == 0 {
                return Err(VoiceError::PortClosed);
            }
            self.filled += n;
        }
        self.filled = 0;
        Ok(frame_from_le(&self.buf))
    }
}

/// Writes frames as little-endian bytes.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps a byte sink.
    pub fn new(inner: W) -> Self {
        FrameWriter { inner }
    }

    /// Writes one frame completely.
    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), VoiceError> {
        self.inner.write_all(&frame_to_le(frame)).await?;
        Ok(())
    }
}

/// The reading half of an open voice port.
pub type VoicePortReader = FrameReader<ReadHalf<SerialStream>>;
/// The writing half of an open voice port.
pub type VoicePortWriter = FrameWriter<WriteHalf<SerialStream>>;

/// An open voice port.
#[derive(Debug)]
pub struct VoicePort {
    path: PathBuf,
    reader: VoicePortReader,
    writer: VoicePortWriter,
}

impl VoicePort {
    /// Opens `path` in raw mode, exclusively. Must be called inside a tokio runtime.
    pub fn open(path: &Path) -> Result<Self, VoiceError> {
        let stream = tokio_serial::new(path.to_string_lossy(), BAUD)
            .open_native_async()
            .map_err(|e| VoiceError::PortOpen {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let (r, w) = tokio::io::split(stream);
        Ok(VoicePort {
            path: path.to_path_buf(),
            reader: FrameReader::new(r),
            writer: FrameWriter::new(w),
        })
    }

    /// The tty's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next whole frame from the modem (cancel-safe).
    pub async fn read_frame(&mut self) -> Result<Frame, VoiceError> {
        self.reader.read_frame().await
    }

    /// Writes one frame to the modem.
    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), VoiceError> {
        self.writer.write_frame(frame).await
    }

    /// Splits into halves that can live in separate tasks.
    pub fn into_split(self) -> (VoicePortReader, VoicePortWriter) {
        (self.reader, self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::FRAME_SAMPLES;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    fn ramp() -> Frame {
        let mut f = [0i16; FRAME_SAMPLES];
        for (i, s) in f.iter_mut().enumerate() {
            *s = i as i16 * 101 - 8000;
        }
        f
    }

    #[tokio::test]
    async fn reassembles_partial_reads() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut r = FrameReader::new(b);
        let bytes = frame_to_le(&ramp());
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(7).chain(bytes.chunks(100)) {
                a.write_all(chunk).await.unwrap();
            }
            a
        });
        assert_eq!(r.read_frame().await.unwrap(), ramp());
        assert_eq!(r.read_frame().await.unwrap(), ramp());
        drop(writer.await.unwrap());
        assert!(matches!(r.read_frame().await, Err(VoiceError::PortClosed)));
    }

    #[tokio::test]
    async fn pty_round_trip() {
        let (mut master, slave) = SerialStream::pair().unwrap();
        let path = tokio_serial::SerialPort::name(&slave).unwrap();
        let mut port = VoicePort::open(Path::new(&path)).unwrap();
        assert_eq!(port.path(), Path::new(&path));
        master.write_all(&frame_to_le(&ramp())).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), port.read_frame()).await;
        assert_eq!(got.unwrap().unwrap(), ramp());
        port.write_frame(&ramp()).await.unwrap();
        let mut fr = FrameReader::new(&mut master);
        let back = tokio::time::timeout(Duration::from_secs(5), fr.read_frame()).await;
        assert_eq!(back.unwrap().unwrap(), ramp());
    }

    #[test]
    fn open_missing_path_fails() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        let e = VoicePort::open(Path::new("/nonexistent/ttyVOICE")).unwrap_err();
        assert!(matches!(e, VoiceError::PortOpen { .. }));
    }
}
