//! One call alone (the test box plays the modem's channel and the manager; a real store).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use gsmgw_drivers::at::Urc;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::spawn_gsm_in;
use crate::actor::TestBox;
use crate::commands::{Context, Env};
use crate::config::{VoiceConfig, VoiceRoute};
use crate::events::Events;
use crate::sms_out::{ChannelRequest, VoiceOp};
use crate::state::{ChannelState, ModemSnapshot};
use crate::voice::{CallInput, Registry, RtpPorts, Shared, VoiceSlot};

struct Rig {
    sh: Shared,
    events: Events,
    modem: TestBox<(), ChannelRequest>,
    manager: TestBox<(), Registry>,
    _snap: watch::Sender<ModemSnapshot>,
    _dir: tempfile::TempDir,
}

fn rig(missed_call_sms: &str) -> Rig {
    let (dir, events) = crate::fixtures::events();
    let (snap, snap_rx) = watch::channel(ModemSnapshot {
        state: ChannelState::Ready,
        identity: gsmgw_drivers::modem::Identity {
            imsi: "255010000000001".into(),
            ..Default::default()
        },
        ..ModemSnapshot::new(1, "/dev/null")
    });
    let (req_tx, req_rx) = mpsc::channel(16);
    let (reg_tx, reg_rx) = mpsc::channel(16);
    let voice = VoiceConfig {
        missed_call_sms: missed_call_sms.into(),
        ..VoiceConfig::default()
    };
    let commands = crate::commands::Registry::new(Env {
        events: events.clone(),
        version: "test".into(),
        data_dir: dir.path().to_path_buf(),
        voice: None,
        channels: Default::default(),
        ctx: Context::with_slots(&[1]),
    });
    let sh = Shared {
        voice,
        ua: None,
        media_ip: IpAddr::from([127, 0, 0, 1]),
        codecs: Vec::new(),
        rtp: Arc::new(Mutex::new(RtpPorts::new(40_000, 40_010))),
        events: events.clone(),
        commands,
        data_dir: dir.path().to_path_buf(),
        slots: vec![VoiceSlot {
            slot: 1,
            snapshot: snap_rx,
            requests: req_tx,
            voice_port: None,
            group: None,
        }],
        routes: Vec::new(),
        registry: reg_tx,
        busy: Arc::new(Mutex::new(HashMap::new())),
        live: Default::default(),
    };
    Rig {
        sh,
        events,
        modem: TestBox::watching(req_rx),
        manager: TestBox::watching(reg_rx),
        _snap: snap,
        _dir: dir,
    }
}

fn clip(n: &str) -> Urc {
    Urc::Clip { number: n.into() }
}

/// The caller hangs up (`NO CARRIER`) and the call ends.
async fn caller_gives_up(r: &mut Rig, input: &mpsc::Sender<CallInput>) {
    input
        .send(CallInput::Gsm(Urc::CallEnded {
            reason: "NO CARRIER".into(),
        }))
        .await
        .unwrap();
    ended(r).await;
}

/// Waits for the manager to hear the call has ended.
async fn ended(r: &mut Rig) {
    r.manager
        .until(|m| matches!(m, Registry::Done { .. }))
        .await;
}

async fn outbox(events: &Events, event_type: &str) -> Vec<Value> {
    events
        .store()
        .pending(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event_type == event_type)
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect()
}

#[tokio::test]
async fn a_missed_call_is_recorded_with_one_sms_back_in_the_same_commit() {
    let mut r = rig("Sorry we missed your call; we call {from} back");
    let (id, input) = spawn_gsm_in(r.sh.clone(), 1, None, clip("+380501234567"));
    // No rule: it rings until the caller gives up.
    caller_gives_up(&mut r, &input).await;
    let calls = outbox(&r.events, "call").await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["call_id"], id.as_str());
    assert_eq!(calls[0]["from"], "+380501234567");
    assert_eq!(calls[0]["direction"], "gsm-in");
    assert_eq!(calls[0]["cause"], "cancelled");
    let job = r
        .events
        .store()
        .job_by_request(&format!("missed-call-{id}"))
        .await
        .unwrap()
        .expect("the missed-call SMS is a job");
    assert_eq!(job.state, "queued");
    assert_eq!(job.payload["reason"], "missed-call");
    assert_eq!(job.payload["call_id"], id.as_str());
    assert_eq!(
        job.payload["text"],
        "Sorry we missed your call; we call +380501234567 back"
    );
    assert!(r.modem.drain().is_empty(), "nothing asked of the modem");

    // The same caller again within the period: recorded, no second SMS.
    let (id2, input) = spawn_gsm_in(r.sh.clone(), 1, None, clip("+380501234567"));
    input
        .send(CallInput::Gsm(Urc::CallCleared { cause: Some(16) }))
        .await
        .unwrap();
    ended(&mut r).await;
    assert_eq!(outbox(&r.events, "call").await.len(), 2);
    let again = r
        .events
        .store()
        .job_by_request(&format!("missed-call-{id2}"))
        .await;
    assert_eq!(again.unwrap(), None);
}

#[tokio::test]
async fn a_caller_in_national_format_still_gets_the_sms() {
    let mut r = rig("We missed you");
    let (id, input) = spawn_gsm_in(r.sh.clone(), 1, None, clip("0501234567"));
    caller_gives_up(&mut r, &input).await;
    let job = r
        .events
        .store()
        .job_by_request(&format!("missed-call-{id}"))
        .await
        .unwrap()
        .expect("sent to the number as the network gave it");
    assert_eq!(job.payload["to"], "0501234567");
}

#[tokio::test]
async fn a_reject_rule_hangs_up_the_modem_and_records_the_cause() {
    let mut r = rig("");
    let route = VoiceRoute {
        slot: Some(1),
        action: "reject".into(),
        target: None,
        record: false,
    };
    let (_id, _input) = spawn_gsm_in(r.sh.clone(), 1, Some(route), clip("+380501234567"));
    let ChannelRequest::Voice { op, reply } = r.modem.next().await else {
        panic!("not a voice request");
    };
    assert_eq!(op, VoiceOp::HangUp);
    reply.send(Ok(Vec::new())).unwrap();
    ended(&mut r).await;
    let calls = outbox(&r.events, "call").await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["cause"], "rejected");
    // No missed-call text configured: no job.
    assert_eq!(
        r.events.store().stats().await.unwrap().jobs_by_state.len(),
        0
    );
}
