//! The MQTT command decoder (`gsmgw_agent::commands`) on untrusted payloads.
//!
//! The first byte picks the verb (one of the registry's, or an unknown one); the rest is the
//! payload. Parsing never panics. When it succeeds, the request id it found is the one the
//! first pass (`request_id_of`) reads, and it is a valid topic level; a `dial`'s `bridge_to`
//! parses as a plain SIP URI on an allowed host; a campaign has 1 to 100 000 distinct,
//! valid recipients; a `ussd`'s code and replies are USSD strings only (no AT injection);
//! the stored payload serialises.
#![no_main]

use std::collections::BTreeSet;

use gsmgw_agent::commands::{self, Context, campaign::MAX_RECIPIENTS, dial};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let verbs = commands::verb_names();
    let verb = verbs.get(usize::from(sel) % (verbs.len() + 1)).copied().unwrap_or("reboot");
    let ctx = Context {
        slots: vec![1, 2],
        groups: BTreeSet::from(["kyivstar".to_string()]),
        bridge_domains: vec!["pbx.local".into(), "*.office.example".into()],
        internal: false,
    };
    let first = commands::request_id_of(payload);
    let Ok(cmd) = commands::parse(verb, payload, &ctx) else {
        return;
    };
    assert_eq!(first.as_ref().ok(), Some(&cmd.request_id));
    assert!(commands::valid_request_id(&cmd.request_id));
    assert!(serde_json::to_vec(&cmd.payload).is_ok());
    if let Some(s) = cmd.slot {
        assert!(ctx.slots.contains(&s));
    }
    match verb {
        "dial" => {
            let uri = cmd.payload["bridge_to"].as_str().expect("bridge_to kept");
            let u = dial::parse_bridge_uri(uri).expect("kept bridge_to parses");
            assert!(dial::domain_allowed(&u.host, &ctx.bridge_domains));
            assert!(!uri.contains([';', '?', '>', '<', ',', '"', ' ', '\r', '\n']));
        }
        "campaign" => {
            let plan = cmd.campaign.expect("campaign has a plan");
            assert!(!plan.recipients.is_empty() && plan.recipients.len() <= MAX_RECIPIENTS);
            let distinct: BTreeSet<&str> = plan.recipients.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(distinct.len(), plan.recipients.len());
            assert!(plan.recipients.iter().all(|(n, t)| commands::valid_e164(n) && !t.is_empty()));
            if let Some(g) = plan.spec["group"].as_str() {
                assert!(ctx.groups.contains(g));
            }
        }
        "sms-send" => {
            assert!(commands::valid_e164(cmd.payload["to"].as_str().expect("to kept")));
            let parts = cmd.payload["parts"].as_u64().expect("parts");
            assert!((1..=commands::MAX_SMS_PARTS as u64).contains(&parts));
        }
        "ussd" => {
            let ussd = |v: &serde_json::Value| {
                v.as_str()
                    .is_some_and(|s| gsmgw_drivers::ussd::validate_code(s).is_ok())
            };
            assert!(ussd(&cmd.payload["code"]), "{}", cmd.payload);
            if let Some(replies) = cmd.payload.get("replies") {
                let replies = replies.as_array().expect("replies kept as an array");
                assert!(replies.len() <= commands::ussd::MAX_REPLIES && replies.iter().all(ussd));
            }
            assert!(cmd.slot.is_some());
        }
        _ => {}
    }
});
