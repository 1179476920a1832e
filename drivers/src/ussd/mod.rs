//! USSD (3GPP TS 27.007 `AT+CUSD`, TS 23.038 for the coding): which strings may be sent, how a
//! request is written for a modem, what a `+CUSD` answer means and how its text is decoded.
//! [`session`] runs one exchange (request, menu replies, cancel) over an AT engine.
//!
//! Modems differ in two ways that matter here:
//! - the request string: most firmwares take it as text in the TE character set (`AT+CSCS`);
//!   Huawei-style firmwares want the GSM 7-bit septets packed and written as hex (as on the air
//!   interface), and refuse plain text with ERROR;
//! - the answer string: text in the TE character set, hex of the packed septets (the same
//!   Huawei firmwares), or hex of UCS-2 (DCS 72, and any answer when `AT+CSCS="UCS2"`).

pub mod session;

use serde::Serialize;

use crate::pdu::{from_hex, gsm7, to_hex, ucs2};

/// The longest USSD string accepted (a USSD string is at most 160 GSM 7-bit characters).
pub const MAX_CODE_LEN: usize = 160;

/// Ends an open USSD session (a menu the caller does not answer).
pub const CANCEL_COMMAND: &str = "AT+CUSD=2";

/// Why a string is not something to send as USSD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Nothing to send.
    #[error("the USSD string is empty")]
    Empty,
    /// Over [`MAX_CODE_LEN`] characters.
    #[error("the USSD string has {0} characters (at most {MAX_CODE_LEN})")]
    TooLong(usize),
    /// A character other than a digit, `*` or `#`.
    #[error("the USSD string may hold only digits, '*' and '#' (found {0:?})")]
    BadChar(char),
}

/// Checks that `code` is a USSD string (`*`, `#` and digits, at most 160): anything else is
/// refused before it can reach a modem (it is written inside an AT command line).
pub fn validate_code(code: &str) -> Result<(), CodeError> {
    if code.is_empty() {
        return Err(CodeError::Empty);
    }
    if let Some(c) = code
        .chars()
        .find(|c| !(c.is_ascii_digit() || *c == '*' || *c == '#'))
    {
        return Err(CodeError::BadChar(c));
    }
    let n = code.chars().count();
    if n > MAX_CODE_LEN {
        return Err(CodeError::TooLong(n));
    }
    Ok(())
}

/// How the request string is written inside `AT+CUSD=1,"…",15`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestEncoding {
    /// As text in the TE character set (`AT+CSCS="GSM"` or `"IRA"`): `*111#`.
    Plain,
    /// The GSM 7-bit septets packed and written as hex (Huawei-style firmware): `AA180C3602`.
    PackedHex,
    /// Hex of the UCS-2 units (when the TE character set is `"UCS2"`): `002A003100310031...`.
    Ucs2Hex,
}

/// How one dialect does USSD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UssdSpec {
    /// Request encodings, tried in order; the next is tried only when the modem refuses the
    /// command (ERROR / +CME ERROR), never after the network answered.
    pub encodings: &'static [RequestEncoding],
    /// The firmware prints GSM 7-bit answers as hex of the packed septets.
    pub packed_answers: bool,
}

impl UssdSpec {
    /// Plain text first, packed hex if the firmware refuses it (most vendors).
    pub const PLAIN_FIRST: UssdSpec = UssdSpec {
        encodings: &[RequestEncoding::Plain, RequestEncoding::PackedHex],
        packed_answers: false,
    };
    /// Packed hex first (Huawei-style firmware), plain if that is refused.
    pub const PACKED_FIRST: UssdSpec = UssdSpec {
        encodings: &[RequestEncoding::PackedHex, RequestEncoding::Plain],
        packed_answers: true,
    };
}

