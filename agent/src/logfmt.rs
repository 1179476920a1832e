//! How the process logs: every field value escaped ([`EscapedFields`], so bytes from a modem
//! or the network cannot reach the terminal raw), and repeated lines limited ([`RateLimit`]).
//!
//! # Why this limiter
//!
//! A flood (75 000 INVITEs, a modem repeating one URC) must not fill the disk with the same
//! line, yet an error that matters must not vanish. The limiter is a `tracing` layer that
//! decides, before any other layer sees an event, whether it is written — so the stderr
//! formatter and the console's `log` ring see the same thing, with no dependency and no
//! change at the call sites (the SIP and modem code keep their plain `warn!`s):
//!
//! - The key is the call site (one `warn!(...)` in the code: same message, whatever its field
//!   values), so a flood of one line from changing sources is still one flood. Errors are the
//!   exception: their key is the call site *and* their field values, so two different errors
//!   from one site (an alarm for slot 1 and one for slot 2) are never merged.
//! - Each key may write [`BURST`] lines per [`WINDOW`]; further lines in that window are
//!   counted, not written.
//! - The count is always reported: a background thread ([`RateLimit::spawn_reporter`]) writes
//!   one line per key and window that suppressed anything — at the highest level that was
//!   suppressed, naming the call site and the first suppressed message:
//!   `… repeated 74 981 more times in 10 s (agent/src/voice/mod.rs:455)`.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gsmgw_drivers::redact::Escaper;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber, callsite};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::layer::{Context, Layer};

/// Lines one key may write per [`WINDOW`].
pub const BURST: u32 = 10;
/// The limiter's window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Target of the limiter's own summary lines (never limited).
pub const SUMMARY_TARGET: &str = "gsmgw::log";
/// Keys kept at most (oldest windows dropped first, their counts reported).
const MAX_KEYS: usize = 4096;

/// Text-format field formatter that escapes every value (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

struct EscapingVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            self.writer
                .write_str(sep)
                .and_then(|()| Escaper(&mut self.writer).write_fmt(value))
        } else {
            let name = field.name().trim_start_matches("r#");
            write!(self.writer, "{sep}{name}=")
                .and_then(|()| Escaper(&mut self.writer).write_fmt(value))
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, format_args!("{value}"));
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

/// What the limiter keys on: the call site, and for errors a hash of the field values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    site: callsite::Identifier,
    values: u64,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    written: u32,
    suppressed: u64,
    /// Highest level suppressed in this window.
    level: Level,
    /// The first suppressed line's message and where it comes from.
    message: String,
    site: &'static str,
}

/// A suppressed run to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Highest level among the suppressed lines.
    pub level: Level,
    /// Lines not written.
    pub suppressed: u64,
    /// The first suppressed line's message.
    pub message: String,
    /// Where it comes from (`file:line`).
    pub site: &'static str,
    /// Over how long.
    pub secs: u64,
}

/// The limiter's state (shared by the layer and its reporter).
#[derive(Debug)]
pub struct Limiter {
    burst: u32,
    window: Duration,
    windows: Mutex<HashMap<Key, Window>>,
}

impl Limiter {
    /// A limiter letting `burst` lines per key through per `window`.
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            burst,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line with this key is written now; counted when it is not. `describe` gives
    /// the message and site, asked only for the first line suppressed in a window.
    fn admit(
        &self,
        key: Key,
        level: Level,
        now: Instant,
        describe: impl FnOnce() -> (String, &'static str),
    ) -> (bool, Option<Summary>) {
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut ended = None;
        if map.len() >= MAX_KEYS && !map.contains_key(&key) {
            // Bounded memory: the oldest window goes, its count reported.
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, w)| w.started)
                .map(|(k, _)| k.clone())
            {
                ended = map.remove(&oldest).and_then(|w| summary_of(&w, now));
            }
        }
        let w = map.entry(key).or_insert_with(|| Window {
            started: now,
            written: 0,
            suppressed: 0,
            level,
            message: String::new(),
            site: "",
        });
        if now.duration_since(w.started) >= self.window {
            ended = ended.or_else(|| summary_of(w, now));
            *w = Window {
                started: now,
                written: 0,
                suppressed: 0,
                level,
                message: String::new(),
                site: "",
            };
        }
        if w.written < self.burst {
            w.written += 1;
            return (true, ended);
        }
        if w.suppressed == 0 {
            let (message, site) = describe();
            w.message = message;
            w.site = site;
            w.level = level;
        } else if level < w.level {
            // tracing's Level orders ERROR as the smallest: keep the most severe.
            w.level = level;
        }
        w.suppressed += 1;
        (false, ended)
    }

    /// Summaries of the windows that ended by `now` (or all with `all`), their counts reset.
    pub fn take_summaries(&self, now: Instant, all: bool) -> Vec<Summary> {
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        map.retain(|_, w| {
            let over = now.duration_since(w.started) >= self.window;
            if over || all {
                out.extend(summary_of(w, now));
                w.suppressed = 0;
            }
            // A key quiet for a whole window is forgotten.
            !over
        });
        out
    }
}

