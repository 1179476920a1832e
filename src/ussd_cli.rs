//! `gsmgw ussd`: one USSD exchange on a modem port, printed for people and as one JSON line.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use gsmgw_agent::balance::BalanceParser;
use gsmgw_drivers::at::AtHandle;
use gsmgw_drivers::modem::Dialect;
use gsmgw_drivers::ussd::session::{self, Request};
use gsmgw_drivers::ussd::{DecodeHints, validate_code};

use crate::{PortArgs, open_engine};

/// The command's arguments.
#[derive(clap::Args)]
pub struct UssdArgs {
    #[command(flatten)]
    pub port: PortArgs,
    /// Force a dialect instead of detecting it.
    #[arg(long)]
    pub dialect: Option<Dialect>,
    /// Seconds to wait for each answer of the network.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// The USSD string, e.g. *111#.
    pub code: String,
    /// Answers to the menus that follow, in order.
    pub replies: Vec<String>,
}

/// The first line of a query's answer, without its `+XXX:` prefix; None when refused.
async fn query(h: &AtHandle, cmd: &str, prefix: &str) -> Option<String> {
    let r = h.cmd(cmd).await.ok()?;
    r.field_line(prefix)
        .or_else(|| r.first_line())
        .map(|s| s.trim_matches('"').to_string())
}

pub async fn run(a: UssdArgs) -> Result<ExitCode> {
    let fail = |e: &dyn std::fmt::Display| anyhow!("ussd {}: {e}", a.code);
    validate_code(&a.code).map_err(|e| fail(&e))?;
    for r in &a.replies {
        validate_code(r).map_err(|e| anyhow!("ussd {}: reply {r:?}: {e}", a.code))?;
    }
    if !(1.0..=600.0).contains(&a.timeout) {
        bail!("--timeout must be between 1 and 600 seconds");
    }
    let (h, mut urcs) = open_engine(&a.port).await?;
    if h.cmd("AT").await.is_err() && h.cmd("AT").await.is_err() {
        bail!("no modem answers on {}", a.port.port);
    }
    // Best effort: echo off, the GSM character set (plain requests and answers).
    for cmd in ["ATE0", "AT+CSCS=\"GSM\""] {
        if let Err(e) = h.cmd(cmd).await {
            tracing::debug!("{cmd}: {e}");
        }
    }
    let dialect = match a.dialect {
        Some(d) => d,
        None => {
            let who = format!(
                "{} {}",
                query(&h, "AT+CGMI", "+CGMI:").await.unwrap_or_default(),
                query(&h, "AT+CGMM", "+CGMM:").await.unwrap_or_default()
            );
            Dialect::detect_text(&who)
        }
    };
    let cscs_ucs2 = query(&h, "AT+CSCS?", "+CSCS:")
        .await
        .is_some_and(|c| c.eq_ignore_ascii_case("UCS2"));
    // The operator of the SIM (MCC-MNC from the IMSI) picks the balance vocabulary.
    let mcc_mnc = query(&h, "AT+CIMI", "+CIMI:")
        .await
        .filter(|i| i.len() >= 5 && i.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|i| i.get(..5).map(str::to_string));
    let request = Request {
        code: &a.code,
        replies: &a.replies,
        timeout: Duration::from_secs_f64(a.timeout),
    };
    let mut deferred = Vec::new();
    let spec = dialect.spec().ussd;
    let hints = DecodeHints {
        cscs_ucs2,
        packed_answers: spec.packed_answers,
    };
    let x = session::run(&h, &mut urcs, &mut deferred, &request, &spec, hints)
        .await
        .map_err(|e| fail(&e))?;
    for s in &x.steps {
        println!("> {}", s.sent);
        println!("< [{}] {}", s.status, s.text);
    }
    if x.cancelled_menu {
        println!("> (menu left unanswered: session ended)");
    }
    let last = x.last().ok_or_else(|| fail(&"no answer"))?;
    let balance = if last.status == gsmgw_drivers::ussd::UssdStatus::Menu {
        None
    } else {
        BalanceParser::new(None)?.parse(&last.text, mcc_mnc.as_deref())
    };
    /// The last line: what a script reads.
    #[derive(serde::Serialize)]
    struct Answer<'a, B: serde::Serialize> {
        status: gsmgw_drivers::ussd::UssdStatus,
        text: &'a str,
        dcs: Option<u32>,
        balance: Option<B>,
    }
    let out = Answer {
        status: last.status,
        text: &last.text,
        dcs: last.dcs,
        balance,
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(ExitCode::SUCCESS)
}
