//! The actor kit: typed message boxes, handles, and heartbeats the runtime reads.
//!
//! Each long-lived task (a modem's channel, the store writer, the uplink, the sender, the voice
//! manager, the console) owns its state and a [`Mailbox`] of typed messages; others hold its
//! [`Handle`]. Every task beats a [`Heartbeat`] while its loop turns: a task that is idle beats
//! from its [`Pulse`], a task stuck inside one message (a lock that never comes, a wedged
//! store) stops beating. The runtime's [`Liveness`] lists every heartbeat; the watchdog feeds
//! systemd only while every essential one is fresh. A modem or a broker being away is not a
//! wedge: the actors recover those themselves and keep beating.
//!
//! A [`TestBox`] lets a unit test play every peer of one actor: it holds the actor's handle
//! and collects what the actor sends out.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{mpsc, oneshot};

/// How often an idle actor beats.
pub const PULSE: Duration = Duration::from_secs(1);

/// One task's liveness: the time of its last beat.
#[derive(Clone)]
pub struct Heartbeat {
    name: Arc<str>,
    essential: bool,
    epoch: Instant,
    /// Milliseconds after `epoch` of the last beat, plus one (0: never beaten).
    last: Arc<AtomicU64>,
    /// Beats so far.
    count: Arc<AtomicU64>,
}

impl fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heartbeat")
            .field("name", &self.name)
            .field("essential", &self.essential)
            .field("age", &self.age())
            .finish()
    }
}

impl Heartbeat {
    /// A heartbeat not listed anywhere (tests, embedding).
    pub fn detached(name: &str) -> Self {
        Self::new(name, false, Instant::now())
    }

    /// An essential heartbeat made by its task, listed later with [`Liveness::track`].
    pub fn essential_task(name: &str) -> Self {
        Self::new(name, true, Instant::now())
    }

    fn new(name: &str, essential: bool, epoch: Instant) -> Self {
        let h = Self {
            name: Arc::from(name),
            essential,
            epoch,
            last: Arc::new(AtomicU64::new(0)),
            count: Arc::new(AtomicU64::new(0)),
        };
        h.beat();
        h
    }

    /// The task's name (`uplink`, `channel 2`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the agent is wedged when this task stops beating.
    pub fn essential(&self) -> bool {
        self.essential
    }

    /// The task is turning.
    pub fn beat(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last.store(ms.saturating_add(1), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Beats so far (the first when it was made).
    pub fn beats(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let last = self.last.load(Ordering::Relaxed).saturating_sub(1);
        self.epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }

    /// A pulse that beats this heartbeat every [`PULSE`] while the actor waits.
    pub fn pulse(&self) -> Pulse {
        Pulse::new(self.clone(), PULSE)
    }
}

/// Beats a heartbeat on a timer: one arm of an actor's `select!`. When the actor is stuck
/// elsewhere the arm is not polled, and the beat stops.
pub struct Pulse {
    beat: Heartbeat,
    timer: tokio::time::Interval,
}

impl Pulse {
    /// A pulse beating `beat` every `every`.
    pub fn new(beat: Heartbeat, every: Duration) -> Self {
        let mut timer = tokio::time::interval(every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self { beat, timer }
    }

    /// Waits for the next tick, then beats.
    pub async fn tick(&mut self) {
        self.timer.tick().await;
        self.beat.beat();
    }

    /// The heartbeat (to beat it after each message too).
    pub fn heartbeat(&self) -> &Heartbeat {
        &self.beat
    }
}

/// A task whose heartbeat is older than allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// The task.
    pub name: String,
    /// Since its last beat.
    pub age: Duration,
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} silent for {:.1} s",
            self.name,
            self.age.as_secs_f64()
        )
    }
}

/// Every task's heartbeat, for the runtime (and the watchdog).
#[derive(Clone, Default)]
pub struct Liveness {
    beats: Arc<Mutex<Vec<Heartbeat>>>,
}

impl fmt::Debug for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.snapshot()).finish()
    }
}

impl Liveness {
    /// A new, empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lists a new heartbeat; `essential` ones decide whether the agent is alive.
    pub fn register(&self, name: &str, essential: bool) -> Heartbeat {
        let epoch = Instant::now();
        let h = Heartbeat::new(name, essential, epoch);
        if let Ok(mut beats) = self.beats.lock() {
            beats.retain(|b| &*b.name != name);
            beats.push(h.clone());
        }
        h
    }

