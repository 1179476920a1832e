//! Output pins a modem's power can hang on: a GPIO line through the character device, or a
//! pin over a Unix socket (for simulated boards: the modem simulator listens there).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use embedded_hal::digital::{ErrorKind, ErrorType, OutputPin};
use linux_embedded_hal::CdevPin;
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};

/// A pin failure.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The GPIO character device refused.
    #[error("gpio {chip} line {line}: {message}")]
    Gpio {
        /// Chip device.
        chip: String,
        /// Line offset.
        line: u32,
        /// What went wrong.
        message: String,
    },
    /// The socket pin's peer did not take the level.
    #[error("pin socket {path}: {message}")]
    Socket {
        /// Socket path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl embedded_hal::digital::Error for PinError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// A pin whose level is sent as `{"op":"pin","level":true|false}` over a Unix socket and
/// acknowledged with `{"ok":true,…}`.
#[derive(Debug, Clone)]
pub struct SocketPin {
    path: PathBuf,
}

impl SocketPin {
    /// A pin at `path` (nothing is opened until the first level is set).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn set(&mut self, level: bool) -> Result<(), PinError> {
        let err = |message: String| PinError::Socket {
            path: self.path.display().to_string(),
            message,
        };
        let mut s = UnixStream::connect(&self.path).map_err(|e| err(e.to_string()))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| err(e.to_string()))?;
        let msg = serde_json::json!({"op": "pin", "level": level});
        writeln!(s, "{msg}").map_err(|e| err(e.to_string()))?;
        let mut reply = String::new();
        BufReader::new(&s)
            .read_line(&mut reply)
            .map_err(|e| err(e.to_string()))?;
        let v: serde_json::Value =
            serde_json::from_str(&reply).map_err(|e| err(format!("bad reply: {e}")))?;
        if v.get("ok").and_then(serde_json::Value::as_bool) == Some(true) {
            Ok(())
        } else {
            Err(err(format!("refused: {}", reply.trim())))
        }
    }
}

impl ErrorType for SocketPin {
    type Error = PinError;
}

impl OutputPin for SocketPin {
    fn set_low(&mut self) -> Result<(), PinError> {
        self.set(false)
    }
    fn set_high(&mut self) -> Result<(), PinError> {
        self.set(true)
    }
}

/// A GPIO output line through the Linux GPIO character device.
pub struct GpioPin {
    pin: CdevPin,
    chip: String,
    line: u32,
}

impl GpioPin {
    /// Requests `line` of `chip` (e.g. "/dev/gpiochip0") as an output, initially `initial`.
    pub fn open(chip: &str, line: u32, initial: bool) -> Result<Self, PinError> {
        let err = |message: String| PinError::Gpio {
            chip: chip.to_string(),
            line,
            message,
        };
        let mut c = Chip::new(chip).map_err(|e| err(e.to_string()))?;
        let handle = c
            .get_line(line)
            .and_then(|l| l.request(LineRequestFlags::OUTPUT, u8::from(initial), "gsmgw"))
            .map_err(|e| err(e.to_string()))?;
        let pin = CdevPin::new(handle).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            pin,
            chip: chip.to_string(),
            line,
        })
    }

    /// Drives the line high or low.
    pub fn set(&mut self, high: bool) -> Result<(), PinError> {
        if high {
            self.set_high()
        } else {
            self.set_low()
        }
    }

    fn map(&self, e: impl std::fmt::Debug) -> PinError {
        PinError::Gpio {
            chip: self.chip.clone(),
            line: self.line,
            message: format!("{e:?}"),
        }
    }
}

impl ErrorType for GpioPin {
    type Error = PinError;
}

impl OutputPin for GpioPin {
    fn set_low(&mut self) -> Result<(), PinError> {
        self.pin.set_low().map_err(|e| self.map(e))
    }
    fn set_high(&mut self) -> Result<(), PinError> {
        self.pin.set_high().map_err(|e| self.map(e))
    }
}

/// Either kind of power pin, chosen by the board profile.
pub enum PowerPin {
    /// A real GPIO line.
    Gpio(GpioPin),
    /// A simulated board's pin.
    Socket(SocketPin),
}

impl ErrorType for PowerPin {
    type Error = PinError;
}

impl OutputPin for PowerPin {
    fn set_low(&mut self) -> Result<(), PinError> {
        match self {
            PowerPin::Gpio(p) => p.set_low(),
            PowerPin::Socket(p) => p.set_low(),
        }
    }
    fn set_high(&mut self) -> Result<(), PinError> {
        match self {
            PowerPin::Gpio(p) => p.set_high(),
            PowerPin::Socket(p) => p.set_high(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn socket_pin_sends_levels_and_reports_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let peer = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (i, conn) in listener.incoming().take(3).enumerate() {
                let conn = conn.unwrap();
                let mut line = String::new();
                BufReader::new(&conn).read_line(&mut line).unwrap();
                seen.push(line.trim().to_string());
                let reply = if i < 2 {
                    "{\"ok\":true}\n"
                } else {
                    "{\"ok\":false}\n"
                };
                (&conn).write_all(reply.as_bytes()).unwrap();
            }
            seen
        });
        let mut pin = SocketPin::new(&path);
        pin.set_low().unwrap();
        pin.set_high().unwrap();
        assert!(pin.set_high().is_err());
        let seen = peer.join().unwrap();
        assert_eq!(seen[0], r#"{"level":false,"op":"pin"}"#);
        assert_eq!(seen[1], r#"{"level":true,"op":"pin"}"#);
        assert!(SocketPin::new(dir.path().join("nobody")).set_low().is_err());
    }

    #[test]
    fn missing_gpio_chip_is_an_error_not_a_panic() {
        assert!(GpioPin::open("/dev/no-such-gpiochip", 3, true).is_err());
    }
}
