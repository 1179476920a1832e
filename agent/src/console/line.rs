//! Line editing for serial terminals (picocom, minicom, PuTTY): the console echoes itself.
//!
//! Bytes go in one at a time; complete lines, cancelled lines and end-of-input come out.
//! Backspace arrives as BS (0x08) or DEL (0x7f) depending on the terminal; Enter as CR, LF or
//! CRLF. Escape sequences (arrow keys, function keys) are swallowed, other control bytes are
//! ignored, and a line never grows past its bound: any byte stream is safe.
//!
//! A line is never cut: one that went past the bound comes out as [`Edit::TooLong`] (nothing
//! of it is to be executed), and one that carried control bytes, escape sequences or bytes
//! that are not UTF-8 comes out as [`Edit::Garbled`] — a command prompt may still run it (arrow
//! keys are ordinary typing), a password prompt must not count it as an attempt.

/// What a byte completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Enter was pressed: the line, as typed.
    Line(String),
    /// Enter was pressed on a line that carried control bytes (other than the editing keys),
    /// escape sequences or invalid UTF-8 (replaced); those bytes are not in it.
    Garbled(String),
    /// Enter was pressed on a line longer than the bound: thrown away whole.
    TooLong,
    /// Ctrl-C: the line was thrown away.
    Cancelled,
    /// Ctrl-D on an empty line.
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// ESC seen.
    Start,
    /// ESC [ or ESC O seen: parameters until a final byte.
    Sequence,
}

/// A bounded line editor with optional echo.
#[derive(Debug)]
pub struct LineEditor {
    buf: Vec<u8>,
    max: usize,
    echo: bool,
    last_cr: bool,
    escape: Escape,
    /// The line went past its bound (bytes were lost); the bell was rung once for it.
    overlong: bool,
    /// The line carried control bytes or escape sequences.
    garbled: bool,
}

impl LineEditor {
    /// An editor for lines of at most `max` bytes; `echo` writes what is typed back.
    pub fn new(max: usize, echo: bool) -> Self {
        Self {
            buf: Vec::new(),
            max,
            echo,
            last_cr: false,
            escape: Escape::None,
            overlong: false,
            garbled: false,
        }
    }

    /// Echo on (commands) or off (passwords, or a terminal that echoes itself).
    pub fn set_echo(&mut self, echo: bool) {
        self.echo = echo;
    }

