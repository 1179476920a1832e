//! Log hygiene: phone numbers masked, bytes from modems and networks made printable.
//!
//! A phone number in a log line at info level or above is masked with [`number`]: who sent or
//! got a message or call is the customer's business, not the log's. Rule ([`mask_number`],
//! counted in characters, so an alphanumeric sender is masked the same way):
//!
//! | length   | kept                          | example                          |
//! |----------|-------------------------------|----------------------------------|
//! | > 10     | the first 6 and the last 4    | `+380501234567` → `+38050***4567` |
//! | 7 to 10  | the first 3 and the last 2    | `0501234567` → `050***67`        |
//! | 4 to 6   | the first and the last        | `12345` → `1***5`                |
//! | 1 to 3   | nothing                       | `112` → `***`                    |
//!
//! The hidden part is always `***`, whatever its length. When the process logs at debug level
//! (`GSMGW_LOG=debug`, or any filter that lets debug lines through) numbers are shown in full.
//!
//! Text that came from a modem or the network goes into a log line through [`printable`]:
//! control characters (ESC, CR, LF, NUL, DEL, C1) are escaped (`\x1b`, `\r`, `\n`, `\x9b`),
//! so a line cannot move the cursor, clear the screen or forge a second log line. (Backslashes
//! stay as they are: the log's formatter passes `Debug` output, already escaped, through the
//! same [`Escaper`], and must not escape it twice.)

use std::fmt;

/// The hidden part of a masked number.
pub const MASK: &str = "***";

/// `number` with its middle hidden (see the module doc for the rule).
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let (head, tail) = match chars.len() {
        n if n > 10 => (6, 4),
        7..=10 => (3, 2),
        4..=6 => (1, 1),
        _ => (0, 0),
    };
    let mut out: String = chars[..head].iter().collect();
    out.push_str(MASK);
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// Whether numbers are logged in full: the process logs at debug level or finer.
pub fn full_numbers() -> bool {
    tracing::level_filters::LevelFilter::current() >= tracing::level_filters::LevelFilter::DEBUG
}

/// A phone number for a log line: masked unless the process logs at debug level.
#[derive(Clone, Copy)]
pub struct Number<'a>(pub &'a str);

/// A phone number for a log line (see [`Number`]).
pub fn number(n: &str) -> Number<'_> {
    Number(n)
}

impl fmt::Display for Number<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if full_numbers() {
            Printable(self.0).fmt(f)
        } else {
            Printable(&mask_number(self.0)).fmt(f)
        }
    }
}

impl fmt::Debug for Number<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Text from a modem or the network, escaped for a log line.
#[derive(Clone, Copy)]
pub struct Printable<'a>(pub &'a str);

/// Text from a modem or the network, escaped for a log line (see [`Printable`]).
pub fn printable(s: &str) -> Printable<'_> {
    Printable(s)
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Write::write_str(&mut Escaper(f), self.0)
    }
}

impl fmt::Debug for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A `fmt::Write` that escapes the control characters in what goes through it before passing
/// it on: wrap any writer to make a whole log line printable.
pub struct Escaper<W>(pub W);

impl<W: fmt::Write> fmt::Write for Escaper<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, c) in s.char_indices() {
            let escaped: Option<&str> = match c {
                '\r' => Some("\\r"),
                '\n' => Some("\\n"),
                '\t' => Some("\\t"),
                _ => None,
            };
            if escaped.is_none() && !c.is_control() {
                continue;
            }
            self.0.write_str(&s[start..i])?;
            match escaped {
                Some(e) => self.0.write_str(e)?,
                None if (c as u32) < 0x100 => write!(self.0, "\\x{:02x}", c as u32)?,
                None => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            start = i + c.len_utf8();
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_by_length() {
        for (n, masked) in [
            ("+380501234567", "+38050***4567"),
            ("380501234567", "380501***4567"),
            ("+4915112345678", "+49151***5678"),
            ("0501234567", "050***67"),
            ("1234567", "123***67"),
            ("12345", "1***5"),
            ("1234", "1***4"),
            ("112", "***"),
            ("", "***"),
            ("Kyivstar", "Kyi***ar"),
            ("Укртелеком", "Укр***ом"),
        ] {
            assert_eq!(mask_number(n), masked, "{n}");
        }
        // Never more than half of a long number is shown, and never the middle.
        let m = mask_number("+380501234567");
        assert!(!m.contains("123"), "{m}");
    }

    #[test]
    fn control_bytes_are_escaped() {
        assert_eq!(
            printable("+CMT: \"+3805\x1b[2J\"\r\n\0\x7f\u{9b}é\\").to_string(),
            "+CMT: \"+3805\\x1b[2J\"\\r\\n\\x00\\x7f\\x9bé\\"
        );
        assert_eq!(printable("plain text").to_string(), "plain text");
        assert_eq!(printable("\u{2028}").to_string(), "\u{2028}");
    }
}
