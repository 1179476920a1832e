//! TP-User-Data-Length and TP-User-Data, shared by every PDU type: UDH, fill bits, alphabets.

use super::{Encoding, PduError, Reader, gsm7, ucs2, udh::Udh};

/// Most septets of GSM 7-bit user data.
pub(crate) const MAX_SEPTETS: usize = 160;
/// Most octets of user data.
pub(crate) const MAX_OCTETS: usize = 140;

/// Decoded user data.
#[derive(Debug, Default)]
pub(crate) struct UserData {
    /// The header, when TP-UDHI was set.
    pub udh: Option<Udh>,
    /// Text for GSM 7-bit and UCS-2.
    pub text: String,
    /// Raw data (header stripped) for 8-bit.
    pub data: Vec<u8>,
}

/// Septets a header of `header_len` octets (UDHL included) takes, fill bits included.
fn header_septets(header_len: usize) -> usize {
    (header_len * 8).div_ceil(7)
}

/// Splits off the header (UDHL + elements) from the user data octets.
fn split_header(ud: &[u8]) -> Result<(Udh, &[u8], usize), PduError> {
    let (&udhl, rest) = ud.split_first().ok_or(PduError::InvalidUdh(
        "header indicated but user data is empty",
    ))?;
    let udhl = usize::from(udhl);
    if udhl > rest.len() {
        return Err(PduError::InvalidUdh("header longer than the user data"));
    }
    let (elements, body) = rest.split_at(udhl);
    Ok((Udh::parse(elements)?, body, udhl + 1))
}

/// Reads TP-UDL and TP-UD; lengths are checked against the bytes present.
pub(crate) fn read(
    r: &mut Reader<'_>,
    udhi: bool,
    encoding: Encoding,
) -> Result<UserData, PduError> {
    let udl = usize::from(r.u8("user data length")?);
    if encoding == Encoding::Gsm7 {
        if udl > MAX_SEPTETS {
            return Err(PduError::InvalidUserData(format!(
                "length {udl} septets exceeds {MAX_SEPTETS}"
            )));
        }
        let ud = r.take((udl * 7).div_ceil(8), "user data")?;
        let (udh, skip) = if udhi {
            let (udh, _, header_len) = split_header(ud)?;
            let skip = header_septets(header_len);
            if skip > udl {
                return Err(PduError::InvalidUdh("header longer than the user data"));
            }
            (Some(udh), skip)
        } else {
            (None, 0)
        };
        // Unpack from the start of the UD so the fill bits after the header fall out naturally.
        let septets = gsm7::unpack(ud, skip * 7, udl - skip)?;
        return Ok(UserData {
            udh,
            text: gsm7::decode(&septets),
            data: Vec::new(),
        });
    }
    if udl > MAX_OCTETS {
        return Err(PduError::InvalidUserData(format!(
            "length {udl} octets exceeds {MAX_OCTETS}"
        )));
    }
    let ud = r.take(udl, "user data")?;
    let (udh, body) = if udhi {
        let (udh, body, _) = split_header(ud)?;
        (Some(udh), body)
    } else {
        (None, ud)
    };
    Ok(match encoding {
        Encoding::Ucs2 => UserData {
            udh,
            text: ucs2::decode(body)?,
            data: Vec::new(),
        },
        _ => UserData {
            udh,
            text: String::new(),
            data: body.to_vec(),
        },
    })
}

