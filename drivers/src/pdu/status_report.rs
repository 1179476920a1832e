//! SMS-STATUS-REPORT (SC → MS): the delivery report for a message sent with TP-SRR.

use super::{Address, EncodedPart, PduError, Reader, Timestamp, dcs::Dcs, encoded_part, user_data};

/// TP-MTI of SMS-STATUS-REPORT.
const MTI: u8 = 0b10;
/// TP-MMS: set means "no more messages are waiting".
const NO_MORE_MESSAGES: u8 = 0x04;
/// TP-UDHI: the optional user data starts with a header.
const UDHI: u8 = 0x40;
/// TP-PI bits: PID, DCS, UDL present; extension (another PI octet follows).
const PI_PID: u8 = 0x01;
/// TP-PI: TP-DCS present.
const PI_DCS: u8 = 0x02;
/// TP-PI: TP-UDL (and TP-UD) present.
const PI_UDL: u8 = 0x04;
/// TP-PI: another TP-PI octet follows.
const PI_EXTENSION: u8 = 0x80;

/// What a TP-Status value says about the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusClass {
    /// 0x00-0x1F: transaction completed (delivered, or replaced / forwarded).
    Delivered,
    /// 0x20-0x3F: temporary error, the SC is still trying.
    Pending,
    /// 0x40-0x7F: permanent error or temporary error the SC gave up on; reserved 0x80-0xFF too.
    Failed,
}

impl StatusClass {
    /// Classifies a TP-Status value.
    pub fn of(status: u8) -> StatusClass {
        match status {
            0x00..=0x1F => StatusClass::Delivered,
            0x20..=0x3F => StatusClass::Pending,
            _ => StatusClass::Failed,
        }
    }

    /// Short name: "delivered", "pending" or "failed".
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Delivered => "delivered",
            StatusClass::Pending => "pending",
            StatusClass::Failed => "failed",
        }
    }
}

/// A decoded SMS-STATUS-REPORT. Optional trailing PID/DCS/UD are checked and not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// Service centre (from the SMSC field).
    pub smsc: Option<Address>,
    /// Message reference of the submitted message (TP-MR).
    pub mr: u8,
    /// Recipient of the submitted message (TP-RA).
    pub recipient: Address,
    /// When the SC received the submitted message (TP-SCTS).
    pub scts: Timestamp,
    /// When it was delivered, or the last attempt (TP-DT).
    pub discharge_time: Timestamp,
    /// TP-Status.
    pub status: u8,
}

impl StatusReport {
    /// What the status says: delivered, pending or failed.
    pub fn status_class(&self) -> StatusClass {
        StatusClass::of(self.status)
    }

    /// The message reached the recipient (status 0x00-0x1F).
    pub fn is_delivered(&self) -> bool {
        self.status_class() == StatusClass::Delivered
    }

    /// The SC is still trying (status 0x20-0x3F).
    pub fn is_pending(&self) -> bool {
        self.status_class() == StatusClass::Pending
    }

    /// Delivery failed for good (status 0x40 and above).
    pub fn is_failed(&self) -> bool {
        self.status_class() == StatusClass::Failed
    }

    /// Reads the TPDU (first octet onwards); the SMSC field was read by the caller.
    pub(crate) fn read(
        r: &mut Reader<'_>,
        smsc: Option<Address>,
    ) -> Result<StatusReport, PduError> {
        let first = r.u8("first octet")?;
        let mr = r.u8("message reference")?;
        let recipient = Address::read_tp(r, "recipient address")?;
        let scts = Timestamp::read(r, "service centre timestamp")?;
        let discharge_time = Timestamp::read(r, "discharge time")?;
        let status = r.u8("status")?;
        if r.remaining() > 0 {
            let mut pi = r.u8("parameter indicator")?;
            let first_pi = pi;
            while pi & PI_EXTENSION != 0 {
                pi = r.u8("parameter indicator")?;
            }
            if first_pi & PI_PID != 0 {
                r.u8("protocol identifier")?;
            }
            let dcs = if first_pi & PI_DCS != 0 {
                r.u8("data coding scheme")?
            } else {
                0
            };
            if first_pi & PI_UDL != 0 {
                user_data::read(r, first & UDHI != 0, Dcs::parse(dcs).encoding)?;
            }
        }
        Ok(StatusReport {
            smsc,
            mr,
            recipient,
            scts,
            discharge_time,
            status,
        })
    }

    /// The TPDU bytes (without the SMSC field), with no optional parameters.
    pub fn to_tpdu(&self) -> Result<Vec<u8>, PduError> {
        let mut out = vec![MTI | NO_MORE_MESSAGES, self.mr];
        self.recipient.write_tp(&mut out)?;
        self.scts.write(&mut out)?;
        self.discharge_time.write(&mut out)?;
        out.push(self.status);
        Ok(out)
    }

