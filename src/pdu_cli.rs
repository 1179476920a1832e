//! `gsmgw pdu decode|encode`: the SMS PDU codec on the command line, as JSON.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use gsmgw_drivers::pdu::{self, Concat, Pdu, SubmitOptions};
use serde_json::{Value, json};

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

fn concat_json(c: &Option<Concat>) -> Value {
    match c {
        Some(c) => json!({"concat": {"ref": c.reference, "total": c.total, "seq": c.seq}}),
        None => Value::Null,
    }
}

fn text_fields(encoding: pdu::Encoding, text: &str, data: &[u8]) -> (Value, Value) {
    if encoding == pdu::Encoding::EightBit {
        (Value::Null, json!(pdu::to_hex(data)))
    } else {
        (json!(text), Value::Null)
    }
}

/// The JSON form of a decoded PDU.
pub fn pdu_json(p: &Pdu) -> Value {
    let smsc = p.smsc().map(|a| a.to_string());
    match p {
        Pdu::Deliver(d) => {
            let (text, data) = text_fields(d.encoding, &d.text, &d.data);
            json!({
                "type": "deliver", "smsc": smsc, "from": d.from.to_string(),
                "text": text, "data": data, "encoding": d.encoding.as_str(), "class": d.class,
                "udh": concat_json(&d.concat), "timestamp": d.scts.to_rfc3339(),
                "status_report_indication": d.status_report_indication,
            })
        }
        Pdu::Submit(s) => {
            let (text, data) = text_fields(s.encoding, &s.text, &s.data);
            json!({
                "type": "submit", "smsc": smsc, "to": s.to.to_string(), "mr": s.mr,
                "text": text, "data": data, "encoding": s.encoding.as_str(), "class": s.class,
                "udh": concat_json(&s.concat), "report": s.srr,
                "validity_minutes": s.validity.map(pdu::validity_to_minutes),
            })
        }
        Pdu::StatusReport(r) => json!({
            "type": "status-report", "smsc": smsc, "to": r.recipient.to_string(), "mr": r.mr,
            "status": r.status, "status_class": r.status_class().as_str(),
            "timestamp": r.scts.to_rfc3339(), "discharge_time": r.discharge_time.to_rfc3339(),
        }),
    }
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
            let parts: Vec<Value> = parts
                .iter()
                .map(|p| json!({"pdu": p.pdu, "tpdu_len": p.tpdu_len}))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({"encoding": encoding.as_str(), "parts": parts})
                )?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
