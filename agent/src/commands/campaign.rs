//! `cmd/campaign`: one text (with per-recipient fields) to up to 100 000 recipients.
//!
//! The recipient list is read element by element into what the plan keeps (number and
//! fields); the list is cut off at [`MAX_RECIPIENTS`] + 1, so an oversized list costs no more
//! than the limit.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};

use super::field::tagged;
use super::registry::{self, Done, Env, Exec, Failure, VerbSpec};
use super::{
    Context, E164, Field, MAX_SMS_PARTS, Origin, Parsed, Refusal, ValidCommand, optional_bool,
    optional_slot, read,
};
pub use crate::campaign::CampaignPlan;

/// `cmd/campaign`.
pub const VERB: VerbSpec = VerbSpec {
    parse,
    execute,
};

fn execute(env: &Env, cmd: ValidCommand, _origin: Origin) -> Exec<'_> {
    Box::pin(run(env, cmd))
}

/// Stores the plan: the campaign, its command job and one job per recipient, in one commit.
async fn run(env: &Env, mut cmd: ValidCommand) -> Result<Done, Failure> {
    let rid = cmd.request_id.clone();
    let Some(plan) = cmd.campaign.take() else {
        return Err(("internal".into(), "campaign without a plan".into()));
    };
    // Arrived after its expires_at (held by the broker while the box was offline): nothing of
    // it would be sent; a repeat of an accepted campaign is still answered from the store.
    if !matches!(env.events.store().job_by_request(&rid).await, Ok(Some(_))) {
        super::refuse_expired(&plan.spec)?;
    }
    let recipients = plan.recipients.len();
    let submitted = crate::campaign::submit(&env.events, &rid, plan).await;
    registry::release_free_memory();
    match submitted {
        Ok(result) => {
            tracing::info!(request_id = %rid, recipients, "campaign accepted");
            Ok(Done::result(result))
        }
        Err(e) => Err(registry::store_refusal(env, &rid, e, "campaign").await),
    }
}

/// Most recipients in one campaign.
pub const MAX_RECIPIENTS: usize = 100_000;


/// Checks a campaign id: 1-64 characters of letters, digits and `._:-`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A recipient's personalisation fields, in the order given (a few per recipient: a list
/// costs a tenth of a map's node for 100 000 recipients).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(pub Vec<(String, Field)>);

impl Fields {
    /// The value of field `name` (the first, if it was given twice).
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = &(String, Field)> {
        self.0.iter()
    }
}

impl FromIterator<(String, Field)> for Fields {
    fn from_iter<I: IntoIterator<Item = (String, Field)>>(iter: I) -> Self {
        Fields(iter.into_iter().collect())
    }
}