    /// Drops the line typed so far.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.overlong = false;
        self.garbled = false;
    }

    /// Marks the line being typed as garbled (the terminal saw a control key out of place).
    pub fn taint(&mut self) {
        self.garbled = true;
    }

    /// Whether nothing has been typed on this line yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && !self.overlong && !self.garbled
    }

    /// Feeds one byte; what to send back to the terminal is appended to `out`.
    pub fn feed(&mut self, b: u8, out: &mut Vec<u8>) -> Option<Edit> {
        let after_cr = std::mem::replace(&mut self.last_cr, false);
        match self.escape {
            Escape::Start => {
                self.escape = Escape::None;
                self.garbled = true;
                if b == b'[' || b == b'O' {
                    self.escape = Escape::Sequence;
                    return None;
                }
                if (0x20..0x7f).contains(&b) {
                    return None;
                }
            }
            Escape::Sequence => {
                if (0x20..0x40).contains(&b) {
                    return None;
                }
                self.escape = Escape::None;
                if (0x40..0x7f).contains(&b) {
                    return None;
                }
            }
            Escape::None => {}
        }
        match b {
            b'\r' | b'\n' => {
                if b == b'\n' && after_cr {
                    return None;
                }
                self.last_cr = b == b'\r';
                if self.echo {
                    out.extend_from_slice(b"\r\n");
                }
                let edit = if self.overlong {
                    Edit::TooLong
                } else {
                    match String::from_utf8(std::mem::take(&mut self.buf)) {
                        Ok(line) if !self.garbled => Edit::Line(line),
                        Ok(line) => Edit::Garbled(line),
                        Err(e) => Edit::Garbled(String::from_utf8_lossy(e.as_bytes()).into_owned()),
                    }
                };
                self.clear();
                Some(edit)
            }
            0x08 | 0x7f => {
                if self.pop_char() && self.echo {
                    out.extend_from_slice(b"\x08 \x08");
                }
                None
            }
            0x03 => {
                self.clear();
                out.extend_from_slice(b"^C\r\n");
                Some(Edit::Cancelled)
            }
            0x15 => {
                while self.pop_char() {
                    if self.echo {
                        out.extend_from_slice(b"\x08 \x08");
                    }
                }
                self.clear();
                None
            }
            0x04 if self.is_empty() => Some(Edit::Eof),
            0x1b => {
                self.escape = Escape::Start;
                None
            }
            0x00..=0x1f => {
                self.garbled = true;
                None
            }
            _ => {
                if self.overlong || self.buf.len() >= self.max {
                    if !self.overlong {
                        self.overlong = true;
                        out.push(0x07);
                    }
                    return None;
                }
                self.buf.push(b);
                if self.echo {
                    out.push(b);
                }
                None
            }
        }
    }

    /// Removes the last character (a whole UTF-8 sequence); false when the line is empty.
    fn pop_char(&mut self) -> bool {
        let Some(mut last) = self.buf.pop() else {
            return false;
        };
        while (0x80..0xc0).contains(&last) {
            match self.buf.last() {
                Some(&b) if b >= 0x80 => {
                    self.buf.pop();
                    last = b;
                    if b >= 0xc0 {
                        break;
                    }
                }
                _ => break,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(ed: &mut LineEditor, input: &[u8]) -> (Vec<Edit>, Vec<u8>) {
        let mut out = Vec::new();
        let edits = input.iter().filter_map(|&b| ed.feed(b, &mut out)).collect();
        (edits, out)
    }

    #[test]
    fn enter_as_cr_lf_or_crlf() {
        let mut ed = LineEditor::new(64, true);
        let (edits, _) = run(&mut ed, b"a\rb\nc\r\nd\r\r");
        assert_eq!(
            edits,
            vec![
                Edit::Line("a".into()),
                Edit::Line("b".into()),
                Edit::Line("c".into()),
                Edit::Line("d".into()),
                Edit::Line(String::new()),
            ]
        );
    }

    #[test]
    fn backspace_as_bs_or_del_and_utf8() {
        let mut ed = LineEditor::new(64, true);
        let (edits, out) = run(&mut ed, "statuz\x08s\r".as_bytes());
        assert_eq!(edits, vec![Edit::Line("status".into())]);
        assert!(out.windows(3).any(|w| w == b"\x08 \x08"));
        let (edits, _) = run(&mut ed, "héé\x7f\x7fllo\r".as_bytes());
        assert_eq!(edits, vec![Edit::Line("hllo".into())]);
        let (edits, _) = run(&mut ed, b"\x7f\x7fok\r");
        assert_eq!(edits, vec![Edit::Line("ok".into())]);
    }

    #[test]
    fn ctrl_c_cancels_and_ctrl_u_kills() {
        let mut ed = LineEditor::new(64, true);
        let (edits, _) = run(&mut ed, b"reset modem 1\x03help\r");
        assert_eq!(edits, vec![Edit::Cancelled, Edit::Line("help".into())]);
        let (edits, _) = run(&mut ed, b"garbage\x15modems\r");
        assert_eq!(edits, vec![Edit::Line("modems".into())]);
        let (edits, _) = run(&mut ed, b"\x04");
        assert_eq!(edits, vec![Edit::Eof]);
    }

    #[test]
    fn arrow_keys_are_swallowed_and_no_echo_for_passwords() {
        let mut ed = LineEditor::new(64, false);
        let (edits, out) = run(&mut ed, b"\x1b[Ast\x1b[1;5Datus\x1bOA\r");
        assert_eq!(edits, vec![Edit::Garbled("status".into())]);
        assert!(out.is_empty());
    }

    #[test]
    fn overlong_lines_are_refused_whole_with_one_bell() {
        let mut ed = LineEditor::new(8, true);
        let (edits, out) = run(&mut ed, b"0123456789abcdef\r");
        assert_eq!(edits, vec![Edit::TooLong]);
        assert_eq!(out.iter().filter(|&&b| b == 7).count(), 1);
        // Erasing back under the bound does not bring the lost bytes back: still refused.
        let (edits, _) = run(&mut ed, b"0123456789\x7f\x7f\x7f\r");
        assert_eq!(edits, vec![Edit::TooLong]);
        // Exactly the bound is fine, and the next line is a line again.
        let (edits, _) = run(&mut ed, b"01234567\rok\r");
        assert_eq!(
            edits,
            vec![Edit::Line("01234567".into()), Edit::Line("ok".into())]
        );
        // Ctrl-U starts the line afresh.
        let (edits, _) = run(&mut ed, b"0123456789\x15ok\r");
        assert_eq!(edits, vec![Edit::Line("ok".into())]);
    }

    #[test]
    fn control_bytes_and_bad_utf8_mark_the_line_garbled() {
        let mut ed = LineEditor::new(64, false);
        for input in [
            &b"ab\x00cd\r"[..],
            b"\x01\x02\r",
            b"ab\x1bZcd\r",
            b"\x1b[Apass\r",
            b"pa\x04ss\r",
            b"pa\xffss\r",
        ] {
            let (edits, _) = run(&mut ed, input);
            assert!(
                matches!(edits.as_slice(), [Edit::Garbled(_)]),
                "{input:?}: {edits:?}"
            );
        }
        // Editing keys do not garble a line; a garbled line does not garble the next.
        let (edits, _) = run(&mut ed, "x\x7fpässword\x08d\r".as_bytes());
        assert_eq!(edits, vec![Edit::Line("pässword".into())]);
        // Ctrl-D after garbage on the same line is garbage, not end of input.
        let (edits, _) = run(&mut ed, b"\x00\x04\r\x04");
        assert_eq!(edits, vec![Edit::Garbled(String::new()), Edit::Eof]);
    }

    proptest! {
        #[test]
        fn any_bytes_are_safe(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut ed = LineEditor::new(32, true);
            let mut out = Vec::new();
            for b in input {
                if let Some(Edit::Line(l) | Edit::Garbled(l)) = ed.feed(b, &mut out) {
                    prop_assert!(l.len() <= 32 * 3);
                }
                prop_assert!(ed.buf.len() <= 32);
            }
        }
    }
}