/// Packs text as GSM 7-bit septets into octets the way USSD does (23.038 §6.1.2.3.1): when
/// the last octet would leave 7 spare bits, they hold a CR rather than zeros (which would read
/// as '@'); a CR that ends on an octet boundary gets a second CR.
pub fn pack_gsm7(text: &str) -> Option<Vec<u8>> {
    let mut septets = gsm7::encode(text).ok()?;
    let n = septets.len();
    if n % 8 == 7 || (n % 8 == 0 && septets.last() == Some(&0x0D)) {
        septets.push(0x0D);
    }
    Some(gsm7::pack(&septets, 0))
}

/// Unpacks USSD GSM 7-bit octets into text; a trailing CR that is padding is dropped.
pub fn unpack_gsm7(octets: &[u8]) -> String {
    let count = octets.len() * 8 / 7;
    let mut septets = gsm7::unpack(octets, 0, count).unwrap_or_default();
    // When the octets hold a whole number of septets, the last one may be padding: a CR in
    // the 7 spare bits (23.038), or zero bits (which would read as '@') from some firmwares.
    if octets.len() % 7 == 0 && matches!(septets.last(), Some(0x0D | 0x00)) {
        septets.pop();
    }
    gsm7::decode(&septets)
}

/// The `AT+CUSD=1,…` line that sends `code` (already validated) with `encoding`.
pub fn request_command(code: &str, encoding: RequestEncoding) -> String {
    let body = match encoding {
        RequestEncoding::Plain => code.to_string(),
        RequestEncoding::PackedHex => pack_gsm7(code).map(|o| to_hex(&o)).unwrap_or_default(),
        RequestEncoding::Ucs2Hex => to_hex(&ucs2::encode(code)),
    };
    format!("AT+CUSD=1,\"{body}\",15")
}

/// What a `+CUSD: <m>` says (27.007 §7.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UssdStatus {
    /// 0: no further user action required (the answer).
    Done,
    /// 1: further user action required (a menu: the next request answers it).
    Menu,
    /// 2: USSD terminated by the network.
    Terminated,
    /// 3: another local client has responded.
    OtherClient,
    /// 4: operation not supported (the network does not know the code).
    NotSupported,
    /// 5: network time out.
    NetworkTimeout,
}

impl UssdStatus {
    /// The status of `+CUSD: <m>`; a value 27.007 does not define reads as terminated.
    pub fn from_m(m: u8) -> UssdStatus {
        match m {
            0 => UssdStatus::Done,
            1 => UssdStatus::Menu,
            3 => UssdStatus::OtherClient,
            4 => UssdStatus::NotSupported,
            5 => UssdStatus::NetworkTimeout,
            _ => UssdStatus::Terminated,
        }
    }

    /// The wire name (`done`, `menu`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            UssdStatus::Done => "done",
            UssdStatus::Menu => "menu",
            UssdStatus::Terminated => "terminated",
            UssdStatus::OtherClient => "other-client",
            UssdStatus::NotSupported => "not-supported",
            UssdStatus::NetworkTimeout => "network-timeout",
        }
    }
}

impl std::fmt::Display for UssdStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The alphabet a USSD DCS names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    /// GSM 7-bit default alphabet.
    Gsm7,
    /// 8-bit data.
    EightBit,
    /// UCS-2.
    Ucs2,
}

/// A Cell Broadcast / USSD data coding scheme (23.038 §5), as far as decoding needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CbsDcs {
    /// The alphabet.
    pub alphabet: Alphabet,
    /// The text starts with a language indication (DCS 0x10: "xx\r"; 0x11: two packed
    /// GSM 7-bit characters in two octets before the UCS-2 text).
    pub language_prefix: bool,
}