/// Writes TP-UDL and TP-UD; `text` is used for GSM 7-bit/UCS-2, `data` for 8-bit.
pub(crate) fn write(
    out: &mut Vec<u8>,
    udh: Option<&Udh>,
    encoding: Encoding,
    text: &str,
    data: &[u8],
) -> Result<(), PduError> {
    let header = udh.map(Udh::to_bytes).transpose()?.unwrap_or_default();
    match encoding {
        Encoding::Gsm7 => {
            let septets = gsm7::encode(text)?;
            let skip = if header.is_empty() {
                0
            } else {
                header_septets(header.len())
            };
            let udl = skip + septets.len();
            if udl > MAX_SEPTETS {
                return Err(PduError::InvalidUserData(format!(
                    "{udl} septets exceed {MAX_SEPTETS}"
                )));
            }
            out.push(udl as u8);
            out.extend_from_slice(&header);
            out.extend(gsm7::pack(&septets, skip * 7 - header.len() * 8));
        }
        Encoding::Ucs2 | Encoding::EightBit => {
            let body = if encoding == Encoding::Ucs2 {
                ucs2::encode(text)
            } else {
                data.to_vec()
            };
            let udl = header.len() + body.len();
            if udl > MAX_OCTETS {
                return Err(PduError::InvalidUserData(format!(
                    "{udl} octets exceed {MAX_OCTETS}"
                )));
            }
            out.push(udl as u8);
            out.extend_from_slice(&header);
            out.extend_from_slice(&body);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{Concat, from_hex, to_hex};

    fn read_hex(hex: &str, udhi: bool, enc: Encoding) -> Result<UserData, PduError> {
        let bytes = from_hex(hex).unwrap();
        let mut r = Reader::new(&bytes);
        let ud = read(&mut r, udhi, enc)?;
        r.finish()?;
        Ok(ud)
    }

    fn concat() -> Udh {
        Udh::with_concat(Concat {
            reference: 0xCC,
            total: 2,
            seq: 1,
        })
    }

    #[test]
    fn gsm7_with_header_uses_one_fill_bit() {
        let mut out = Vec::new();
        write(&mut out, Some(&concat()), Encoding::Gsm7, "Hi", &[]).unwrap();
        // UDL = 7 header septets + 2; header; "Hi" packed after 1 fill bit.
        assert_eq!(to_hex(&out), "09050003CC02019069");
        let ud = read_hex("09050003CC02019069", true, Encoding::Gsm7).unwrap();
        assert_eq!(ud.text, "Hi");
        assert_eq!(ud.udh.and_then(|u| u.concat()).map(|c| c.seq), Some(1));
    }

    #[test]
    fn gsm7_with_16bit_header_needs_no_fill() {
        let udh = Udh::parse(&from_hex("080412340302").unwrap()).unwrap();
        let mut out = Vec::new();
        write(&mut out, Some(&udh), Encoding::Gsm7, "Hi", &[]).unwrap();
        assert_eq!(to_hex(&out), "0A06080412340302C834");
        assert_eq!(
            read_hex("0A06080412340302C834", true, Encoding::Gsm7)
                .unwrap()
                .text,
            "Hi"
        );
    }

    #[test]
    fn ucs2_and_8bit() {
        let mut out = Vec::new();
        write(&mut out, Some(&concat()), Encoding::Ucs2, "Я", &[]).unwrap();
        assert_eq!(to_hex(&out), "08050003CC0201042F");
        assert_eq!(
            read_hex("08050003CC0201042F", true, Encoding::Ucs2)
                .unwrap()
                .text,
            "Я"
        );
        let ud = read_hex("03010203", false, Encoding::EightBit).unwrap();
        assert_eq!(
            (ud.text.as_str(), ud.data.as_slice()),
            ("", &[1u8, 2, 3][..])
        );
    }

    #[test]
    fn lengths_are_checked() {
        assert!(matches!(
            read_hex("0AE8329BFD4697D9EC", false, Encoding::Gsm7),
            Err(PduError::Truncated(_))
        ));
        assert!(matches!(
            read_hex("09E8329BFD4697D9EC37", false, Encoding::Gsm7),
            Err(PduError::TrailingData(1))
        ));
        assert!(read_hex("A1", false, Encoding::Gsm7).is_err());
        assert!(read_hex("8D", false, Encoding::Ucs2).is_err());
        assert!(read_hex("030041", false, Encoding::Ucs2).is_err());
        // UDHL larger than the data, and a header eating more septets than UDL announces.
        assert!(read_hex("0206FF", true, Encoding::EightBit).is_err());
        assert!(read_hex("0305000300", true, Encoding::Gsm7).is_err());
        assert!(read_hex("00", true, Encoding::Gsm7).is_err());
        let mut out = Vec::new();
        assert!(write(&mut out, None, Encoding::Gsm7, &"a".repeat(161), &[]).is_err());
        assert!(write(&mut out, None, Encoding::EightBit, "", &[0; 141]).is_err());
    }
}
