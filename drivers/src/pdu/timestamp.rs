//! TP-Service-Centre-Time-Stamp (and TP-Discharge-Time): 7 octets of swapped BCD, the last one
//! the time zone in quarter hours with a sign bit.

use std::fmt;

use super::{PduError, Reader};

/// A service-centre timestamp in local time with its offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Full year, 1990..=2089 (the PDU carries two digits).
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of month, 1..=31 (checked against the month).
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59.
    pub second: u8,
    /// Offset from UTC in quarter hours, -79..=79.
    pub tz_quarters: i8,
}

impl Timestamp {
    /// Builds a timestamp, checking every field's range.
    pub fn new(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        tz_quarters: i8,
    ) -> Result<Timestamp, PduError> {
        let ts = Timestamp {
            year,
            month,
            day,
            hour,
            minute,
            second,
            tz_quarters,
        };
        ts.validate()?;
        Ok(ts)
    }

    /// Checks every field's range (the day against the month, leap years included).
    pub fn validate(&self) -> Result<(), PduError> {
        let bad = |what: &str, v: i64| Err(PduError::InvalidTimestamp(format!("{what} {v}")));
        if !(1990..=2089).contains(&self.year) {
            return bad("year", self.year.into());
        }
        if !(1..=12).contains(&self.month) {
            return bad("month", self.month.into());
        }
        if self.day == 0 || self.day > days_in_month(self.year, self.month) {
            return bad("day", self.day.into());
        }
        if self.hour > 23 {
            return bad("hour", self.hour.into());
        }
        if self.minute > 59 {
            return bad("minute", self.minute.into());
        }
        if self.second > 59 {
            return bad("second", self.second.into());
        }
        if !(-79..=79).contains(&self.tz_quarters) {
            return bad("time zone quarters", self.tz_quarters.into());
        }
        Ok(())
    }

    /// RFC 3339 text, e.g. "2026-11-26T22:15:03+02:00".
    pub fn to_rfc3339(&self) -> String {
        let sign = if self.tz_quarters < 0 { '-' } else { '+' };
        let minutes = u16::from(self.tz_quarters.unsigned_abs()) * 15;
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            sign,
            minutes / 60,
            minutes % 60
        )
    }

    /// Reads the 7 octets and validates them.
    pub(crate) fn read(r: &mut Reader<'_>, what: &'static str) -> Result<Timestamp, PduError> {
        let b = r.take(7, what)?;
        let [y, mo, d, h, mi, s, tz] =
            <[u8; 7]>::try_from(b).map_err(|_| PduError::Truncated(what))?;
        let yy = bcd(y)?;
        let tz_digits = bcd(tz & 0xF7)?;
        let tz_quarters = i8::try_from(tz_digits)
            .map_err(|_| PduError::InvalidTimestamp(format!("time zone {tz:#04x}")))?;
        let ts = Timestamp {
            year: if yy >= 90 { 1900 } else { 2000 } + u16::from(yy),
            month: bcd(mo)?,
            day: bcd(d)?,
            hour: bcd(h)?,
            minute: bcd(mi)?,
            second: bcd(s)?,
            tz_quarters: if tz & 0x08 != 0 {
                -tz_quarters
            } else {
                tz_quarters
            },
        };
        ts.validate()?;
        Ok(ts)
    }

    /// Writes the 7 octets, after validating.
    pub(crate) fn write(&self, out: &mut Vec<u8>) -> Result<(), PduError> {
        self.validate()?;
        let yy = (self.year % 100) as u8;
        let tz =
            to_bcd(self.tz_quarters.unsigned_abs()) | if self.tz_quarters < 0 { 0x08 } else { 0 };
        out.extend_from_slice(&[
            to_bcd(yy),
            to_bcd(self.month),
            to_bcd(self.day),
            to_bcd(self.hour),
            to_bcd(self.minute),
            to_bcd(self.second),
            tz,
        ]);
        Ok(())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Days in a month of the Gregorian calendar.
fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Swapped-BCD octet (low nibble = tens) to its value.
fn bcd(b: u8) -> Result<u8, PduError> {
    let (tens, units) = (b & 0x0F, b >> 4);
    if tens > 9 || units > 9 {
        return Err(PduError::InvalidTimestamp(format!(
            "bad BCD octet {b:#04x}"
        )));
    }
    Ok(tens * 10 + units)
}

/// Value 0..=99 to a swapped-BCD octet.
fn to_bcd(v: u8) -> u8 {
    ((v % 10) << 4) | ((v / 10) % 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::from_hex;

    fn read(hex: &str) -> Result<Timestamp, PduError> {
        let bytes = from_hex(hex).unwrap();
        Timestamp::read(&mut Reader::new(&bytes), "scts")
    }

    #[test]
    fn positive_zone() {
        let ts = read("62116222513080").unwrap();
        assert_eq!(ts, Timestamp::new(2026, 11, 26, 22, 15, 3, 8).unwrap());
        assert_eq!(ts.to_rfc3339(), "2026-11-26T22:15:03+02:00");
        let mut out = Vec::new();
        ts.write(&mut out).unwrap();
        assert_eq!(out, from_hex("62116222513080").unwrap());
    }

    #[test]
    fn negative_zone_sets_bit_3() {
        // -05:30 = -22 quarters: digits "22", sign bit in the tens semi-octet → 0x2A.
        let ts = read("5290101200002A").unwrap();
        assert_eq!(ts.tz_quarters, -22);
        assert_eq!(ts.to_rfc3339(), "2025-09-01T21:00:00-05:30");
        let mut out = Vec::new();
        ts.write(&mut out).unwrap();
        assert_eq!(out, from_hex("5290101200002A").unwrap());
    }

    #[test]
    fn last_century_and_minus_zero() {
        let ts = read("99309251619508").unwrap();
        assert_eq!(ts.to_rfc3339(), "1999-03-29T15:16:59+00:00");
    }

    #[test]
    fn out_of_range_is_rejected() {
        assert!(read("62316222513080").is_err()); // month 13
        assert!(read("62200322513080").is_err()); // 30 February
        assert!(read("62116242513080").is_err()); // hour 24
        assert!(read("6211622251A080").is_err()); // bad BCD
        assert!(read("621162225130").is_err()); // truncated
        assert!(read("42209222513080").is_ok()); // 2024-02-29 leap day
        assert!(Timestamp::new(2024, 2, 30, 0, 0, 0, 0).is_err());
        assert!(Timestamp::new(2024, 1, 1, 0, 0, 0, 80).is_err());
    }
}
