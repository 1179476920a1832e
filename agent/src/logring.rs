//! The last log lines in memory, for the console's `log [N]` and `cmd/log-fetch`: a `tracing` layer that keeps a
//! bounded ring of formatted lines (what the process's log filter lets through).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use gsmgw_drivers::redact::Escaper;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept.
pub const CAPACITY: usize = 500;
/// Longest line kept, in bytes.
const MAX_LINE: usize = 400;

/// A bounded ring of log lines.
#[derive(Debug, Default)]
pub struct LogRing {
    lines: Mutex<VecDeque<String>>,
}

impl LogRing {
    /// Adds a line, dropping the oldest beyond [`CAPACITY`].
    pub fn push(&self, mut line: String) {
        if line.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push('…');
        }
        let mut l = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() >= CAPACITY {
            l.pop_front();
        }
        l.push_back(line);
    }

    /// The last `n` lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<String> {
        let l = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        l.iter().skip(l.len().saturating_sub(n)).cloned().collect()
    }
}

/// The process's ring (one per process, shared by the layer and the console).
pub fn log_ring() -> Arc<LogRing> {
    static RING: OnceLock<Arc<LogRing>> = OnceLock::new();
    RING.get_or_init(|| Arc::new(LogRing::default())).clone()
}

/// The `tracing` layer that feeds [`log_ring`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LogRingLayer;

struct Fields {
    message: String,
    rest: String,
}

// Values are escaped: these lines go to a technician's terminal, and modem or network bytes
// in them must not reach it raw.
impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = Escaper(&mut self.message).write_str(value);
        } else {
            let _ = write!(self.rest, " {}=", field.name());
            let _ = Escaper(&mut self.rest).write_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(Escaper(&mut self.message), "{value:?}");
        } else {
            let _ = write!(self.rest, " {}=", field.name());
            let _ = write!(Escaper(&mut self.rest), "{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for LogRingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields {
            message: String::new(),
            rest: String::new(),
        };
        event.record(&mut f);
        let meta = event.metadata();
        log_ring().push(format!(
            "{} {:>5} {}: {}{}",
            crate::clock::now_rfc3339(),
            meta.level(),
            meta.target(),
            f.message,
            f.rest
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_ordered() {
        let r = LogRing::default();
        for i in 0..(CAPACITY + 10) {
            r.push(format!("line {i}"));
        }
        let last = r.last(3);
        assert_eq!(last, vec!["line 507", "line 508", "line 509"]);
        assert_eq!(r.last(10_000).len(), CAPACITY);
        r.push("é".repeat(1000));
        assert!(r.last(1)[0].len() <= MAX_LINE + 3);
    }
}
