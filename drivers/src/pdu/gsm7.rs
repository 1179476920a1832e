//! GSM 03.38 default alphabet with its extension table, and septet packing.

use super::PduError;

/// The escape septet that selects the extension table.
pub const ESCAPE: u8 = 0x1B;

/// The default alphabet, indexed by septet value (0x1B is the escape, never a character).
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: septet after the escape, and its character.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// Septet value in the default table.
fn basic_septet(c: char) -> Option<u8> {
    if c == '\u{1B}' {
        return None;
    }
    BASIC
        .iter()
        .position(|&b| b == c)
        .and_then(|i| u8::try_from(i).ok())
}

/// Septet value after the escape, for an extension-table character.
fn extension_septet(c: char) -> Option<u8> {
    EXTENSION.iter().find(|&&(_, e)| e == c).map(|&(s, _)| s)
}

/// Septets a character takes in GSM 7-bit (1, or 2 for extension characters); `None` if it does not fit.
pub fn char_septets(c: char) -> Option<usize> {
    if basic_septet(c).is_some() {
        Some(1)
    } else if extension_septet(c).is_some() {
        Some(2)
    } else {
        None
    }
}

/// Whether every character of `text` fits the default alphabet plus the extension table.
pub fn fits_gsm7(text: &str) -> bool {
    text.chars().all(|c| char_septets(c).is_some())
}

/// Septets `text` takes in GSM 7-bit, escapes counted; `None` if a character does not fit.
pub fn septet_count(text: &str) -> Option<usize> {
    text.chars().map(char_septets).sum()
}

/// Converts text to unpacked septet values (extension characters become escape + septet).
pub fn encode(text: &str) -> Result<Vec<u8>, PduError> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if let Some(s) = basic_septet(c) {
            out.push(s);
        } else if let Some(s) = extension_septet(c) {
            out.push(ESCAPE);
            out.push(s);
        } else {
            return Err(PduError::NotGsm7(c));
        }
    }
    Ok(out)
}

/// Converts unpacked septet values to text.
///
/// An escape followed by a septet the extension table lacks shows that septet's default
/// character, and a double escape shows a space (23.038 §6.2.1.1); a lone trailing escape
/// is dropped.
pub fn decode(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut iter = septets.iter().map(|&s| s & 0x7F);
    while let Some(s) = iter.next() {
        if s != ESCAPE {
            out.push(basic_char(s));
            continue;
        }
        match iter.next() {
            Some(ESCAPE) => out.push(' '),
            Some(e) => out.push(
                EXTENSION
                    .iter()
                    .find(|&&(v, _)| v == e)
                    .map_or_else(|| basic_char(e), |&(_, c)| c),
            ),
            None => {}
        }
    }
    out
}

/// The default-table character of a septet.
fn basic_char(s: u8) -> char {
    BASIC.get(usize::from(s)).copied().unwrap_or(' ')
}

/// Packs septets LSB-first into octets, after `fill_bits` zero bits (used to align after a UDH).
pub fn pack(septets: &[u8], fill_bits: usize) -> Vec<u8> {
    let total_bits = fill_bits + 7 * septets.len();
    let mut out = vec![0u8; total_bits.div_ceil(8)];
    for (i, &s) in septets.iter().enumerate() {
        let bit = fill_bits + 7 * i;
        let v = u16::from(s & 0x7F) << (bit % 8);
        let [lo, hi] = v.to_le_bytes();
        if let Some(b) = out.get_mut(bit / 8) {
            *b |= lo;
        }
        if let Some(b) = out.get_mut(bit / 8 + 1) {
            *b |= hi;
        }
    }
    out
}

/// Unpacks `count` septets from `data`, skipping `fill_bits` leading bits.
pub fn unpack(data: &[u8], fill_bits: usize, count: usize) -> Result<Vec<u8>, PduError> {
    // Saturating: `count` may come from untrusted length fields.
    let needed = fill_bits
        .saturating_add(count.saturating_mul(7))
        .div_ceil(8);
    if needed > data.len() {
        return Err(PduError::Truncated("GSM 7-bit user data"));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let bit = fill_bits + 7 * i;
        let lo = data.get(bit / 8).copied().unwrap_or(0);
        let hi = data.get(bit / 8 + 1).copied().unwrap_or(0);
        let v = u16::from_le_bytes([lo, hi]) >> (bit % 8);
        out.push((v & 0x7F) as u8);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{from_hex, to_hex};

    #[test]
    fn hellohello_packs_like_the_classic_example() {
        let septets = encode("hellohello").unwrap();
        assert_eq!(to_hex(&pack(&septets, 0)), "E8329BFD4697D9EC37");
        let back = unpack(&from_hex("E8329BFD4697D9EC37").unwrap(), 0, 10).unwrap();
        assert_eq!(decode(&back), "hellohello");
    }

    #[test]
    fn how_are_you() {
        let data = from_hex("C8F71D14969741F977FD07").unwrap();
        assert_eq!(decode(&unpack(&data, 0, 12).unwrap()), "How are you?");
    }

    #[test]
    fn extension_table_round_trips_and_counts_two() {
        let text = "€[]{}\\~^|\u{0C}";
        assert!(fits_gsm7(text));
        assert_eq!(septet_count(text), Some(20));
        let septets = encode(text).unwrap();
        assert_eq!(&septets[..2], &[ESCAPE, 0x65]);
        assert_eq!(decode(&septets), text);
    }

    #[test]
    fn whole_default_table_round_trips() {
        let text: String = BASIC.iter().filter(|&&c| c != '\u{1B}').collect();
        assert_eq!(septet_count(&text), Some(127));
        let septets = encode(&text).unwrap();
        let packed = pack(&septets, 3);
        assert_eq!(decode(&unpack(&packed, 3, septets.len()).unwrap()), text);
    }

    #[test]
    fn not_gsm7() {
        assert!(!fits_gsm7("Привіт"));
        assert!(!fits_gsm7("ç"));
        assert!(!fits_gsm7("\u{1B}"));
        assert_eq!(septet_count("a😀"), None);
        assert_eq!(encode("aЖ"), Err(PduError::NotGsm7('Ж')));
    }

    #[test]
    fn odd_escapes_decode_per_spec() {
        // Unknown extension septet → default char; double escape → space; trailing escape dropped.
        assert_eq!(decode(&[ESCAPE, 0x41, ESCAPE, ESCAPE, 0x42, ESCAPE]), "A B");
    }

    #[test]
    fn fill_bits_align_after_a_header() {
        // One fill bit after a 6-byte UDH: "Hi" starts at bit 1.
        let packed = pack(&encode("Hi").unwrap(), 1);
        assert_eq!(to_hex(&packed), "9069");
        assert_eq!(decode(&unpack(&packed, 1, 2).unwrap()), "Hi");
        assert!(unpack(&packed, 1, 3).is_err());
        assert!(unpack(&packed, usize::MAX, usize::MAX).is_err());
    }
}