    /// Lists a heartbeat its task made itself (the store writer's).
    pub fn track(&self, h: Heartbeat) {
        if let Ok(mut beats) = self.beats.lock() {
            beats.retain(|b| b.name != h.name);
            beats.push(h);
        }
    }

    /// Every listed heartbeat.
    pub fn snapshot(&self) -> Vec<Heartbeat> {
        self.beats.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Essential tasks silent for longer than `max_age` (empty: the agent is turning).
    pub fn stale(&self, max_age: Duration) -> Vec<Stale> {
        self.snapshot()
            .into_iter()
            .filter(|h| h.essential && h.age() > max_age)
            .map(|h| Stale {
                name: h.name.to_string(),
                age: h.age(),
            })
            .collect()
    }
}

/// Why a message did not reach an actor or its answer did not come back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// The actor has stopped.
    #[error("{0} has stopped")]
    Stopped(String),
    /// No answer in time.
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
}

/// The sending side of an actor's message box.
pub struct Handle<M> {
    name: Arc<str>,
    tx: mpsc::Sender<M>,
}

impl<M> Clone for Handle<M> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            tx: self.tx.clone(),
        }
    }
}

impl<M> fmt::Debug for Handle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({})", self.name)
    }
}

impl<M> Handle<M> {
    /// Wraps an existing sender (for actors whose box predates the kit).
    pub fn from_sender(name: &str, tx: mpsc::Sender<M>) -> Self {
        Self {
            name: Arc::from(name),
            tx,
        }
    }

    /// The actor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw sender.
    pub fn sender(&self) -> &mpsc::Sender<M> {
        &self.tx
    }

    /// Sends a message, waiting for room in the box.
    pub async fn send(&self, msg: M) -> Result<(), AskError> {
        self.tx
            .send(msg)
            .await
            .map_err(|_| AskError::Stopped(self.name.to_string()))
    }

    /// Sends a message built around a reply slot and waits (bounded) for the answer.
    pub async fn ask<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<R>) -> M,
        timeout: Duration,
    ) -> Result<R, AskError> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply)).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(AskError::Stopped(self.name.to_string())),
            Err(_) => Err(AskError::Timeout(self.name.to_string(), timeout)),
        }
    }
}

/// An actor's message box: messages in, a heartbeat beaten on each one and while idle.
pub struct Mailbox<M> {
    rx: mpsc::Receiver<M>,
    pulse: Pulse,
}

impl<M> Mailbox<M> {
    /// The next message (None once every handle is gone). Beats while it waits.
    pub async fn recv(&mut self) -> Option<M> {
        loop {
            tokio::select! {
                m = self.rx.recv() => {
                    self.pulse.heartbeat().beat();
                    return m;
                }
                _ = self.pulse.tick() => {}
            }
        }
    }

    /// A message if one is waiting now.
    pub fn try_recv(&mut self) -> Option<M> {
        self.rx.try_recv().ok()
    }

    /// The heartbeat this box beats.
    pub fn heartbeat(&self) -> &Heartbeat {
        self.pulse.heartbeat()
    }

    /// The pulse, for an actor that selects on more than its box.
    pub fn pulse(&mut self) -> &mut Pulse {
        &mut self.pulse
    }

    /// The raw receiver, for an actor that selects on more than its box.
    pub fn receiver(&mut self) -> &mut mpsc::Receiver<M> {
        &mut self.rx
    }
}

/// A message box of `capacity` for an actor beating `beat`.
pub fn mailbox<M>(capacity: usize, beat: Heartbeat) -> (Handle<M>, Mailbox<M>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let name = Arc::from(beat.name());
    (
        Handle { name, tx },
        Mailbox {
            rx,
            pulse: beat.pulse(),
        },
    )
}

/// Plays every peer of one actor in a unit test: sends it messages through its handle and
/// collects what it sends out, with a timeout on every wait.
pub struct TestBox<In, Out> {
    /// The actor's handle (None for an actor that takes its work from the store).
    pub input: Option<Handle<In>>,
    output: mpsc::Receiver<Out>,
    /// How long [`TestBox::next`] waits.
    pub timeout: Duration,
}

