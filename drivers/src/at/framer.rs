//! Splits the byte stream from a modem into lines and the `> ` prompt.
//!
//! Modems end lines with CR LF, sometimes CR alone or LF alone, and send the SMS prompt `> `
//! with no line end at all. Garbage (NUL, stray binary) must never stall the framer, and a
//! line that never ends must not grow memory without bound.

/// Longest line kept; longer lines are cut and flagged (a PDU line is at most ~360 chars).
pub const MAX_LINE: usize = 2048;

/// One unit of modem output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete, non-empty line without its terminator.
    Line(String),
    /// The `> ` prompt that asks for the SMS body (no line end follows it).
    Prompt,
    /// A line that exceeded [`MAX_LINE`]; its start is kept for logging.
    Overlong(String),
}

/// Incremental line framer: feed bytes, take frames.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    overlong: bool,
}

impl Framer {
    /// A new, empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes read from the port and appends every completed frame to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) {
        for &b in bytes {
            match b {
                b'\r' | b'\n' => self.end_line(out),
                // NUL and other C0 controls (but TAB) are noise on a text line.
                0x00..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f | 0x7f => {}
                _ => {
                    if self.buf.len() < MAX_LINE {
                        self.buf.push(b);
                    } else {
                        self.overlong = true;
                    }
                }
            }
        }
        // The prompt has no terminator: recognise it when it is all that is pending.
        if !self.overlong && (self.buf == b"> " || self.buf == b">") && bytes.last() != Some(&b'\n')
        {
            // A bare ">" could be the start of a line; modems always send "> " but some
            // (SIMCom over some USB bridges) split it, so accept ">" only at a read boundary.
            self.buf.clear();
            out.push(Frame::Prompt);
        }
    }

    /// Bytes of an unfinished line currently held.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Drops any unfinished line (used after a timeout to resynchronise).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.overlong = false;
    }

    fn end_line(&mut self, out: &mut Vec<Frame>) {
        if self.buf.is_empty() && !self.overlong {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf).trim().to_string();
        self.buf.clear();
        if std::mem::take(&mut self.overlong) {
            out.push(Frame::Overlong(text));
        } else if !text.is_empty() {
            out.push(Frame::Line(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Garbage in any chunking never panics, never holds more than MAX_LINE, and a clean
        /// line after it is still recognised.
        #[test]
        fn garbage_never_wedges_the_framer(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut f = Framer::new();
            let mut out = Vec::new();
            for c in &chunks {
                f.push(c, &mut out);
                prop_assert!(f.pending() <= MAX_LINE);
            }
            out.clear();
            f.push(b"\r\nOK\r\n", &mut out);
            let ok = Frame::Line("OK".into());
            prop_assert_eq!(out.last(), Some(&ok));
        }
    }

    fn frames(chunks: &[&[u8]]) -> Vec<Frame> {
        let mut f = Framer::new();
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        out
    }

    #[test]
    fn splits_crlf_cr_and_lf_lines() {
        let out = frames(&[b"\r\nOK\r\n+CSQ: 1,99\rRING\nX"]);
        assert_eq!(
            out,
            vec![
                Frame::Line("OK".into()),
                Frame::Line("+CSQ: 1,99".into()),
                Frame::Line("RING".into())
            ]
        );
    }

    #[test]
    fn line_split_across_reads() {
        let out = frames(&[b"\r\n+CM", b"TI: \"SM\",", b"3\r", b"\n"]);
        assert_eq!(out, vec![Frame::Line("+CMTI: \"SM\",3".into())]);
    }

    #[test]
    fn prompt_without_line_end() {
        let out = frames(&[b"\r\n> "]);
        assert_eq!(out, vec![Frame::Prompt]);
        let out = frames(&[b"AT+CMGS=23\r\r\n> "]);
        assert_eq!(out, vec![Frame::Line("AT+CMGS=23".into()), Frame::Prompt]);
    }

    #[test]
    fn garbage_is_dropped_and_overlong_is_bounded() {
        let out = frames(&[b"\x00\x01\xffO\x00K\r\n"]);
        assert_eq!(out.len(), 1);
        let big = vec![b'A'; MAX_LINE * 3];
        let mut f = Framer::new();
        let mut out = Vec::new();
        f.push(&big, &mut out);
        assert!(f.pending() <= MAX_LINE);
        f.push(b"\r\nOK\r\n", &mut out);
        assert!(matches!(out[0], Frame::Overlong(_)));
        assert_eq!(out[1], Frame::Line("OK".into()));
    }
}
