//! `gsmgw pdu decode|encode`: the SMS PDU codec on the command line, as JSON.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use gsmgw_drivers::pdu::{self, Concat, Pdu, SubmitOptions};
use serde::Serialize;

/// The pdu subcommands.
#[derive(Subcommand)]
pub enum PduCmd {
    /// Decode a PDU (hex with the SMSC field, as AT+CMGR prints it) from the argument or stdin.
    Decode {
        /// The PDU in hex; read from stdin when absent.
        hex: Option<String>,
    },
    /// Encode an SMS-SUBMIT (split into parts when long).
    Encode {
        /// Destination number.
        #[arg(long)]
        to: String,
        /// Message text.
        #[arg(long)]
        text: String,
        /// Request a delivery report.
        #[arg(long)]
        report: bool,
        /// Service centre number (default: the modem's own).
        #[arg(long)]
        smsc: Option<String>,
        /// Use UCS-2 even when the text fits GSM 7-bit.
        #[arg(long)]
        ucs2: bool,
    },
}

/// The `udh` field: a concatenation header, or `null`.
#[derive(Serialize)]
struct Udh {
    concat: ConcatJson,
}

#[derive(Serialize)]
struct ConcatJson {
    #[serde(rename = "ref")]
    reference: u16,
    total: u8,
    seq: u8,
}

fn udh(c: &Option<Concat>) -> Option<Udh> {
    c.as_ref().map(|c| Udh {
        concat: ConcatJson {
            reference: c.reference,
            total: c.total,
            seq: c.seq,
        },
    })
}

/// `text` for a text message, `data` (hex) for an 8-bit one; the other is `null`.
fn text_fields(
    encoding: pdu::Encoding,
    text: &str,
    data: &[u8],
) -> (Option<String>, Option<String>) {
    if encoding == pdu::Encoding::EightBit {
        (None, Some(pdu::to_hex(data)))
    } else {
        (Some(text.to_string()), None)
    }
}

/// A decoded PDU as `pdu decode` prints it.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum PduJson {
    /// SMS-DELIVER.
    Deliver {
        smsc: Option<String>,
        from: String,
        text: Option<String>,
        data: Option<String>,
        encoding: &'static str,
        class: Option<u8>,
        udh: Option<Udh>,
        timestamp: String,
        status_report_indication: bool,
    },
    /// SMS-SUBMIT.
    Submit {
        smsc: Option<String>,
        to: String,
        mr: u8,
        text: Option<String>,
        data: Option<String>,
        encoding: &'static str,
        class: Option<u8>,
        udh: Option<Udh>,
        report: bool,
        validity_minutes: Option<u32>,
    },
    /// SMS-STATUS-REPORT.
    StatusReport {
        smsc: Option<String>,
        to: String,
        mr: u8,
        status: u8,
        status_class: &'static str,
        timestamp: String,
        discharge_time: String,
    },
}

/// The JSON form of a decoded PDU.
fn pdu_json(p: &Pdu) -> PduJson {
    let smsc = p.smsc().map(|a| a.to_string());
    match p {
        Pdu::Deliver(d) => {
            let (text, data) = text_fields(d.encoding, &d.text, &d.data);
            PduJson::Deliver {
                smsc,
                from: d.from.to_string(),
                text,
                data,
                encoding: d.encoding.as_str(),
                class: d.class,
                udh: udh(&d.concat),
                timestamp: d.scts.to_rfc3339(),
                status_report_indication: d.status_report_indication,
            }
        }
        Pdu::Submit(s) => {
            let (text, data) = text_fields(s.encoding, &s.text, &s.data);
            PduJson::Submit {
                smsc,
                to: s.to.to_string(),
                mr: s.mr,
                text,
                data,
                encoding: s.encoding.as_str(),
                class: s.class,
                udh: udh(&s.concat),
                report: s.srr,
                validity_minutes: s.validity.map(pdu::validity_to_minutes),
            }
        }
        Pdu::StatusReport(r) => PduJson::StatusReport {
            smsc,
            to: r.recipient.to_string(),
            mr: r.mr,
            status: r.status,
            status_class: r.status_class().as_str(),
            timestamp: r.scts.to_rfc3339(),
            discharge_time: r.discharge_time.to_rfc3339(),
        },
    }
}

/// `pdu encode`'s output.
#[derive(Serialize)]
struct Encoded<'a> {
    encoding: &'static str,
    parts: Vec<EncodedPart<'a>>,
}

#[derive(Serialize)]
struct EncodedPart<'a> {
    pdu: &'a str,
    tpdu_len: usize,
}

/// Runs a pdu subcommand.
pub fn run(cmd: PduCmd) -> Result<ExitCode> {
    match cmd {
        PduCmd::Decode { hex } => {
            let hex = match hex {
                Some(h) => h,
                None => {
                    let mut s = String::new();
                    std::io::stdin()
                        .take(64 * 1024)
                        .read_to_string(&mut s)
                        .context("cannot read stdin")?;
                    s
                }
            };
            let p = pdu::decode(hex.trim()).context("cannot decode PDU")?;
            println!("{}", serde_json::to_string_pretty(&pdu_json(&p))?);
        }
        PduCmd::Encode {
            to,
            text,
            report,
            smsc,
            ucs2,
        } => {
            let addr = pdu::Address::parse(&to).context("bad --to")?;
            if addr.kind == pdu::AddressKind::Alphanumeric {
                bail!("bad --to: {to:?} is not a phone number");
            }
            let (encoding, split) = pdu::split_text(&text, ucs2);
            if split.len() > pdu::MAX_PARTS {
                bail!(
                    "the text needs {} {} parts; at most {} are sent (as by cmd/sms-send)",
                    split.len(),
                    encoding.as_str(),
                    pdu::MAX_PARTS
                );
            }
            let parts = pdu::encode_submit(&SubmitOptions {
                to,
                text: text.clone(),
                smsc,
                report,
                force_ucs2: ucs2,
                ..SubmitOptions::default()
            })
            .context("cannot encode")?;
            let (encoding, _) = pdu::split_text(&text, ucs2);
            let out = Encoded {
                encoding: encoding.as_str(),
                parts: parts
                    .iter()
                    .map(|p| EncodedPart {
                        pdu: &p.pdu,
                        tpdu_len: p.tpdu_len,
                    })
                    .collect(),
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
