//! TP-Data-Coding-Scheme (3GPP TS 23.038 §4): alphabet, message class, message waiting.

use super::{Encoding, PduError};

/// A decoded data coding scheme byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dcs {
    /// Alphabet of the user data (compressed data is reported as 8-bit: we do not decompress).
    pub encoding: Encoding,
    /// Message class 0-3, when the DCS gives one.
    pub class: Option<u8>,
    /// The user data is compressed (general data coding groups only).
    pub compressed: bool,
    /// Message-waiting indication (groups 1100, 1101, 1110).
    pub waiting: Option<MessageWaiting>,
}

/// A message-waiting indication carried in the DCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageWaiting {
    /// Indication set (true) or cleared (false).
    pub active: bool,
    /// Kind: 0 voicemail, 1 fax, 2 e-mail, 3 other.
    pub kind: u8,
    /// The message itself may be discarded (group 1100).
    pub discard: bool,
}

impl Dcs {
    /// Interprets a DCS byte; reserved codings are read as GSM 7-bit, as 23.038 asks.
    pub fn parse(dcs: u8) -> Dcs {
        let general_alphabet = |bits: u8| match bits & 0x03 {
            0b01 => Encoding::EightBit,
            0b10 => Encoding::Ucs2,
            _ => Encoding::Gsm7,
        };
        match dcs >> 4 {
            // 00xx general data coding, 01xx the same marked for automatic deletion.
            0x0..=0x7 => {
                let compressed = dcs & 0x20 != 0;
                Dcs {
                    encoding: if compressed {
                        Encoding::EightBit
                    } else {
                        general_alphabet(dcs >> 2)
                    },
                    class: (dcs & 0x10 != 0).then_some(dcs & 0x03),
                    compressed,
                    waiting: None,
                }
            }
            0xC..=0xE => Dcs {
                encoding: if dcs >> 4 == 0xE {
                    Encoding::Ucs2
                } else {
                    Encoding::Gsm7
                },
                class: None,
                compressed: false,
                waiting: Some(MessageWaiting {
                    active: dcs & 0x08 != 0,
                    kind: dcs & 0x03,
                    discard: dcs >> 4 == 0xC,
                }),
            },
            0xF => Dcs {
                encoding: if dcs & 0x04 != 0 {
                    Encoding::EightBit
                } else {
                    Encoding::Gsm7
                },
                class: Some(dcs & 0x03),
                compressed: false,
                waiting: None,
            },
            // 1000..1011: reserved coding groups.
            _ => Dcs {
                encoding: Encoding::Gsm7,
                class: None,
                compressed: false,
                waiting: None,
            },
        }
    }

    /// The general-group DCS byte for an alphabet and optional class 0-3.
    pub fn build(encoding: Encoding, class: Option<u8>) -> Result<u8, PduError> {
        let alphabet = match encoding {
            Encoding::Gsm7 => 0x00,
            Encoding::EightBit => 0x04,
            Encoding::Ucs2 => 0x08,
        };
        match class {
            None => Ok(alphabet),
            Some(c @ 0..=3) => Ok(0x10 | alphabet | c),
            Some(c) => Err(PduError::InvalidOption(format!(
                "message class {c} (must be 0-3)"
            ))),
        }
    }
}

/// Fails when `dcs` does not say the same as the `encoding`/`class` fields beside it.
pub(crate) fn check_matches(
    dcs: u8,
    encoding: Encoding,
    class: Option<u8>,
) -> Result<(), PduError> {
    let parsed = Dcs::parse(dcs);
    if parsed.encoding == encoding && parsed.class == class {
        Ok(())
    } else {
        Err(PduError::DcsMismatch {
            dcs,
            encoding,
            class,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_group() {
        assert_eq!(Dcs::parse(0x00).encoding, Encoding::Gsm7);
        assert_eq!(Dcs::parse(0x04).encoding, Encoding::EightBit);
        assert_eq!(Dcs::parse(0x08).encoding, Encoding::Ucs2);
        assert_eq!(Dcs::parse(0x0C).encoding, Encoding::Gsm7); // reserved alphabet
        assert_eq!(Dcs::parse(0x00).class, None);
        assert_eq!(Dcs::parse(0x10).class, Some(0)); // flash
        assert_eq!(Dcs::parse(0x18).class, Some(0));
        assert_eq!(Dcs::parse(0x19).encoding, Encoding::Ucs2);
        assert_eq!(Dcs::parse(0x19).class, Some(1));
        assert_eq!(Dcs::parse(0x03).class, None); // class bits ignored without bit 4
        assert_eq!(Dcs::parse(0x48).encoding, Encoding::Ucs2); // auto-deletion group
        let c = Dcs::parse(0x28);
        assert!(c.compressed);
        assert_eq!(c.encoding, Encoding::EightBit);
    }

    #[test]
    fn message_waiting_and_f_groups() {
        let d = Dcs::parse(0xC8);
        assert_eq!(d.encoding, Encoding::Gsm7);
        assert_eq!(
            d.waiting,
            Some(MessageWaiting {
                active: true,
                kind: 0,
                discard: true
            })
        );
        let d = Dcs::parse(0xE2);
        assert_eq!(d.encoding, Encoding::Ucs2);
        assert_eq!(
            d.waiting.map(|w| (w.active, w.kind, w.discard)),
            Some((false, 2, false))
        );
        assert_eq!(Dcs::parse(0xD0).encoding, Encoding::Gsm7);
        let f = Dcs::parse(0xF5);
        assert_eq!((f.encoding, f.class), (Encoding::EightBit, Some(1)));
        let f = Dcs::parse(0xF0);
        assert_eq!((f.encoding, f.class), (Encoding::Gsm7, Some(0)));
        assert_eq!(Dcs::parse(0x80).encoding, Encoding::Gsm7); // reserved group
    }

    #[test]
    fn build() {
        assert_eq!(Dcs::build(Encoding::Gsm7, None), Ok(0x00));
        assert_eq!(Dcs::build(Encoding::Ucs2, None), Ok(0x08));
        assert_eq!(Dcs::build(Encoding::EightBit, None), Ok(0x04));
        assert_eq!(Dcs::build(Encoding::Gsm7, Some(0)), Ok(0x10));
        assert_eq!(Dcs::build(Encoding::Ucs2, Some(1)), Ok(0x19));
        assert!(Dcs::build(Encoding::Gsm7, Some(4)).is_err());
        for b in 0..=255u8 {
            let d = Dcs::parse(b);
            if d.class.is_some() || b < 0x40 {
                let _ = Dcs::build(d.encoding, d.class).unwrap();
            }
        }
    }
}
