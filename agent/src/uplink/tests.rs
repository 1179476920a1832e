use super::*;

#[test]
fn backoff_doubles_to_its_cap_with_jitter_and_resets() {
    let mut b = Backoff::new(Duration::from_secs(10));
    let waits: Vec<Duration> = (0..12).map(|_| b.wait()).collect();
    assert!(waits[0] <= Duration::from_millis(500), "{waits:?}");
    assert!(
        waits.iter().all(|w| *w <= Duration::from_secs(10)),
        "{waits:?}"
    );
    assert!(
        waits[8..].iter().all(|w| *w >= Duration::from_secs(5)),
        "{waits:?}"
    );
    b.reset();
    assert!(b.wait() <= Duration::from_millis(500));
}

// rumqttc's own event type, as its event loop returns it.
#[allow(clippy::result_large_err)]
mod test_box {
    //! The uplink alone: a test transport plays the broker, a real store sits in a temp dir.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rumqttc::{ConnAck, ConnectReturnCode, ConnectionError, PubAck};
    use serde_json::Value;

    use super::super::*;
    use crate::actor::{Handle, TestBox};

    /// What the uplink asked of the client.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Req {
        Publish { topic: String, payload: Vec<u8> },
        Ack(u16),
        Subscribe(String),
        Disconnect,
    }

    impl Req {
        fn json(&self) -> Value {
            match self {
                Req::Publish { payload, .. } => serde_json::from_slice(payload).unwrap(),
                other => panic!("not a publish: {other:?}"),
            }
        }
        fn topic(&self) -> &str {
            match self {
                Req::Publish { topic, .. } => topic,
                _ => "",
            }
        }
    }

    /// The client side: events from the test, requests to the test; `room` requests fit in
    /// its queue until the test makes more.
    struct TestTransport {
        events: mpsc::Receiver<Result<Event, ConnectionError>>,
        out: mpsc::Sender<Req>,
        room: Arc<AtomicUsize>,
    }

    impl TestTransport {
        fn take(&self, r: Req) -> bool {
            let taken = self
                .room
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if taken {
                self.out.try_send(r).unwrap();
            }
            taken
        }
    }

    impl Transport for TestTransport {
        async fn poll(&mut self) -> Result<Event, ConnectionError> {
            match self.events.recv().await {
                Some(e) => e,
                None => std::future::pending().await,
            }
        }
        fn publish(&self, topic: String, _retain: bool, payload: Vec<u8>) -> bool {
            self.take(Req::Publish { topic, payload })
        }
        fn ack(&self, p: &Publish) -> bool {
            self.take(Req::Ack(p.pkid))
        }
        fn subscribe(&self, filter: String) -> bool {
            self.take(Req::Subscribe(filter))
        }
        fn disconnect(&self) {
            let _ = self.out.try_send(Req::Disconnect);
        }
        fn clear_pending(&mut self) {}
    }

    struct Rig {
        tb: TestBox<Result<Event, ConnectionError>, Req>,
        room: Arc<AtomicUsize>,
        events: Events,
        _dir: tempfile::TempDir,
        _stop: watch::Sender<bool>,
    }

    fn options(voice: Option<mpsc::Sender<crate::voice::VoiceCommand>>) -> UplinkOptions {
        UplinkOptions {
            gateway_id: "gw-test".into(),
            host: "127.0.0.1".into(),
            port: 1,
            username: None,
            password: None,
            keep_alive: Duration::from_secs(30),
            version: "test".into(),
            boot_id: "boot".into(),
            max_backoff: Duration::from_secs(1),
            commands: commands::Context::with_slots(&[1]),
            max_command_bytes: 1024 * 1024,
            tls: None,
            voice,
            data_dir: std::env::temp_dir(),
            channels: Default::default(),
        }
    }

    fn rig(voice: Option<mpsc::Sender<crate::voice::VoiceCommand>>) -> Rig {
        rig_on(voice, Vec::new())
    }

    /// The uplink with these modem slots' pictures.
    fn rig_on(
        voice: Option<mpsc::Sender<crate::voice::VoiceCommand>>,
        snapshots: Vec<watch::Receiver<ModemSnapshot>>,
    ) -> Rig {
        let (dir, events) = crate::fixtures::events();
        let (ev_tx, ev_rx) = mpsc::channel(1024);
        let (out_tx, out_rx) = mpsc::channel(100_000);
        let room = Arc::new(AtomicUsize::new(usize::MAX / 2));
        let transport = TestTransport {
            events: ev_rx,
            out: out_tx,
            room: room.clone(),
        };
        let (stop, stop_rx) = watch::channel(false);
        spawn_on(
            transport,
            options(voice),
            snapshots,
            events.clone(),
            stop_rx,
            Heartbeat::detached("uplink"),
        );
        Rig {
            tb: TestBox::new(Handle::from_sender("broker", ev_tx), out_rx),
            room,
            events,
            _dir: dir,
            _stop: stop,
        }
    }

    /// Like `rig`, with one modem slot whose picture the test changes.
    fn rig_with_slot() -> (Rig, watch::Sender<ModemSnapshot>) {
        let (snap_tx, snap_rx) = watch::channel(ModemSnapshot::new(1, "/dev/ttyUSB2"));
        (rig_on(None, vec![snap_rx]), snap_tx)
    }

    #[tokio::test]
    async fn after_a_reconnect_only_each_slots_latest_picture_is_published() {
        use crate::state::ChannelState;
        let (mut r, snaps) = rig_with_slot();
        // Offline, the slot goes through several states (each one seen by the forwarder).
        for state in [
            ChannelState::Initializing,
            ChannelState::Degraded,
            ChannelState::Initializing,
            ChannelState::Ready,
        ] {
            snaps.send_modify(|s| s.state = state);
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
        }
        connect(&mut r).await;
        let state = r.tb.next().await;
        assert_eq!(state.topic(), "gsmgw/gw-test/modem/1/state");
        assert_eq!(state.json()["state"], "ready", "{:?}", state.json());
        // And nothing else: no replay of the states it went through.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        let more: Vec<String> = r.tb.drain().iter().map(|q| q.topic().to_string()).collect();
        assert!(
            !more.iter().any(|t| t.ends_with("/modem/1/state")),
            "replayed: {more:?}"
        );
    }

    fn connack() -> Result<Event, ConnectionError> {
        Ok(Event::Incoming(Packet::ConnAck(ConnAck {
            session_present: false,
            code: ConnectReturnCode::Success,
        })))
    }

    fn sent(pkid: u16) -> Result<Event, ConnectionError> {
        Ok(Event::Outgoing(Outgoing::Publish(pkid)))
    }

    fn puback(pkid: u16) -> Result<Event, ConnectionError> {
        Ok(Event::Incoming(Packet::PubAck(PubAck { pkid })))
    }

    fn command(verb: &str, pkid: u16, payload: Value) -> Result<Event, ConnectionError> {
        let mut p = Publish::new(
            format!("gsmgw/gw-test/cmd/{verb}"),
            QoS::AtLeastOnce,
            payload.to_string(),
        );
        p.pkid = pkid;
        Ok(Event::Incoming(Packet::Publish(p)))
    }

    async fn rows(events: &Events) -> u64 {
        events.store().stats().await.unwrap().rows
    }

    /// Waits (bounded) until the store holds `n` outbox rows.
    async fn until_rows(events: &Events, n: u64) {
        let t = tokio::time::Instant::now();
        while rows(events).await != n {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "outbox has {} rows, want {n}",
                rows(events).await
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Connects and reads the subscription and the birth.
    async fn connect(r: &mut Rig) {
        r.tb.send(connack()).await;
        assert_eq!(
            r.tb.next().await,
            Req::Subscribe("gsmgw/gw-test/cmd/#".into())
        );
        let birth = r.tb.next().await;
        assert_eq!(birth.topic(), "gsmgw/gw-test/status");
        assert_eq!(birth.json()["online"], true);
    }

    #[tokio::test]
    async fn rows_are_deleted_only_when_acknowledged_and_resent_after_a_reconnect() {
        let mut r = rig(None);
        for n in 0..3 {
            r.events
                .emit(
                    crate::proto::EventType::Alarm,
                    crate::store::EventClass::Critical,
                    serde_json::json!({"n": n}),
                )
                .await
                .unwrap();
        }
        connect(&mut r).await;
        let mut got = Vec::new();
        for _ in 0..3 {
            let p = r.tb.next().await;
            assert_eq!(p.topic(), "gsmgw/gw-test/event/alarm");
            got.push(p.json()["n"].as_i64().unwrap());
        }
        assert_eq!(got, [0, 1, 2]);
        // Packet ids: 1 the birth, 2-4 the rows.
        for pkid in 1..=4 {
            r.tb.send(sent(pkid)).await;
        }
        r.tb.send(puback(3)).await;
        until_rows(&r.events, 2).await;
        // The connection drops before the other acks: both rows come again, oldest first.
        r.tb.send(Err(ConnectionError::Io(std::io::Error::other("gone"))))
            .await;
        r.tb.send(connack()).await;
        let (_, before) = r.tb.until(|q| q.topic().ends_with("/event/alarm")).await;
        assert_eq!(before.len(), 2, "subscribe and birth again: {before:?}");
        let second = r.tb.next().await;
        assert_eq!(second.json()["n"], 2);
        assert!(r.tb.drain().is_empty());
        assert_eq!(rows(&r.events).await, 2);
    }

    #[tokio::test]
    async fn a_command_is_committed_before_its_ack_and_then_answered() {
        let mut r = rig(None);
        connect(&mut r).await;
        let cmd = serde_json::json!({"request_id": "r-1", "to": "+380501234567", "text": "hi"});
        r.tb.send(command("sms-send", 7, cmd)).await;
        assert_eq!(r.tb.next().await, Req::Ack(7));
        let job = r.events.store().job_by_request("r-1").await.unwrap();
        assert_eq!(job.map(|j| j.state), Some(crate::proto::JobState::Queued));
        let reply = r.tb.next().await;
        assert_eq!(reply.topic(), "gsmgw/gw-test/reply/r-1");
        let body = reply.json();
        assert_eq!(body["ok"], true, "{body}");
        assert_eq!(body["result"]["state"], "queued");
        // Refused commands are acknowledged too, and answered with the reason.
        r.tb.send(command(
            "sms-send",
            8,
            serde_json::json!({"request_id": "r-2", "to": "123"}),
        ))
        .await;
        assert_eq!(r.tb.next().await, Req::Ack(8));
        let body = r.tb.next().await.json();
        assert_eq!(body["error"]["code"], "bad-number", "{body}");
        assert_eq!(r.events.store().job_by_request("r-2").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_event_loop_keeps_turning_while_a_command_runs() {
        let (voice_tx, mut voice_rx) = mpsc::channel::<crate::voice::VoiceCommand>(4);
        let mut r = rig(Some(voice_tx));
        connect(&mut r).await;
        r.events
            .emit(
                crate::proto::EventType::Alarm,
                crate::store::EventClass::Critical,
                serde_json::json!({}),
            )
            .await
            .unwrap();
        let row = r.tb.next().await;
        assert!(row.topic().ends_with("/event/alarm"));
        r.tb.send(sent(1)).await;
        r.tb.send(sent(2)).await;
        let dial = serde_json::json!({"request_id": "d-1", "to": "+380501234567", "bridge_to": "sip:101@pbx"});
        r.tb.send(command("dial", 9, dial)).await;
        // The voice manager has the dial and has not answered yet …
        let vc = tokio::time::timeout(Duration::from_secs(5), voice_rx.recv())
            .await
            .unwrap()
            .unwrap();
        // … and meanwhile a PUBACK still deletes its row.
        r.tb.send(puback(2)).await;
        until_rows(&r.events, 0).await;
        assert!(
            r.tb.drain().is_empty(),
            "nothing acked before the dial is done"
        );
        vc.reply
            .send(Ok(
                serde_json::json!({"call_id": "c-1", "state": "dialing"}),
            ))
            .unwrap();
        assert_eq!(r.tb.next().await, Req::Ack(9));
        let body = r.tb.next().await.json();
        assert_eq!(body["result"]["call_id"], "c-1", "{body}");
    }

    #[tokio::test]
    async fn a_full_client_queue_delays_acks_and_replies_but_loses_none() {
        let mut r = rig(None);
        connect(&mut r).await;
        // The client's queue takes two more requests, then is full until the test drains it.
        r.room.store(2, Ordering::SeqCst);
        for i in 0..20u16 {
            let cmd = serde_json::json!({"request_id": format!("p-{i}")});
            r.tb.send(command("ping", 100 + i, cmd)).await;
        }
        let mut acks = Vec::new();
        let mut replies = Vec::new();
        while acks.len() < 20 || replies.len() < 20 {
            // Each turn: whatever fitted, then room for three more and a tick of the loop.
            while let Ok(Some(q)) =
                tokio::time::timeout(Duration::from_millis(200), r.tb.next_opt()).await
            {
                match q {
                    Req::Ack(p) => acks.push(p),
                    Req::Publish { .. } => replies.push(q.json()["request_id"].clone()),
                    other => panic!("{other:?}"),
                }
            }
            r.room.store(3, Ordering::SeqCst);
            r.tb.send(Ok(Event::Incoming(Packet::PingResp))).await;
        }
        assert_eq!(acks, (100..120).collect::<Vec<u16>>(), "in arrival order");
        let want: Vec<Value> = (0..20).map(|i| Value::from(format!("p-{i}"))).collect();
        assert_eq!(replies, want);
    }
}
