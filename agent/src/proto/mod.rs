//! The typed vocabulary of the MQTT contract: job and campaign states, event types, the status
//! (birth and will) and alarm payloads. Each serialises to exactly the string docs/mqtt.md
//! and the JSON Schemas in docs/schema name; the string form exists only at the edges (the
//! wire, SQL columns).

use std::fmt;

use serde::{Deserialize, Serialize};

pub mod events;
pub mod jobs;
pub mod replies;

pub use events::EventBody;

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The wire (and column) form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }

            /// The value named `s`, if any.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

/// The command verbs, each once: its variant, its wire name (`cmd/{verb}`, the store's
/// `jobs.verb`) and the module under `agent/src/commands` that parses and executes it, in
/// the order `unknown-verb` lists them. Expands `$m!` over the list: this module builds
/// [`Verb`] from it, `commands` its modules and its registry. A new verb is one line here.
macro_rules! for_each_verb {
    ($m:ident) => {
        $m! {
            /// `ping`: a liveness check.
            Ping = "ping" => ping,
            /// `sms-send`: one SMS.
            SmsSend = "sms-send" => sms_send,
            /// `campaign`: many SMS.
            Campaign = "campaign" => campaign,
            /// `campaign-control`: pause, resume or cancel a campaign.
            CampaignControl = "campaign-control" => campaign_control,
            /// `dial`: an outgoing call.
            Dial = "dial" => dial,
            /// `hangup`: ends a call.
            Hangup = "hangup" => hangup,
            /// `recording-fetch`: a call's recording, in chunks.
            RecordingFetch = "recording-fetch" => recording_fetch,
            /// `ussd`: a USSD session.
            Ussd = "ussd" => ussd,
            /// `modem-reset`: a soft reset or power cycle of one modem.
            ModemReset = "modem-reset" => modem_reset,
            /// `log-fetch`: the agent's last log lines.
            LogFetch = "log-fetch" => log_fetch,
        }
    };
}
pub(crate) use for_each_verb;

macro_rules! verb_vocabulary {
    ($($(#[$vdoc:meta])* $variant:ident = $text:literal => $module:ident),* $(,)?) => {
        vocabulary! {
            /// A command verb (`cmd/{verb}`, the store's `jobs.verb`).
            Verb { $($(#[$vdoc])* $variant = $text),* }
        }
    };
}

for_each_verb!(verb_vocabulary);

vocabulary! {
    /// Where a command's job is (`sms-status.state`, the store's `jobs.state`).
    JobState {
        /// Waiting for a SIM (or its time).
        Queued = "queued",
        /// Handed to the modem (`AT+CMGS` about to be or being written).
        Sending = "sending",
        /// The network took it.
        Sent = "sent",
        /// The status report said delivered.
        Delivered = "delivered",
        /// Refused for good, or out of attempts.
        Failed = "failed",
        /// Not sent by its deadline.
        Expired = "expired",
        /// Cancelled (a campaign's cancel).
        Cancelled = "cancelled",
        /// Interrupted by a crash mid-send: it may or may not have gone out.
        Unknown = "unknown",
        /// A command executed at once (ping, dial, campaign, campaign-control).
        Done = "done",
    }
}

impl JobState {
    /// Whether the agent does nothing more with the job (retention may delete it); a `sent`
    /// one may still learn it was delivered.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Sending)
    }
}

vocabulary! {
    /// A campaign's state (`campaign.state`).
    CampaignState {
        /// Its messages are being sent.
        Running = "running",
        /// Paused by the central server or the console.
        Paused = "paused",
        /// Every message has a final state.
        Done = "done",
        /// Cancelled: its queued messages were cancelled.
        Cancelled = "cancelled",
    }
}

impl CampaignState {
    /// Whether nothing more happens to the campaign (retention may delete it).
    pub fn is_final(self) -> bool {
        matches!(self, CampaignState::Done | CampaignState::Cancelled)
    }
}

vocabulary! {
    /// The `type` of an event and the last level of its topic `gsmgw/{id}/event/{type}`.
    EventType {
        /// An SMS arrived (`event-sms-received.json`).
        SmsReceived = "sms-received",
        /// An SMS changed state (`event-sms-status.json`).
        SmsStatus = "sms-status",
        /// A call ended: its record (`event-call.json`).
        Call = "call",
        /// A call changed state while in progress (`event-call-state.json`).
        CallState = "call-state",
        /// A modem changed state (`event-modem.json`).
        Modem = "modem",
        /// Something needs attention (`event-alarm.json`).
        Alarm = "alarm",
        /// A campaign's progress (`event-campaign.json`).
        Campaign = "campaign",
        /// A network-initiated USSD message (`event-ussd.json`).
        Ussd = "ussd",
    }
}

/// `gsmgw/{id}/status`, retained: the birth (`online: true`) and the will and goodbye
/// (`online: false`, only `boot_id` beside it). `status.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Whether the agent is connected.
    pub online: bool,
    /// The agent's version (birth only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// This run's id.
    pub boot_id: String,
    /// When (birth only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// `ok` or `full` (birth only): whether the store takes new data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<&'static str>,
}

impl Status {
    /// The birth.
    pub fn online(version: &str, boot_id: &str, ts: String, storage_full: bool) -> Self {
        Self {
            online: true,
            version: Some(version.to_string()),
            boot_id: boot_id.to_string(),
            ts: Some(ts),
            storage: Some(if storage_full { "full" } else { "ok" }),
        }
    }

    /// The will and the goodbye.
    pub fn offline(boot_id: &str) -> Self {
        Self {
            online: false,
            version: None,
            boot_id: boot_id.to_string(),
            ts: None,
            storage: None,
        }
    }

    /// The JSON payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The body of an `alarm` event (`event-alarm.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alarm<'a> {
    /// Machine-readable code (`disk-full`, `storage-full`, `command-too-large`, …).
    pub code: &'a str,
    /// Plain words.
    pub message: &'a str,
    /// The slot it concerns, if any (`null` otherwise).
    pub slot: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_wire_form() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in EventType::ALL {
            assert_eq!(EventType::parse(s.as_str()), Some(*s));
        }
        for s in CampaignState::ALL {
            assert_eq!(CampaignState::parse(s.as_str()), Some(*s));
        }
        for v in Verb::ALL {
            assert_eq!(Verb::parse(v.as_str()), Some(*v));
        }
        assert_eq!(Verb::SmsSend.as_str(), "sms-send");
        assert!(CampaignState::Done.is_final() && !CampaignState::Paused.is_final());
        assert_eq!(JobState::parse("nonsense"), None);
        assert!(JobState::Failed.is_final() && !JobState::Sending.is_final());
    }

    #[test]
    fn status_payloads_are_the_documented_ones() {
        let birth = Status::online("1.2", "b-1", "2026-12-02T05:00:00Z".into(), false);
        assert_eq!(
            serde_json::to_value(&birth).unwrap(),
            serde_json::json!({"online": true, "version": "1.2", "boot_id": "b-1",
                "ts": "2026-12-02T05:00:00Z", "storage": "ok"})
        );
        assert_eq!(
            serde_json::to_value(Status::offline("b-1")).unwrap(),
            serde_json::json!({"online": false, "boot_id": "b-1"})
        );
    }
}