impl<In, Out> TestBox<In, Out> {
    /// A test box around an actor's handle and the receiving end of its output.
    pub fn new(input: Handle<In>, output: mpsc::Receiver<Out>) -> Self {
        Self {
            input: Some(input),
            output,
            timeout: Duration::from_secs(5),
        }
    }

    /// A test box that only watches what an actor sends out.
    pub fn watching(output: mpsc::Receiver<Out>) -> Self {
        Self {
            input: None,
            output,
            timeout: Duration::from_secs(5),
        }
    }

    /// Sends the actor a message.
    pub async fn send(&self, msg: In) {
        let Some(input) = &self.input else {
            panic!("this test box only watches");
        };
        if input.send(msg).await.is_err() {
            panic!("the actor under test has stopped");
        }
    }

    /// The actor's next output; panics after the timeout (a test failure, not a hang).
    pub async fn next(&mut self) -> Out {
        match tokio::time::timeout(self.timeout, self.output.recv()).await {
            Ok(Some(o)) => o,
            Ok(None) => panic!("the actor under test stopped sending"),
            Err(_) => panic!("no output from the actor within {:?}", self.timeout),
        }
    }

    /// The actor's next output, waiting as long as it takes (None: it stopped sending).
    pub async fn next_opt(&mut self) -> Option<Out> {
        self.output.recv().await
    }

    /// Outputs until one matches `want` (the others are returned too, in order).
    pub async fn until(&mut self, mut want: impl FnMut(&Out) -> bool) -> (Out, Vec<Out>) {
        let mut skipped = Vec::new();
        loop {
            let o = self.next().await;
            if want(&o) {
                return (o, skipped);
            }
            skipped.push(o);
        }
    }

    /// Every output already waiting, without waiting for more.
    pub fn drain(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        while let Ok(o) = self.output.try_recv() {
            out.push(o);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_actor_beats_and_a_stuck_one_goes_stale() {
        let live = Liveness::new();
        let (handle, mut mb) = mailbox::<oneshot::Sender<()>>(4, live.register("worker", true));
        let _other = live.register("optional", false);
        let stuck = Arc::new(tokio::sync::Mutex::new(()));
        let held = stuck.clone().lock_owned().await;
        let task = tokio::spawn(async move {
            while let Some(done) = mb.recv().await {
                // Waits on a lock nobody releases: the wedge the watchdog exists for.
                let _g = stuck.lock().await;
                let _ = done.send(());
            }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(live.stale(Duration::from_secs(3)).is_empty(), "{live:?}");
        let (tx, _rx) = oneshot::channel();
        handle.send(tx).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let stale = live.stale(Duration::from_secs(3));
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert_eq!(stale[0].name, "worker");
        assert!(stale[0].to_string().contains("worker silent for"));
        drop(held);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn ask_answers_times_out_and_sees_a_stopped_actor() {
        let (handle, mut mb) = mailbox::<(u32, oneshot::Sender<u32>)>(4, Heartbeat::detached("x2"));
        let task = tokio::spawn(async move {
            while let Some((n, reply)) = mb.recv().await {
                if n > 0 {
                    let _ = reply.send(n * 2);
                }
                // n == 0: never answered (the reply is kept, not dropped).
                else {
                    std::mem::forget(reply);
                }
            }
        });
        let t = Duration::from_secs(1);
        assert_eq!(handle.ask(|r| (21, r), t).await, Ok(42));
        assert_eq!(
            handle.ask(|r| (0, r), t).await,
            Err(AskError::Timeout("x2".into(), t))
        );
        task.abort();
        let _ = task.await;
        assert_eq!(
            handle.ask(|r| (1, r), t).await,
            Err(AskError::Stopped("x2".into()))
        );
    }

    #[tokio::test]
    async fn a_test_box_drives_one_actor() {
        let (handle, mut mb) = mailbox::<u32>(4, Heartbeat::detached("echo"));
        let (out_tx, out_rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(n) = mb.recv().await {
                let _ = out_tx.send(n + 1).await;
            }
        });
        let mut tb = TestBox::new(handle, out_rx);
        tb.send(1).await;
        tb.send(5).await;
        let (six, before) = tb.until(|n| *n == 6).await;
        assert_eq!((six, before), (6, vec![2]));
        assert!(tb.drain().is_empty());
    }
}