    /// Encodes this report as one PDU with its SMSC field.
    pub fn encode(&self) -> Result<EncodedPart, PduError> {
        encoded_part(self.smsc.as_ref(), &self.to_tpdu()?)
    }
}

/// Encodes an SMS-STATUS-REPORT (e.g. for the modem simulator's `+CDS`).
pub fn encode_status_report(
    smsc: Option<&str>,
    mr: u8,
    recipient: &str,
    scts: Timestamp,
    discharge_time: Timestamp,
    status: u8,
) -> Result<EncodedPart, PduError> {
    StatusReport {
        smsc: smsc.map(Address::parse).transpose()?,
        mr,
        recipient: Address::parse(recipient)?,
        scts,
        discharge_time,
        status,
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{Pdu, decode};

    /// SMSC +31624000000, MR 0xD6, recipient +31628870634, delivered (status 0).
    const REPORT: &str = "07911326040000F006D60B911326880736F4111011719551401110117195714000";

    fn report(hex: &str) -> Result<StatusReport, PduError> {
        match decode(hex)? {
            Pdu::StatusReport(r) => Ok(r),
            other => panic!("expected a status report, got {other:?}"),
        }
    }

    #[test]
    fn delivered_report() {
        let r = report(REPORT).unwrap();
        assert_eq!(r.mr, 0xD6);
        assert_eq!(r.recipient.number, "+31628870634");
        assert_eq!(r.scts.to_rfc3339(), "2011-01-11T17:59:15+01:00");
        assert_eq!(r.discharge_time.to_rfc3339(), "2011-01-11T17:59:17+01:00");
        assert_eq!(r.status, 0);
        assert!(r.is_delivered() && !r.is_pending() && !r.is_failed());
        assert_eq!(r.encode().unwrap().pdu, REPORT);
        let again = encode_status_report(
            Some("+31624000000"),
            0xD6,
            "+31628870634",
            r.scts,
            r.discharge_time,
            0,
        )
        .unwrap();
        assert_eq!(again.pdu, REPORT);
        assert_eq!(again.tpdu_len, REPORT.len() / 2 - 8);
    }

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(0x00), StatusClass::Delivered);
        assert_eq!(StatusClass::of(0x02), StatusClass::Delivered);
        assert_eq!(StatusClass::of(0x20), StatusClass::Pending);
        assert_eq!(StatusClass::of(0x30), StatusClass::Pending);
        assert_eq!(StatusClass::of(0x41), StatusClass::Failed);
        assert_eq!(StatusClass::of(0x65), StatusClass::Failed);
        assert_eq!(StatusClass::of(0x80).as_str(), "failed");
    }

    #[test]
    fn optional_trailing_parameters() {
        // PI 0x00: nothing follows.
        assert!(report(&format!("{REPORT}00")).is_ok());
        // PI 0x03: PID and DCS.
        assert!(report(&format!("{REPORT}030008")).is_ok());
        // PI 0x07: PID, DCS (8-bit), UDL 6, "report".
        let r = report(&format!("{REPORT}070004067265706F7274")).unwrap();
        assert_eq!(r.status, 0);
        // PI 0x04 with GSM 7-bit (default DCS) user data.
        assert!(report(&format!("{REPORT}040AE8329BFD4697D9EC37")).is_ok());
        // PI with the extension bit, then a second PI octet.
        assert!(report(&format!("{REPORT}8000")).is_ok());
    }

    #[test]
    fn malformed_reports() {
        assert!(report(&REPORT[..REPORT.len() - 2]).is_err()); // no status
        assert!(report(&format!("{REPORT}01")).is_err()); // PID announced, missing
        assert!(report(&format!("{REPORT}0704")).is_err()); // PID but no DCS
        assert!(report(&format!("{REPORT}040A")).is_err()); // UDL but no data
        assert!(report(&format!("{REPORT}01FF00")).is_err()); // trailing byte
        assert!(report(&format!("{REPORT}80")).is_err()); // extension PI missing
        assert!(report(&REPORT.replace("957140", "957940")).is_err()); // DT second 97
    }

    #[test]
    fn negative_zone_failed_report() {
        let scts = Timestamp::new(2025, 12, 31, 23, 59, 59, -20).unwrap();
        let dt = Timestamp::new(2026, 1, 1, 0, 0, 1, -20).unwrap();
        let part = encode_status_report(None, 1, "7726", scts, dt, 0x41).unwrap();
        assert_eq!(part.pdu, "000601048177625221133295950A6210100000100A41");
        let r = report(&part.pdu).unwrap();
        assert_eq!(r.scts.to_rfc3339(), "2025-12-31T23:59:59-05:00");
        assert!(r.is_failed());
    }
}