thread_local! {
    /// The placeholders of the campaign being read on this thread (None: keep every field).
    /// A recipient's fields are read into memory only when the text uses them: a payload
    /// with 300 bytes of unused fields per recipient costs no more than one without.
    static WANTED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Sets [`WANTED`] for one read and clears it after, also on error.
struct Wanted;

impl Wanted {
    fn set(names: Vec<String>) -> Self {
        WANTED.with(|w| *w.borrow_mut() = Some(names));
        Wanted
    }
}

impl Drop for Wanted {
    fn drop(&mut self) {
        WANTED.with(|w| *w.borrow_mut() = None);
    }
}

/// The `{field}` names a template uses (as [`personalise`] finds them).
fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if close > 0
                    && after[..close]
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                out.push(after[..close].to_string());
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The first pass: the text only (everything else skipped unbuilt).
#[derive(Deserialize)]
struct TextOnly {
    text: Option<Field>,
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of fields")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            // Only what the text uses is kept (see [`WANTED`]); the rest is skipped unbuilt.
            let keep = WANTED.with(|w| w.borrow().as_ref().is_none_or(|names| names.contains(&k)));
            if keep {
                out.push((k, map.next_value::<Field>()?));
            } else {
                // Still checked: a tree is a bad recipient whether the text uses it or not.
                if let f @ (Field::Array | Field::Object) = map.next_value::<Field>()? {
                    out.push((k, f));
                }
            }
        }
        out.shrink_to_fit();
        Ok(Fields(out))
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

/// Fills `{field}` placeholders; an unknown field becomes empty.
pub fn personalise(template: &str, fields: Option<&Fields>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if after[..close]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && close > 0 =>
            {
                let name = &after[..close];
                if let Some(v) = fields.and_then(|f| f.get(name)).and_then(Field::as_text) {
                    out.push_str(&v);
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Campaign {
    #[allow(dead_code)]
    request_id: Option<Field>,
    campaign_id: Option<Field>,
    text: Option<Field>,
    recipients: Option<Recipients>,
    priority: Option<Field>,
    start_at: Option<Field>,
    expires_at: Option<Field>,
    quiet_hours: Option<Field>,
    report: Option<Field>,
    slot: Option<Field>,
    group: Option<Field>,
}

/// One entry of `recipients`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipient {
    to: Option<Field>,
    fields: Option<Fields>,
}

/// `recipients`: a list, or the kind of thing sent instead.
enum Recipients {
    List(Vec<Recipient>),
    Not(&'static str),
}

struct RecipientsVisitor;

impl<'de> Visitor<'de> for RecipientsVisitor {
    type Value = Recipients;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of recipients")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Recipients, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_RECIPIENTS));
        loop {
            let i = list.len();
            if i == MAX_RECIPIENTS {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(tagged(
                        "bad-field",
                        format!("recipients: at most {MAX_RECIPIENTS}"),
                    ));
                }
                break;
            }
            match seq.next_element::<Recipient>() {
                Ok(Some(r)) => list.push(r),
                Ok(None) => break,
                Err(e) => {
                    return Err(tagged(
                        "bad-recipient",
                        format!("recipients[{i}]: {}", strip_position(&e.to_string())),
                    ));
                }
            }
        }
        Ok(Recipients::List(list))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Recipients, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Recipients::Not("an object"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Recipients, E> {
        Ok(Recipients::Not("a string"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Recipients, E> {
        Ok(Recipients::Not("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Recipients, E> {
        Ok(Recipients::Not("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Recipients, E> {
        Ok(Recipients::Not("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Recipients, E> {
        Ok(Recipients::Not("a number"))
    }
}

impl<'de> Deserialize<'de> for Recipients {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RecipientsVisitor)
    }
}

fn strip_position(s: &str) -> &str {
    s.rsplit_once(" at line ").map_or(s, |(head, _)| head)
}

/// Validates a `cmd/campaign` payload.
pub fn parse(payload: &[u8], ctx: &Context) -> Result<Parsed, Refusal> {
    let names = match serde_json::from_slice::<TextOnly>(payload) {
        Ok(TextOnly {
            text: Some(Field::Str(t)),
        }) => placeholders(&t),
        _ => Vec::new(),
    };
    let c: Campaign = {
        let _wanted = Wanted::set(names);
        read(payload)?
    };
    let plan = plan(c, ctx)?;
    Ok(Parsed {
        payload: plan.spec.clone(),
        slot: None,
        campaign: Some(plan),
    })
}

fn plan(c: Campaign, ctx: &Context) -> Result<CampaignPlan, Refusal> {
    let campaign_id = match c.campaign_id.as_ref().and_then(Field::as_str) {
        Some(s) if valid_id(s) => s.to_string(),
        _ => {
            return Err((
                "bad-field",
                "campaign_id must be 1-64 characters of letters, digits and ._:-".into(),
            ));
        }
    };
    let template = match c.text {
        Some(Field::Str(s)) if !s.is_empty() => s,
        _ => return Err(("bad-text", "text is required (a non-empty string)".into())),
    };
    let priority = match &c.priority {
        None | Some(Field::Null) => 0,
        Some(v) => v.as_i64().filter(|p| (-100..=100).contains(p)).ok_or((
            "bad-field",
            "priority must be an integer -100..100".to_string(),
        ))?,
    };
    let start = super::rfc3339("start_at", c.start_at.as_ref())?;
    let expires = super::rfc3339("expires_at", c.expires_at.as_ref())?;
    if let (Some((s, s_ms)), Some((e, e_ms))) = (&start, &expires) {
        if s_ms >= e_ms {
            return Err((
                "bad-field",
                format!("start_at {s} is not before expires_at {e}: nothing could be sent"),
            ));
        }
    }
    let quiet = match &c.quiet_hours {
        None | Some(Field::Null) => None,
        Some(Field::Str(s)) if crate::quiet::QuietHours::parse(s).is_ok() => Some(s.clone()),
        Some(_) => return Err(("bad-field", "quiet_hours must look like 21:00-09:00".into())),
    };
    let report = optional_bool("report", c.report.as_ref())?.unwrap_or(false);
    let slot = optional_slot(c.slot.as_ref(), &ctx.slots)?;
    let group = match &c.group {
        None | Some(Field::Null) => None,
        Some(Field::Str(g)) if ctx.groups.contains(g) => Some(g.clone()),
        Some(Field::Str(g)) => {
            let known: Vec<&str> = ctx.groups.iter().map(String::as_str).collect();
            return Err((
                "unknown-group",
                format!(
                    "no SIM is in group {g:?} (groups: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
        Some(f) => {
            return Err((
                "bad-field",
                format!("group must be a string, not {}", f.kind()),
            ));
        }
    };
    let list = match c.recipients {
        Some(Recipients::List(l)) => l,
        Some(Recipients::Not(kind)) => {
            return Err((
                "bad-field",
                format!("recipients must be an array, not {kind}"),
            ));
        }
        None => return Err(("bad-field", "recipients must be an array".into())),
    };
    if list.is_empty() {
        return Err((
            "bad-field",
            format!("recipients: 1 to {MAX_RECIPIENTS}, got 0"),
        ));
    }
    let mut seen = HashSet::with_capacity(list.len());
    let mut recipients = Vec::with_capacity(list.len());
    let mut bad = Vec::new();
    let mut duplicates = 0;
    for (i, r) in list.into_iter().enumerate() {
        let to = match r.to {
            Some(Field::Str(s)) if E164::parse(&s).is_some() => s,
            other => {
                let shown = other.map_or("none".to_string(), |f| f.shown());
                bad.push(format!("#{i} {shown}: not an E.164 number"));
                continue;
            }
        };
        if let Some((name, f)) = r
            .fields
            .as_ref()
            .and_then(|fs| {
                fs.iter()
                    .find(|(_, f)| matches!(f, Field::Array | Field::Object))
            })
            .map(|(name, f)| (name, f))
        {
            bad.push(format!(
                "#{i} {to}: fields.{name} is {}, not a string or number",
                f.kind()
            ));
            continue;
        }
        if seen.contains(&to) {
            duplicates += 1;
            continue;
        }
        let text = personalise(&template, r.fields.as_ref());
        if text.is_empty() {
            bad.push(format!("#{i} {to}: the text is empty"));
            continue;
        }
        let (_, parts) = gsmgw_drivers::pdu::split_text(&text, false);
        if parts.len() > MAX_SMS_PARTS {
            bad.push(format!(
                "#{i} {to}: {} parts (at most {MAX_SMS_PARTS})",
                parts.len()
            ));
            continue;
        }
        seen.insert(to.clone());
        recipients.push((to, text));
    }
    if !bad.is_empty() {
        let shown: Vec<String> = bad.iter().take(10).cloned().collect();
        return Err((
            "bad-recipient",
            format!("{} bad recipient(s): {}", bad.len(), shown.join("; ")),
        ));
    }
    let spec = crate::proto::jobs::to_value(&crate::proto::jobs::CampaignSpec {
        campaign_id: campaign_id.clone(),
        text: template,
        priority,
        start_at: start.as_ref().map(|(s, _)| s.clone()),
        expires_at: expires.as_ref().map(|(s, _)| s.clone()),
        expires_ms: expires.map(|(_, ms)| ms),
        quiet_hours: quiet,
        report,
        slot,
        group,
        recipients: recipients.len(),
        duplicates,
    });
    Ok(CampaignPlan {
        campaign_id,
        spec,
        priority,
        not_before_ms: start.map_or(0, |(_, ms)| ms),
        recipients,
        duplicates,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use super::*;

    fn ctx() -> Context {
        Context {
            slots: vec![1, 2],
            groups: ["kyivstar".to_string()].into_iter().collect(),
            internal: false,
            bridge_domains: Vec::new(),
        }
    }

    fn p(v: serde_json::Value) -> Result<CampaignPlan, Refusal> {
        parse(v.to_string().as_bytes(), &ctx()).map(|p| p.campaign.unwrap())
    }

    #[test]
    fn placeholders_are_filled() {
        let f: Fields = [
            ("name".to_string(), Field::Str("Олена".into())),
            ("n".to_string(), Field::Int(3)),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            personalise("Привіт, {name}! У вас {n} бонуси. {missing}{", Some(&f)),
            "Привіт, Олена! У вас 3 бонуси. {"
        );
        assert_eq!(personalise("{ not a field }", None), "{ not a field }");
    }

    #[test]
    fn only_used_fields_are_kept() {
        assert_eq!(
            placeholders("{a} {b}{a} {not one} {c_1}{"),
            ["a", "b", "c_1"]
        );
        let plan = p(json!({"request_id":"r","campaign_id":"c1","text":"{name}",
            "recipients":[{"to":"+380501234567","fields":{"name":"Ola","big":"x","n":3}}]}))
        .unwrap();
        assert_eq!(plan.recipients[0].1, "Ola");
        // An unused field that is a tree is still refused.
        let e = p(json!({"request_id":"r","campaign_id":"c1","text":"{name}",
            "recipients":[{"to":"+380501234567","fields":{"big":[1]}}]}))
        .unwrap_err();
        assert_eq!(e.0, "bad-recipient");
        assert!(WANTED.with(|w| w.borrow().is_none()));
    }

    #[test]
    fn bad_ids_and_numbers() {
        let bad = json!({"request_id":"r","campaign_id": "a/b", "text": "t", "recipients": [{"to": "+380501111111"}]});
        assert_eq!(p(bad).unwrap_err().0, "bad-field");
        let bad = json!({"request_id":"r","campaign_id": "x", "text": "t", "recipients": [{"to": "123"}]});
        assert_eq!(p(bad).unwrap_err().0, "bad-recipient");
    }

    #[test]
    fn personalises_and_dedups() {
        let plan = p(json!({"request_id":"r","campaign_id":"c1","text":"Hi {name}, {n}!",
            "recipients":[{"to":"+380501234567","fields":{"name":"Ola","n":3}},{"to":"+380501234567"},{"to":"+380671112233"}],
            "group":"kyivstar"}))
        .unwrap();
        assert_eq!(plan.recipients[0].1, "Hi Ola, 3!");
        assert_eq!(plan.recipients[1].1, "Hi , !");
        assert_eq!(plan.duplicates, 1);
        assert_eq!(plan.spec["group"], "kyivstar");
    }

    #[test]
    fn refusals() {
        let base = || json!({"request_id":"r","campaign_id":"c1","text":"t","recipients":[{"to":"+380501234567"}]});
        let with = |k: &str, v: serde_json::Value| {
            let mut b = base();
            b[k] = v;
            b
        };
        let code = |v| p(v).unwrap_err().0;
        assert_eq!(code(with("group", json!("nobody"))), "unknown-group");
        assert_eq!(
            code(
                with("start_at", json!("2026-12-02T10:00:00Z"))
                    .as_object()
                    .map(|o| {
                        let mut o = o.clone();
                        o.insert("expires_at".into(), json!("2026-12-02T09:00:00Z"));
                        serde_json::Value::Object(o)
                    })
                    .unwrap()
            ),
            "bad-field"
        );
        assert_eq!(code(with("colour", json!(1))), "bad-field");
        assert_eq!(
            code(with("recipients", json!({"to":"+380501234567"}))),
            "bad-field"
        );
        assert_eq!(code(with("recipients", json!([]))), "bad-field");
        assert_eq!(
            code(with("recipients", json!([{"to":"+380501234567","x":1}]))),
            "bad-recipient"
        );
        assert_eq!(
            code(with("recipients", json!([{"to":"0501234567"}]))),
            "bad-recipient"
        );
        assert_eq!(code(with("recipients", json!([5]))), "bad-recipient");
        assert_eq!(
            code(with(
                "recipients",
                json!([{"to":"+380501234567","fields":{"a":[1]}}])
            )),
            "bad-recipient"
        );
        assert_eq!(code(with("slot", json!(9))), "unknown-slot");
    }

    #[test]
    fn a_list_over_the_limit_is_cut_off() {
        let mut s =
            String::from(r#"{"request_id":"r","campaign_id":"c","text":"t","recipients":["#);
        for i in 0..=MAX_RECIPIENTS {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(r#"{{"to":"+38050{:07}"}}"#, i));
        }
        s.push_str("]}");
        let e = parse(s.as_bytes(), &ctx()).unwrap_err();
        assert_eq!(e.0, "bad-field");
        assert!(e.1.contains("at most"), "{}", e.1);
    }
}
