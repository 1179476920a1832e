//! Power-cycling a modem through its power-key / reset GPIO.

use std::time::Duration;

use embedded_hal::digital::OutputPin;

/// One step of a pulse sequence: drive the pin, then hold for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct PulseStep {
    /// Drive the pin high (true) or low (false).
    pub high: bool,
    /// How long to hold, in milliseconds.
    pub hold_ms: u64,
}

/// Why a power operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// The pin driver refused.
    #[error("power pin: {0}")]
    Pin(String),
    /// The sequence is empty.
    #[error("empty pulse sequence")]
    EmptySequence,
}

/// A modem's power control: a pin and the pulse sequence the board's profile gives.
pub struct ModemPower<P: OutputPin> {
    pin: P,
    sequence: Vec<PulseStep>,
}

impl<P: OutputPin> ModemPower<P> {
    /// A power control over `pin` with `sequence` (e.g. low 100 ms, high 1500 ms, low).
    pub fn new(pin: P, sequence: Vec<PulseStep>) -> Result<Self, PowerError> {
        if sequence.is_empty() {
            return Err(PowerError::EmptySequence);
        }
        Ok(Self { pin, sequence })
    }

    /// Runs the pulse sequence, sleeping between steps with `sleep` (async-friendly: the
    /// caller passes tokio's sleep or a test clock).
    pub async fn pulse<F, Fut>(&mut self, mut sleep: F) -> Result<(), PowerError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        for step in &self.sequence {
            let r = if step.high {
                self.pin.set_high()
            } else {
                self.pin.set_low()
            };
            r.map_err(|e| PowerError::Pin(format!("{e:?}")))?;
            if step.hold_ms > 0 {
                sleep(Duration::from_millis(step.hold_ms)).await;
            }
        }
        Ok(())
    }

    /// The pin, for inspection.
    pub fn pin(&self) -> &P {
        &self.pin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::convert::Infallible;

    /// A pin that records every level it was driven to (unit-test double).
    #[derive(Default)]
    struct RecPin(RefCell<Vec<bool>>);
    impl embedded_hal::digital::ErrorType for RecPin {
        type Error = Infallible;
    }
    impl OutputPin for RecPin {
        fn set_low(&mut self) -> Result<(), Infallible> {
            self.0.borrow_mut().push(false);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Infallible> {
            self.0.borrow_mut().push(true);
            Ok(())
        }
    }

    #[test]
    fn pulse_follows_the_sequence() {
        let seq = vec![
            PulseStep {
                high: true,
                hold_ms: 100,
            },
            PulseStep {
                high: false,
                hold_ms: 1500,
            },
            PulseStep {
                high: true,
                hold_ms: 0,
            },
        ];
        let mut p = ModemPower::new(RecPin::default(), seq).unwrap();
        let slept = RefCell::new(Vec::new());
        {
            let fut = p.pulse(|d| {
                slept.borrow_mut().push(d.as_millis());
                std::future::ready(())
            });
            // The futures are ready at once: poll with a no-op waker.
            let mut fut = std::pin::pin!(fut);
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            assert!(fut.as_mut().poll(&mut cx).is_ready());
        }
        assert_eq!(*p.pin().0.borrow(), vec![true, false, true]);
        assert_eq!(*slept.borrow(), vec![100, 1500]);
        assert!(ModemPower::new(RecPin::default(), vec![]).is_err());
    }
}