/// Reads a USSD DCS (23.038 §5; reserved values read as GSM 7-bit, as the spec says).
pub fn parse_dcs(dcs: u8) -> CbsDcs {
    let gsm7 = CbsDcs {
        alphabet: Alphabet::Gsm7,
        language_prefix: false,
    };
    let general = |bits: u8| match (bits >> 2) & 0x03 {
        0b01 => Alphabet::EightBit,
        0b10 => Alphabet::Ucs2,
        _ => Alphabet::Gsm7,
    };
    match dcs >> 4 {
        0x0 | 0x2 | 0x3 => gsm7,
        0x1 => match dcs & 0x0F {
            0x0 => CbsDcs {
                alphabet: Alphabet::Gsm7,
                language_prefix: true,
            },
            0x1 => CbsDcs {
                alphabet: Alphabet::Ucs2,
                language_prefix: true,
            },
            _ => gsm7,
        },
        // General data coding (bit 5: compressed, not used by networks for USSD) and messages
        // with a user data header: bits 3-2 give the alphabet.
        0x4..=0x7 | 0x9 => CbsDcs {
            alphabet: general(dcs),
            language_prefix: false,
        },
        0xF => CbsDcs {
            alphabet: if dcs & 0x04 != 0 {
                Alphabet::EightBit
            } else {
                Alphabet::Gsm7
            },
            language_prefix: false,
        },
        _ => gsm7,
    }
}

/// What the caller knows about how the modem prints answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeHints {
    /// The TE character set is UCS2: every answer is printed as UCS-2 hex.
    pub cscs_ucs2: bool,
    /// The firmware prints GSM 7-bit answers as hex of the packed septets.
    pub packed_answers: bool,
}

/// How the answer's text was written by the modem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextForm {
    /// Text as is.
    Plain,
    /// Hex of packed GSM 7-bit septets.
    PackedHex,
    /// Hex of UCS-2 units.
    Ucs2Hex,
    /// Hex of 8-bit data (shown as Latin-1).
    EightBitHex,
}

/// A decoded answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text for people.
    pub text: String,
    /// How the modem had written it.
    pub form: TextForm,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Text a person could read: no control characters besides line breaks and tabs, and not
/// mostly '@' (what zero bits decode to in GSM 7-bit).
fn readable(text: &str) -> bool {
    let n = text.chars().count();
    n > 0
        && text
            .chars()
            .all(|c| c != '\u{FFFD}' && (!c.is_control() || matches!(c, '\n' | '\r' | '\t')))
        && text.chars().filter(|c| *c == '@').count() * 4 < n
}

fn from_ucs2_hex(raw: &str) -> Option<String> {
    if raw.len() % 4 != 0 {
        return None;
    }
    let bytes = from_hex(raw).ok()?;
    ucs2::decode(&bytes).ok()
}

fn strip_language(text: String, dcs: CbsDcs) -> String {
    if !dcs.language_prefix || dcs.alphabet != Alphabet::Gsm7 {
        return text;
    }
    let mut chars = text.chars();
    match (chars.next(), chars.next(), chars.next()) {
        (Some(a), Some(b), Some('\r')) if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            chars.as_str().to_string()
        }
        _ => text,
    }
}

