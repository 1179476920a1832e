//! User data header (3GPP TS 23.040 §9.2.3.24): information elements, concatenation among them.

use super::PduError;

/// IEI of the concatenation element with an 8-bit reference.
pub const IEI_CONCAT_8: u8 = 0x00;
/// IEI of the concatenation element with a 16-bit reference.
pub const IEI_CONCAT_16: u8 = 0x08;

/// Where a part sits in a concatenated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Concat {
    /// Reference shared by all parts of one message (8- or 16-bit on the wire).
    pub reference: u16,
    /// Number of parts, 1..=255.
    pub total: u8,
    /// This part's sequence number, 1..=total.
    pub seq: u8,
}

/// One information element of a user data header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InformationElement {
    /// Information element identifier (IEI).
    pub id: u8,
    /// The element's data (IEDL bytes).
    pub data: Vec<u8>,
}

/// A user data header: its information elements in wire order (unknown ones kept as they are).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Udh {
    /// The information elements.
    pub elements: Vec<InformationElement>,
}

impl Udh {
    /// A header holding only a concatenation element (8-bit reference when it fits, else 16-bit).
    pub fn with_concat(concat: Concat) -> Udh {
        let [hi, lo] = concat.reference.to_be_bytes();
        let element = if hi == 0 {
            InformationElement {
                id: IEI_CONCAT_8,
                data: vec![lo, concat.total, concat.seq],
            }
        } else {
            InformationElement {
                id: IEI_CONCAT_16,
                data: vec![hi, lo, concat.total, concat.seq],
            }
        };
        Udh {
            elements: vec![element],
        }
    }

    /// Parses the header's elements (the bytes after the UDHL octet).
    pub fn parse(bytes: &[u8]) -> Result<Udh, PduError> {
        let mut elements = Vec::new();
        let mut rest = bytes;
        while let Some((&id, tail)) = rest.split_first() {
            let (&len, tail) = tail
                .split_first()
                .ok_or(PduError::InvalidUdh("element length missing"))?;
            let len = usize::from(len);
            if len > tail.len() {
                return Err(PduError::InvalidUdh("element overruns the header"));
            }
            let (data, tail) = tail.split_at(len);
            elements.push(InformationElement {
                id,
                data: data.to_vec(),
            });
            rest = tail;
        }
        Ok(Udh { elements })
    }

    /// The header on the wire, UDHL octet first.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PduError> {
        let mut out = vec![0u8];
        for e in &self.elements {
            let len = u8::try_from(e.data.len())
                .map_err(|_| PduError::InvalidUdh("element longer than 255 bytes"))?;
            out.push(e.id);
            out.push(len);
            out.extend_from_slice(&e.data);
        }
        let udhl = u8::try_from(out.len() - 1)
            .map_err(|_| PduError::InvalidUdh("header longer than 255 bytes"))?;
        if let Some(first) = out.first_mut() {
            *first = udhl;
        }
        Ok(out)
    }

    /// The first valid concatenation element; malformed ones (wrong length, seq 0 or beyond
    /// total) are ignored, as 23.040 tells receivers to do.
    pub fn concat(&self) -> Option<Concat> {
        self.elements.iter().find_map(|e| {
            let c = match (e.id, e.data.as_slice()) {
                (IEI_CONCAT_8, &[reference, total, seq]) => Concat {
                    reference: u16::from(reference),
                    total,
                    seq,
                },
                (IEI_CONCAT_16, &[hi, lo, total, seq]) => Concat {
                    reference: u16::from_be_bytes([hi, lo]),
                    total,
                    seq,
                },
                _ => return None,
            };
            (c.total > 0 && c.seq > 0 && c.seq <= c.total).then_some(c)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{from_hex, to_hex};

    #[test]
    fn concat_8bit() {
        let udh = Udh::parse(&from_hex("0003CC0201").unwrap()).unwrap();
        assert_eq!(
            udh.concat(),
            Some(Concat {
                reference: 0xCC,
                total: 2,
                seq: 1
            })
        );
        assert_eq!(to_hex(&udh.to_bytes().unwrap()), "050003CC0201");
        assert_eq!(udh, Udh::with_concat(udh.concat().unwrap()));
    }

    #[test]
    fn concat_16bit_after_an_unknown_element() {
        // A port-addressing element (0x05) first, then 16-bit concatenation.
        let udh = Udh::parse(&from_hex("0504158A0000080412340302").unwrap()).unwrap();
        assert_eq!(udh.elements.len(), 2);
        assert_eq!(udh.elements[0].id, 0x05);
        assert_eq!(
            udh.concat(),
            Some(Concat {
                reference: 0x1234,
                total: 3,
                seq: 2
            })
        );
        let c = Concat {
            reference: 0x1234,
            total: 3,
            seq: 2,
        };
        assert_eq!(
            to_hex(&Udh::with_concat(c).to_bytes().unwrap()),
            "06080412340302"
        );
    }

    #[test]
    fn bad_concat_is_ignored() {
        for hex in ["0003CC0203", "0003CC0000", "0002CC02", "000400010201"] {
            assert_eq!(
                Udh::parse(&from_hex(hex).unwrap()).unwrap().concat(),
                None,
                "{hex}"
            );
        }
    }

    #[test]
    fn malformed_elements() {
        assert!(Udh::parse(&[0x00]).is_err());
        assert!(Udh::parse(&[0x00, 0x03, 0x01]).is_err());
        assert_eq!(Udh::parse(&[]).unwrap(), Udh::default());
        assert_eq!(
            Udh::parse(&[0x24, 0x00]).unwrap().elements[0].data,
            Vec::<u8>::new()
        );
    }
}