fn summary_of(w: &Window, now: Instant) -> Option<Summary> {
    (w.suppressed > 0).then(|| Summary {
        level: w.level,
        suppressed: w.suppressed,
        message: w.message.clone(),
        site: w.site,
        secs: now.duration_since(w.started).as_secs().max(1),
    })
}

/// Writes a summary line (outside any other event: the reporter thread, or a test).
pub fn report(s: &Summary) {
    macro_rules! at {
        ($lvl:expr) => {
            tracing::event!(target: SUMMARY_TARGET, $lvl, suppressed = s.suppressed, site = s.site,
                "{} … repeated {} more times in {} s", s.message, s.suppressed, s.secs)
        };
    }
    match s.level {
        Level::ERROR => at!(Level::ERROR),
        Level::WARN => at!(Level::WARN),
        Level::INFO => at!(Level::INFO),
        Level::DEBUG => at!(Level::DEBUG),
        _ => at!(Level::TRACE),
    }
}

/// The limiting layer (see the module doc). Put it first: an event it holds back reaches no
/// other layer.
#[derive(Debug, Clone)]
pub struct RateLimit {
    limiter: Arc<Limiter>,
    /// Summaries of windows that ended, found while admitting (reported by the reporter).
    pending: Arc<Mutex<Vec<Summary>>>,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new(BURST, WINDOW)
    }
}

impl RateLimit {
    /// A layer letting `burst` lines per key through per `window`.
    pub fn new(burst: u32, window: Duration) -> Self {
        Self {
            limiter: Arc::new(Limiter::new(burst, window)),
            pending: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Reports what was suppressed: the windows that ended, and those `all` still open.
    pub fn flush(&self, all: bool) {
        let mut list: Vec<Summary> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        list.extend(self.limiter.take_summaries(Instant::now(), all));
        for s in &list {
            report(s);
        }
    }

    /// Starts the thread that writes the summaries (about once a second).
    pub fn spawn_reporter(&self) -> std::io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("log-limit".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    me.flush(false);
                }
            })
            .map(|_| ())
    }
}

/// Renders an event's message (for a summary).
struct MessageOf(String);

impl Visit for MessageOf {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(Escaper(&mut self.0), "{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = Escaper(&mut self.0).write_str(value);
        }
    }
}

/// Hashes all field values of an event (the key of an error).
struct HashValues(std::collections::hash_map::DefaultHasher);

impl Visit for HashValues {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        field.name().hash(&mut self.0);
        format!("{value:?}").hash(&mut self.0);
    }
}

fn site_of(meta: &'static Metadata<'static>) -> &'static str {
    // "event agent/src/voice/mod.rs:455": the name tracing gives an event's call site.
    meta.name().strip_prefix("event ").unwrap_or(meta.name())
}