/// Decodes the text of a `+CUSD` answer by its DCS and by its shape.
pub fn decode(raw: &str, dcs: Option<u32>, hints: DecodeHints) -> Decoded {
    let cbs = dcs
        .and_then(|d| u8::try_from(d).ok())
        .map(parse_dcs)
        .unwrap_or(CbsDcs {
            alphabet: Alphabet::Gsm7,
            language_prefix: false,
        });
    let plain = || Decoded {
        text: strip_language(raw.to_string(), cbs),
        form: TextForm::Plain,
    };
    if !is_hex(raw) {
        return plain();
    }
    let ucs2 = |hex: &str| {
        from_ucs2_hex(hex)
            .filter(|t| readable(t))
            .map(|text| Decoded {
                text,
                form: TextForm::Ucs2Hex,
            })
    };
    match cbs.alphabet {
        Alphabet::Ucs2 => {
            // 0x11: two octets of packed language before the UCS-2 text.
            let hex = if cbs.language_prefix {
                raw.get(4..).unwrap_or("")
            } else {
                raw
            };
            ucs2(hex).unwrap_or_else(plain)
        }
        Alphabet::EightBit => match from_hex(raw) {
            Ok(bytes) => {
                let text: String = bytes.iter().map(|&b| char::from(b)).collect();
                if readable(&text) {
                    Decoded {
                        text,
                        form: TextForm::EightBitHex,
                    }
                } else {
                    plain()
                }
            }
            Err(_) => plain(),
        },
        Alphabet::Gsm7 => {
            if hints.cscs_ucs2 {
                if let Some(d) = ucs2(raw) {
                    return d;
                }
            }
            let all_digits = raw.bytes().all(|b| b.is_ascii_digit());
            // A hex-looking plain answer ("1234", "ADD") is rare but possible: only firmware
            // known to print packed hex, or a long string that decodes to readable text, is
            // taken as packed.
            if hints.packed_answers || (!all_digits && raw.len() >= 8) {
                if let Ok(octets) = from_hex(raw) {
                    let text = strip_language(unpack_gsm7(&octets), cbs);
                    if readable(&text) {
                        return Decoded {
                            text,
                            form: TextForm::PackedHex,
                        };
                    }
                }
            }
            plain()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: DecodeHints = DecodeHints {
        cscs_ucs2: false,
        packed_answers: false,
    };
    const HUAWEI: DecodeHints = DecodeHints {
        cscs_ucs2: false,
        packed_answers: true,
    };

    #[test]
    fn only_ussd_strings_pass() {
        assert_eq!(validate_code("*111#"), Ok(()));
        assert_eq!(validate_code("*100*1*2#"), Ok(()));
        assert_eq!(validate_code("1"), Ok(()));
        assert_eq!(validate_code(""), Err(CodeError::Empty));
        assert_eq!(validate_code("*111#\r"), Err(CodeError::BadChar('\r')));
        assert_eq!(validate_code("*1\"#"), Err(CodeError::BadChar('"')));
        assert_eq!(validate_code("*111#;+CMGS=1"), Err(CodeError::BadChar(';')));
        assert_eq!(validate_code("١٢"), Err(CodeError::BadChar('١')));
        assert_eq!(validate_code(&"1".repeat(160)), Ok(()));
        assert_eq!(
            validate_code(&"1".repeat(161)),
            Err(CodeError::TooLong(161))
        );
    }

    #[test]
    fn packing_follows_23_038() {
        // The worked example of Huawei firmware documentation and many logs: *100# → AA180C3602.
        assert_eq!(
            to_hex(&pack_gsm7("*100#").unwrap_or_default()),
            "AA180C3602"
        );
        assert_eq!(
            unpack_gsm7(&from_hex("AA180C3602").unwrap_or_default()),
            "*100#"
        );
        // 7 characters: the spare 7 bits of the last octet hold CR, which unpacking drops.
        let seven = pack_gsm7("*12345#").unwrap_or_default();
        assert_eq!(seven.len(), 7);
        assert_eq!(seven.last().map(|b| b >> 1), Some(0x0D));
        assert_eq!(unpack_gsm7(&seven), "*12345#");
        for text in [
            "*111#",
            "1",
            "*100*1*2#",
            "12345678",
            "Balance: 5,10 UAH",
            "*1234567#",
        ] {
            let packed = pack_gsm7(text).unwrap_or_default();
            assert_eq!(unpack_gsm7(&packed), text, "{text}");
        }
        assert_eq!(pack_gsm7("Баланс"), None);
    }

    #[test]
    fn request_lines_per_encoding() {
        assert_eq!(
            request_command("*111#", RequestEncoding::Plain),
            "AT+CUSD=1,\"*111#\",15"
        );
        assert_eq!(
            request_command("*100#", RequestEncoding::PackedHex),
            "AT+CUSD=1,\"AA180C3602\",15"
        );
        assert_eq!(
            request_command("*1#", RequestEncoding::Ucs2Hex),
            "AT+CUSD=1,\"002A00310023\",15"
        );
    }

    #[test]
    fn statuses() {
        let all: Vec<&str> = (0..=6).map(|m| UssdStatus::from_m(m).as_str()).collect();
        assert_eq!(
            all,
            [
                "done",
                "menu",
                "terminated",
                "other-client",
                "not-supported",
                "network-timeout",
                "terminated"
            ]
        );
    }

    #[test]
    fn dcs_groups() {
        let a = |d| parse_dcs(d).alphabet;
        assert_eq!(a(15), Alphabet::Gsm7);
        assert_eq!(a(0x00), Alphabet::Gsm7);
        assert_eq!(a(0x2F), Alphabet::Gsm7);
        assert_eq!(a(68), Alphabet::EightBit);
        assert_eq!(a(72), Alphabet::Ucs2);
        assert_eq!(a(0x11), Alphabet::Ucs2);
        assert!(parse_dcs(0x11).language_prefix);
        assert!(parse_dcs(0x10).language_prefix);
        assert_eq!(a(0x99), Alphabet::Ucs2);
        assert_eq!(a(0xF4), Alphabet::EightBit);
        assert_eq!(a(0xF0), Alphabet::Gsm7);
        assert_eq!(a(0x80), Alphabet::Gsm7);
    }

    #[test]
    fn answers_decode_by_dcs_and_shape() {
        // Plain text as most firmwares print it.
        let d = decode("Balance: 5,10 UAH", Some(15), NONE);
        assert_eq!(
            (d.text.as_str(), d.form),
            ("Balance: 5,10 UAH", TextForm::Plain)
        );
        // UCS-2 hex (DCS 72): "На рахунку 12,00 грн."
        let hex = to_hex(&ucs2::encode("На рахунку 12,00 грн."));
        let d = decode(&hex, Some(72), NONE);
        assert_eq!(
            (d.text.as_str(), d.form),
            ("На рахунку 12,00 грн.", TextForm::Ucs2Hex)
        );
        // Packed hex from Huawei-style firmware.
        let packed = to_hex(&pack_gsm7("Zalyshok 3.00 grn").unwrap_or_default());
        let d = decode(&packed, Some(15), HUAWEI);
        assert_eq!(
            (d.text.as_str(), d.form),
            ("Zalyshok 3.00 grn", TextForm::PackedHex)
        );
        // ... recognised by shape too when the dialect is not known to do it.
        let d = decode(&packed, Some(15), NONE);
        assert_eq!(d.form, TextForm::PackedHex);
        // Under CSCS="UCS2" a GSM answer is UCS-2 hex as well.
        let d = decode(
            "00420061006C00200031",
            Some(15),
            DecodeHints {
                cscs_ucs2: true,
                packed_answers: false,
            },
        );
        assert_eq!(d.text, "Bal 1");
        // A short hex-looking plain answer stays as it is.
        assert_eq!(decode("1234", Some(15), NONE).text, "1234");
        assert_eq!(decode("ADD", Some(15), NONE).text, "ADD");
        // 8-bit data.
        let d = decode("48656C6C6F", Some(68), NONE);
        assert_eq!((d.text.as_str(), d.form), ("Hello", TextForm::EightBitHex));
        // Language indication.
        assert_eq!(decode("en\rHello", Some(0x10), NONE).text, "Hello");
        let lang = format!("{}{}", "E532", to_hex(&ucs2::encode("Привіт")));
        assert_eq!(decode(&lang, Some(0x11), NONE).text, "Привіт");
        // Garbage never panics and comes back as it was.
        for raw in ["", "\u{0}", "ZZ", "0", "FFFFFFFFFFFF", "D800D800"] {
            let _ = decode(raw, Some(72), NONE);
            let _ = decode(raw, Some(15), HUAWEI);
            let _ = decode(raw, None, NONE);
        }
        assert_eq!(decode("D800D800", Some(72), NONE).text, "D800D800");
    }
}
