//! UCS-2 user data, read and written as UTF-16BE so characters beyond the BMP (emoji) travel as
//! surrogate pairs.

use super::PduError;

/// UTF-16 code units `text` takes (a surrogate pair counts 2).
pub fn unit_count(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Encodes text as UTF-16BE bytes.
pub fn encode(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// Decodes UTF-16BE bytes; an unpaired surrogate (e.g. a pair a foreign sender cut between two
/// parts) becomes U+FFFD rather than losing the message. An odd byte count is an error.
pub fn decode(data: &[u8]) -> Result<String, PduError> {
    if data.len() % 2 != 0 {
        return Err(PduError::InvalidUserData(format!(
            "UCS-2 data has an odd length ({})",
            data.len()
        )));
    }
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|pair| match *pair {
            [hi, lo] => u16::from_be_bytes([hi, lo]),
            _ => 0xFFFD,
        })
        .collect();
    Ok(String::from_utf16_lossy(&units))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{from_hex, to_hex};

    #[test]
    fn cyrillic() {
        assert_eq!(to_hex(&encode("Привіт")), "041F04400438043204560442");
        // (checked by hand: П=041F р=0440 и=0438 в=0432 і=0456 т=0442)
    }

    #[test]
    fn emoji_is_a_surrogate_pair() {
        assert_eq!(to_hex(&encode("😀")), "D83DDE00");
        assert_eq!(unit_count("a😀"), 3);
        assert_eq!(decode(&from_hex("0061D83DDE00").unwrap()).unwrap(), "a😀");
    }

    #[test]
    fn broken_input() {
        assert!(decode(&[0x00]).is_err());
        assert_eq!(decode(&[0xD8, 0x3D]).unwrap(), "\u{FFFD}");
        assert_eq!(decode(&[]).unwrap(), "");
    }
}