impl<S: Subscriber> Layer<S> for RateLimit {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if meta.target() == SUMMARY_TARGET {
            return true;
        }
        let level = *meta.level();
        let values = if level == Level::ERROR {
            let mut h = HashValues(std::collections::hash_map::DefaultHasher::new());
            event.record(&mut h);
            h.0.finish()
        } else {
            0
        };
        let key = Key {
            site: meta.callsite(),
            values,
        };
        let (admit, ended) = self.limiter.admit(key, level, Instant::now(), || {
            let mut m = MessageOf(String::new());
            event.record(&mut m);
            (m.0, site_of(meta))
        });
        if let Some(s) = ended {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(s);
        }
        admit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// Collects what gets through, as `LEVEL message fields`.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            struct All(String);
            impl Visit for All {
                fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                    let _ = write!(self.0, " {}={:?}", field.name(), value);
                }
            }
            let mut a = All(event.metadata().level().to_string());
            event.record(&mut a);
            self.0.lock().unwrap().push(a.0);
        }
    }

    #[test]
    fn a_flood_is_cut_to_the_burst_and_its_count_reported() {
        let cap = Capture::default();
        let limit = RateLimit::new(5, Duration::from_secs(3600));
        let sub = tracing_subscriber::registry()
            .with(limit.clone())
            .with(cap.clone());
        tracing::subscriber::with_default(sub, || {
            for i in 0..1000 {
                tracing::warn!(source = i, "INVITE from an untrusted address refused");
            }
            // Another call site has its own budget.
            tracing::info!("something else");
            // Errors with different values are never merged; the same error is limited.
            for slot in 0..3 {
                tracing::error!(slot, "alarm");
            }
            for _ in 0..20 {
                tracing::error!(slot = 9, "alarm");
            }
            limit.flush(true);
        });
        let lines = cap.0.lock().unwrap().clone();
        let floods = lines.iter().filter(|l| l.contains("untrusted")).count();
        assert_eq!(floods, 5 + 1, "{lines:#?}");
        let summary = lines
            .iter()
            .find(|l| l.contains("repeated 995 more times"))
            .unwrap_or_else(|| panic!("{lines:#?}"));
        assert!(
            summary.starts_with("WARN") && summary.contains("logfmt.rs"),
            "{summary}"
        );
        assert!(lines.iter().any(|l| l.contains("something else")));
        for slot in 0..3 {
            assert!(
                lines.iter().any(|l| l.contains(&format!("slot={slot} "))
                    || l.ends_with(&format!("slot={slot}"))),
                "{lines:#?}"
            );
        }
        let nines = lines
            .iter()
            .filter(|l| l.starts_with("ERROR") && l.contains("slot=9"))
            .count();
        assert_eq!(nines, 5, "{lines:#?}");
        let err_summary = lines
            .iter()
            .find(|l| l.contains("repeated 15 more times"))
            .unwrap_or_else(|| panic!("{lines:#?}"));
        assert!(err_summary.starts_with("ERROR"), "{err_summary}");
    }

    #[test]
    fn windows_roll_over_and_report_what_they_held_back() {
        let l = Limiter::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        let key = || Key {
            site: callsite::Identifier(&SITE),
            values: 0,
        };
        let d = || ("m".to_string(), "here:1");
        let admitted: Vec<bool> = (0..5)
            .map(|_| l.admit(key(), Level::INFO, t0, d).0)
            .collect();
        assert_eq!(admitted, [true, true, false, false, false]);
        assert!(
            l.take_summaries(t0 + Duration::from_secs(1), false)
                .is_empty()
        );
        // The next window: written again, and the old count comes with it.
        let (ok, ended) = l.admit(key(), Level::INFO, t0 + Duration::from_secs(11), d);
        assert!(ok);
        let s = ended.unwrap();
        assert_eq!((s.suppressed, s.site, s.level), (3, "here:1", Level::INFO));
        // A window that ends quietly is reported by the reporter's sweep.
        for _ in 0..4 {
            l.admit(key(), Level::WARN, t0 + Duration::from_secs(12), d);
        }
        let s = l.take_summaries(t0 + Duration::from_secs(25), false);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].suppressed, s[0].level), (3, Level::WARN));
        assert!(
            l.take_summaries(t0 + Duration::from_secs(40), true)
                .is_empty()
        );
    }

    struct Site;
    static SITE: Site = Site;
    impl callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("not registered")
        }
    }

    #[test]
    fn escaped_fields_keep_lines_printable() {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .fmt_fields(EscapedFields)
            .with_writer(move || SinkWriter(sink.clone()));
        let sub = tracing_subscriber::registry().with(fmt);
        tracing::subscriber::with_default(sub, || {
            let line = "+CMT: \x1b[2J\r\nfake line";
            tracing::warn!(%line, text = line, "modem said \x07{}", "\x1b]0;x\x07");
        });
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
        assert!(
            text.contains("line=+CMT: \\x1b[2J\\r\\nfake line"),
            "{text:?}"
        );
        assert!(text.contains("modem said \\x07\\x1b]0;x\\x07"), "{text:?}");
    }

    struct SinkWriter(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for SinkWriter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
