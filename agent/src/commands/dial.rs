//! `cmd/dial` {request_id, to, bridge_to, slot?, record?}: click-to-call. The gateway rings
//! `bridge_to` (a manager's extension) and then dials `to` through a SIM.
//!
//! `bridge_to` goes into the INVITE's Request-URI and To header, so it is parsed, not
//! pattern-matched: `sip:` or `sips:`, a user, `@`, a host name or IP address and an optional
//! port; nothing else. Parameters (`;maddr=`, `;transport=`), headers (`?Subject=`), a second
//! URI (`>,<sip:…`), quotes and spaces are refused, and with `[voice] bridge_domains` set the
//! host must be one of them.

use serde::Deserialize;
use crate::proto::jobs::DialJob;

use super::{Context, Field, Parsed, Refusal, optional_bool, optional_slot, read, ValidCommand, Origin};
use super::registry::{Env, Exec, VerbSpec};

/// `cmd/dial`.
pub const VERB: VerbSpec = VerbSpec {
    parse,
    execute,
};

/// Places a call through the voice manager.
fn execute(env: &Env, cmd: ValidCommand, _origin: Origin) -> Exec<'_> {
    Box::pin(super::voice_command(env, cmd))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Dial {
    #[allow(dead_code)]
    request_id: Option<Field>,
    to: Option<Field>,
    slot: Option<Field>,
    bridge_to: Option<Field>,
    record: Option<Field>,
}

pub use crate::config::sip_uri::{BridgeUri, MAX_URI, domain_allowed, parse_bridge_uri};

/// Validates a dial.
pub fn parse(payload: &[u8], ctx: &Context) -> Result<Parsed, Refusal> {
    let d: Dial = read(payload)?;
    let to = match d.to.as_ref().and_then(Field::as_str) {
        Some(s) if gsmgw_drivers::modem::dialable(s) && s.len() >= 3 => s,
        _ => {
            return Err((
                "bad-number",
                "to is required: a dialable number (+ and digits)".into(),
            ));
        }
    };
    let Some(uri) = d.bridge_to.as_ref().and_then(Field::as_str) else {
        return Err((
            "bad-field",
            "bridge_to is required: a SIP URI like sip:101@pbx.local".into(),
        ));
    };
    let parsed = parse_bridge_uri(uri).map_err(|why| {
        (
            "bad-field",
            format!("bridge_to {}: {why}", Field::Str(uri.to_string()).shown()),
        )
    })?;
    if !domain_allowed(&parsed.host, &ctx.bridge_domains) {
        return Err((
            "bad-field",
            format!(
                "bridge_to host {:?} is not in [voice] bridge_domains",
                parsed.host
            ),
        ));
    }
    let slot = optional_slot(d.slot.as_ref(), &ctx.slots)?;
    let record = optional_bool("record", d.record.as_ref())?;
    let job = DialJob {
        to,
        bridge_to: uri,
        slot,
        record,
    };
    Ok(Parsed::typed(&job, slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_uris_pass() {
        for ok in [
            "sip:101@pbx.local",
            "sip:101@10.0.0.5:5060",
            "sips:manager.olena@pbx.example.com",
            "sip:*97@[2001:db8::1]:5070",
            "sip:%2B380501234567@pbx",
        ] {
            assert!(parse_bridge_uri(ok).is_ok(), "{ok}");
        }
        let u = parse_bridge_uri("sip:101@PBX.Local:5062").unwrap();
        assert_eq!(
            (u.user.as_str(), u.host.as_str(), u.port),
            ("101", "pbx.local", Some(5062))
        );
    }

    #[test]
    fn injections_are_refused() {
        for bad in [
            "sip:101@host>,<sip:evil@10.9.9.9",
            "sip:101@host;maddr=10.9.9.9;transport=tcp",
            "sip:101@host?Subject=hi",
            "sip:101@host\r\nX-Evil: 1",
            "sip:101 @host",
            "sip:\"101\"@host",
            "sip:host",
            "sip:101@",
            "sip:101@host:0",
            "sip:101@host:99999",
            "sip:101@host:50a",
            "sip:101@999.1.1.1",
            "sip:101@-host",
            "sip:101@[::1",
            "tel:+380501234567",
            "sip:101%4@host",
        ] {
            assert!(parse_bridge_uri(bad).is_err(), "{bad:?} passed");
        }
        assert!(parse_bridge_uri(&format!("sip:1@{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn allow_list() {
        let list = vec![
            "pbx.local".to_string(),
            "*.office.example".to_string(),
            "[::1]".to_string(),
        ];
        assert!(domain_allowed("pbx.local", &list));
        assert!(domain_allowed("a.office.example", &list));
        assert!(domain_allowed("::1", &list));
        assert!(!domain_allowed("office.example", &list));
        assert!(!domain_allowed("evil.example", &list));
        assert!(!domain_allowed("xoffice.example", &list));
        assert!(domain_allowed("anything", &[]));
    }
}
