use super::*;
use gsmgw_drivers::at::ErrorCode;
use serde_json::{Value, json};

fn cms(code: u16) -> ModemError {
    ModemError::At {
        command: "AT+CMGS=20".into(),
        source: AtError::Cms(ErrorCode {
            code: Some(code),
            text: code.to_string(),
        }),
    }
}

mod test_box {
    //! The sender alone: a real store, the test plays each modem's channel.

    use super::*;
    use crate::actor::TestBox;
    use crate::commands::{Context, Env, Origin, Registry};

    struct Rig {
        events: Events,
        registry: Registry,
        slots: Vec<(watch::Sender<ModemSnapshot>, TestBox<(), ChannelRequest>)>,
        _dir: tempfile::TempDir,
        _stop: watch::Sender<bool>,
    }

    fn snapshot(slot: u16, state: ChannelState) -> ModemSnapshot {
        ModemSnapshot {
            state,
            identity: gsmgw_drivers::modem::Identity {
                imsi: format!("25501000000000{slot}"),
                ..Default::default()
            },
            ..ModemSnapshot::new(slot, "/dev/null")
        }
    }

    fn rig(states: &[ChannelState]) -> Rig {
        let (dir, events) = crate::fixtures::events();
        let mut handles = Vec::new();
        let mut slots = Vec::new();
        for (i, st) in states.iter().enumerate() {
            let slot = u16::try_from(i + 1).unwrap();
            let (snap_tx, snap_rx) = watch::channel(snapshot(slot, *st));
            let (req_tx, req_rx) = mpsc::channel(16);
            handles.push(SlotHandle {
                slot,
                snapshot: snap_rx,
                requests: req_tx,
            });
            slots.push((snap_tx, TestBox::watching(req_rx)));
        }
        let policy = SendPolicy {
            per_minute: 0,
            per_hour: 0,
            per_day: 0,
            quiet_hours: None,
            on_unknown: "report".into(),
            cooldown: Duration::from_secs(60),
            routes: Vec::new(),
            groups: Default::default(),
        };
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(run(events.clone(), handles, policy, stop_rx));
        let registry = Registry::new(Env {
            events: events.clone(),
            version: "test".into(),
            data_dir: dir.path().to_path_buf(),
            voice: None,
            channels: Default::default(),
            ctx: Context::with_slots(&(1..=states.len() as u16).collect::<Vec<_>>()),
        });
        Rig {
            events,
            registry,
            slots,
            _dir: dir,
            _stop: stop,
        }
    }

    async fn send(r: &Rig, rid: &str) {
        let cmd = json!({"request_id": rid, "to": "+380501234567", "text": "hello"});
        let out = r
            .registry
            .submit("sms-send", cmd.to_string().as_bytes(), Origin::Console)
            .await;
        assert!(out.reply.ok, "{:?}", out.reply);
    }

    async fn state_of(events: &Events, rid: &str) -> String {
        let t = tokio::time::Instant::now();
        loop {
            let job = events.store().job_by_request(rid).await.unwrap().unwrap();
            if !matches!(job.state.as_str(), "queued" | "sending")
                || t.elapsed() > Duration::from_secs(5)
            {
                return job.state.to_string();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn statuses(events: &Events) -> Vec<Value> {
        events
            .store()
            .pending(0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.event_type == "sms-status")
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_queued_sms_goes_to_the_ready_sim_and_its_outcome_is_committed() {
        let mut r = rig(&[ChannelState::Initializing, ChannelState::Ready]);
        send(&r, "s-1").await;
        let ChannelRequest::SendSms { parts, reply } = r.slots[1].1.next().await else {
            panic!("not a send");
        };
        assert_eq!(parts.len(), 1);
        // Marked `sending` before the modem is asked (a crash now is an `unknown`).
        let job = r
            .events
            .store()
            .job_by_request("s-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.state, "sending");
        reply.send(Ok(vec![7])).unwrap();
        assert_eq!(state_of(&r.events, "s-1").await, "sent");
        let st = statuses(&r.events).await;
        assert_eq!(st.len(), 1, "{st:?}");
        assert_eq!(
            (st[0]["state"].as_str(), st[0]["slot"].as_u64()),
            (Some("sent"), Some(2))
        );
        assert!(
            r.slots[0].1.drain().is_empty(),
            "the SIM that is not ready got nothing"
        );
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_and_a_permanent_one_is_final() {
        let mut r = rig(&[ChannelState::Ready]);
        send(&r, "s-2").await;
        let ChannelRequest::SendSms { reply, .. } = r.slots[0].1.next().await else {
            panic!("not a send");
        };
        reply
            .send(Err(SendFailure {
                sent: Vec::new(),
                error: cms(38),
            }))
            .unwrap();
        // Network out of order: tried again after a pause …
        let ChannelRequest::SendSms { reply, .. } = r.slots[0].1.next().await else {
            panic!("not a retry");
        };
        // … and refused for good this time (unassigned number).
        reply
            .send(Err(SendFailure {
                sent: Vec::new(),
                error: cms(1),
            }))
            .unwrap();
        assert_eq!(state_of(&r.events, "s-2").await, "failed");
        let st = statuses(&r.events).await;
        assert_eq!(st.last().unwrap()["state"], "failed", "{st:?}");
        assert!(r.slots[0].1.drain().is_empty(), "no third attempt");
    }

    #[tokio::test]
    async fn parts_already_out_are_never_sent_again() {
        let mut r = rig(&[ChannelState::Ready]);
        send(&r, "s-3").await;
        let ChannelRequest::SendSms { reply, .. } = r.slots[0].1.next().await else {
            panic!("not a send");
        };
        reply
            .send(Err(SendFailure {
                sent: vec![5],
                error: cms(38),
            }))
            .unwrap();
        assert_eq!(state_of(&r.events, "s-3").await, "failed");
        let st = statuses(&r.events).await;
        assert_eq!(st[0]["mr"], json!([5]), "{st:?}");
    }
}

#[test]
fn cms_codes_are_classed() {
    for c in [38, 42, 331, 332, 500] {
        assert_eq!(classify(&cms(c)).0, FailureKind::Transient, "{c}");
    }
    for c in [1, 8, 10, 21, 29, 96, 304] {
        assert_eq!(classify(&cms(c)).0, FailureKind::Permanent, "{c}");
    }
}
