//! The durable store: outbox, jobs, multipart SMS parts and counters in one SQLite file.
//!
//! One database (`data_dir/gsmgw.db`) in WAL mode with `synchronous=FULL`. All writes go
//! through a single writer thread that owns the write connection and commits whatever is
//! queued as one transaction (group commit); a caller's future resolves only after its data
//! is committed. Reads run on their own connections in tokio's blocking pool. [`Store`] is a
//! cheap handle (an `Arc`); the writer stops once every handle is dropped, or on
//! [`Store::close`].
//!
//! Outbox bound: when an event would take the outbox past `max_rows` or `max_bytes`, the
//! oldest telemetry rows are dropped to make room (counted in
//! [`StoreStats::dropped_telemetry`]); when no telemetry is left to drop, the event is refused
//! with [`StoreError::Full`] and the caller keeps its source (e.g. leaves the SMS on the SIM).
//! `alarm` events may go [`ALARM_RESERVE_ROWS`] / [`ALARM_RESERVE_BYTES`] past the bound so
//! the full-store alarm itself is recorded.
//!
//! A future dropped after it queued its write may still see that write committed.

mod disk;
mod envelope;
mod error;
mod reader;
mod schema;
mod types;
pub(crate) mod vocab;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::proto::CampaignState;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

pub use disk::{LOW_WATER_BYTES, RECOVER_BYTES, RESERVE_BYTES, free_bytes};
pub use envelope::ENVELOPE_KEYS;
pub use error::{StoreAlarm, StoreError};
pub use schema::SCHEMA_VERSION;
pub use types::ConsoleAuth;
pub use types::{
    ALARM_RESERVE_BYTES, ALARM_RESERVE_ROWS, Campaign, DB_FILE_NAME, DEFAULT_JOB_RETENTION,
    DEFAULT_RECEIPT_RETENTION, EventClass, Job, NewCampaign, NewEvent, NewJob, OutboxRow, PartKey,
    PartOutcome, StorageHealth, StoreOptions, StoreStats, StoredPart, Submitted,
};
pub use writer::fnv1a;

use envelope::Prepared;
use writer::{JobRow, Op, Reply, Request, Writer, WriterLinks};

/// Idle reader connections kept open for reuse.
const MAX_IDLE_READERS: usize = 4;

/// Handle to the store; clone it freely.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Op>,
    path: PathBuf,
    gateway_json: String,
    readers: Mutex<Vec<Connection>>,
    closed: AtomicBool,
    exited: watch::Receiver<bool>,
    /// Rows the broker acknowledged whose delete has not committed: never handed out again.
    acked: Arc<Mutex<BTreeSet<u64>>>,
    health: watch::Receiver<StorageHealth>,
    /// The writer thread's liveness.
    beat: crate::actor::Heartbeat,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Inner {
    fn take_reader(&self) -> Result<Connection, StoreError> {
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => schema::open_reader(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store at `opts.path` and starts its writer.
    ///
    /// A damaged database is moved aside (kept, renamed `<file>.corrupt-<unix ms>` with its
    /// -wal/-shm), a fresh one is started, and a [`StoreAlarm`] says so. A database from a
    /// newer schema version is an error ([`StoreError::FutureSchema`]) and is left untouched.
    /// Blocking (it runs `PRAGMA quick_check`): from async code, call it in `spawn_blocking`.
    pub fn open(
        opts: StoreOptions,
        gateway_id: &str,
    ) -> Result<(Store, Vec<StoreAlarm>), StoreError> {
        let gateway_json = envelope::gateway_json(gateway_id)?;
        let (conn, alarms) = schema::open_writer(&opts.path)?;
        let batch_max = opts.batch_max.max(1);
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let (health_tx, health) = watch::channel(StorageHealth::default());
        let beat = crate::actor::Heartbeat::essential_task("store writer");
        let writer = Writer::new(
            conn,
            &opts,
            WriterLinks {
                acked: acked.clone(),
                health: health_tx,
                gateway_json: gateway_json.clone(),
                beat: beat.clone(),
            },
        )?;
        let (tx, rx) = mpsc::channel(batch_max.saturating_mul(4).max(256));
        let (exited_tx, exited) = watch::channel(false);
        std::thread::Builder::new()
            .name("gsmgw-store".into())
            .spawn(move || {
                writer.run(rx);
                let _ = exited_tx.send(true);
            })
            .map_err(|e| StoreError::io(&opts.path, e))?;
        // The writer's clock: a weak handle, so the writer still stops with the last handle.
        let weak = tx.downgrade();
        let tick = opts.tick.max(std::time::Duration::from_millis(10));
        std::thread::Builder::new()
            .name("gsmgw-store-tick".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(tick);
                    let Some(tx) = weak.upgrade() else { return };
                    let (reply, _) = oneshot::channel();
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Op {
                        req: Request::Tick,
                        reply,
                    }) {
                        return;
                    }
                }
            })
            .map_err(|e| StoreError::io(&opts.path, e))?;
        let store = Store {
            inner: Arc::new(Inner {
                tx,
                path: opts.path,
                gateway_json,
                readers: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
                exited,
                acked,
                health,
                beat,
            }),
        };
        Ok((store, alarms))
    }

    /// The writer's heartbeat: stale when a write is stuck (a wedged disk).
    pub fn heartbeat(&self) -> crate::actor::Heartbeat {
        self.inner.beat.clone()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Appends one event; resolves once it is committed.
    pub async fn append(&self, ev: NewEvent) -> Result<OutboxRow, StoreError> {
        let ev = self.prepare(ev)?;
        match self.call(Request::Append(ev)).await? {
            Reply::Row(row) => Ok(row),
            other => Err(unexpected(other)),
        }
    }

    /// Appends `ev` and records `receipt` in the same transaction, unless that receipt is
    /// recorded already (then None). A receipt names a message taken from a modem's storage
    /// (slot, storage, index, content) whose delete is not yet confirmed: read again after a
    /// crash, it is not published twice; once [`Store::forget_receipt`] ran, the same content
    /// at the same index is a new message.
    pub async fn append_once(
        &self,
        receipt: String,
        ev: NewEvent,
    ) -> Result<Option<OutboxRow>, StoreError> {
        let ev = self.prepare(ev)?;
        match self.call(Request::AppendOnce(receipt, ev)).await? {
            Reply::MaybeRow(row) => Ok(row),
            other => Err(unexpected(other)),
        }
    }

    /// Whether `receipt` is recorded: the message was committed and its delete from the
    /// modem not yet confirmed.
    pub async fn receipt_pending(&self, receipt: &str) -> Result<bool, StoreError> {
        let r = receipt.to_owned();
        self.read(move |c| reader::receipt_pending(c, &r)).await
    }

    /// Records `receipt` on its own (for messages whose commit wrote no event of their own).
    pub async fn add_receipt(&self, receipt: String) -> Result<(), StoreError> {
        match self.call(Request::AddReceipt(receipt)).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The modem confirmed the message's delete: its receipt goes.
    pub async fn forget_receipt(&self, receipt: String) -> Result<(), StoreError> {
        match self.call(Request::ForgetReceipt(receipt)).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Stores a campaign: its command job (for idempotency), the campaign row and one queued
    /// `sms-send` job per recipient, in one transaction. A recipient whose request_id exists
    /// already (a number listed twice) is stored once.
    ///
    /// The recipients' jobs are encoded one by one as the iterator yields them, so a big
    /// campaign never holds all its payloads as JSON trees at once.
    pub async fn submit_campaign(
        &self,
        command: NewJob,
        campaign: NewCampaign,
        recipients: impl IntoIterator<Item = NewJob>,
    ) -> Result<Submitted, StoreError> {
        let row = |j: NewJob| -> Result<JobRow, StoreError> {
            Ok(JobRow {
                payload: encode(&j.payload)?,
                outcome: j.outcome.as_ref().map(encode).transpose()?,
                request_id: j.request_id,
                verb: j.verb,
                slot: j.slot,
                state: j.state,
            })
        };
        let req = Request::SubmitCampaign {
            command: row(command)?,
            campaign_id: campaign.campaign_id,
            spec: encode(&campaign.spec)?,
            priority: campaign.priority,
            not_before_ms: campaign.not_before_ms,
            recipients: recipients.into_iter().map(row).collect::<Result<_, _>>()?,
        };
        match self.call(req).await? {
            Reply::Submitted(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Sets a campaign's state (running, paused, cancelled, done); false if unknown.
    pub async fn set_campaign_state(
        &self,
        campaign_id: &str,
        state: CampaignState,
    ) -> Result<bool, StoreError> {
        match self
            .call(Request::SetCampaignState(campaign_id.into(), state))
            .await?
        {
            Reply::Count(n) => Ok(n > 0),
            other => Err(unexpected(other)),
        }
    }

    /// One campaign.
    pub async fn campaign(&self, campaign_id: &str) -> Result<Option<Campaign>, StoreError> {
        let id = campaign_id.to_owned();
        self.read(move |c| reader::campaign(c, &id)).await
    }

    /// All campaigns, newest first.
    pub async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        self.read(reader::campaigns).await
    }

    /// A campaign's recipients counted by job state.
    pub async fn campaign_counts(
        &self,
        campaign_id: &str,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let id = campaign_id.to_owned();
        self.read(move |c| reader::campaign_counts(c, &id)).await
    }

    /// Queued jobs of a campaign (for cancel), at most `limit`.
    pub async fn campaign_queued(
        &self,
        campaign_id: &str,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let id = campaign_id.to_owned();
        self.read(move |c| reader::campaign_queued(c, &id, limit))
            .await
    }

    /// The next jobs to send: queued, due (`not_before` passed), not in a paused campaign;
    /// highest priority first, then oldest.
    pub async fn next_jobs(&self, now_ms: i64, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.read(move |c| reader::next_jobs(c, now_ms, limit))
            .await
    }

    /// Marks a queued job `sending` and adds one to each of `counters`, atomically (the
    /// per-SIM limits count every message that may have gone out).
    pub async fn mark_sending(
        &self,
        job_id: i64,
        outcome: Value,
        counters: Vec<String>,
    ) -> Result<(), StoreError> {
        let outcome = encode(&outcome)?;
        match self
            .call(Request::MarkSending {
                job_id,
                outcome,
                counters,
            })
            .await?
        {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Puts a job back in the queue, due again at `not_before_ms`.
    pub async fn requeue(
        &self,
        job_id: i64,
        outcome: Value,
        not_before_ms: i64,
    ) -> Result<(), StoreError> {
        let outcome = encode(&outcome)?;
        match self
            .call(Request::Requeue {
                job_id,
                outcome,
                not_before_ms,
            })
            .await?
        {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Several counters at once (0 for unknown ones).
    pub async fn counters(&self, names: Vec<String>) -> Result<Vec<i64>, StoreError> {
        self.read(move |c| names.iter().map(|n| reader::counter(c, n)).collect())
            .await
    }

    /// Appends several events in one transaction, all or nothing.
    pub async fn append_many(&self, evs: Vec<NewEvent>) -> Result<Vec<OutboxRow>, StoreError> {
        let evs = evs
            .into_iter()
            .map(|ev| self.prepare(ev))
            .collect::<Result<Vec<_>, _>>()?;
        match self.call(Request::AppendMany(evs)).await? {
            Reply::Rows(rows) => Ok(rows),
            other => Err(unexpected(other)),
        }
    }

    /// Outbox rows with seq > `after_seq`, ascending, at most `limit`; rows already
    /// acknowledged ([`Store::mark_acked`]) are left out even while their delete is pending.
    pub async fn pending(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let acked = self.inner.acked.clone();
        self.read(move |c| reader::pending(c, after_seq, limit, &acked))
            .await
    }

    /// Records that the broker acknowledged row `seq`: from now on it is never handed out
    /// by [`Store::pending`] again, also after a failed delete (retried by the store until it
    /// commits, across restarts).
    pub fn mark_acked(&self, seq: u64) {
        self.inner
            .acked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seq);
    }

    /// Deletes outbox rows (on PUBACK); unknown seqs are ignored. A delete that fails is
    /// retried by the store itself.
    pub async fn delete(&self, seqs: Vec<u64>) -> Result<(), StoreError> {
        {
            let mut acked = self.inner.acked.lock().unwrap_or_else(|p| p.into_inner());
            acked.extend(seqs.iter().copied());
        }
        match self.call(Request::Delete(seqs)).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Whether the store takes new data (full mode on a full disk); changes are signalled.
    pub fn health(&self) -> watch::Receiver<StorageHealth> {
        self.inner.health.clone()
    }

    /// Figures about the outbox, jobs and the writer.
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        match self.call(Request::Stats).await? {
            Reply::Stats(s) => Ok(*s),
            other => Err(unexpected(other)),
        }
    }

    /// Records a command as a job unless its request_id was seen before; refused with
    /// [`StoreError::Full`] while the outbox holds nothing droppable at its bound.
    pub async fn submit_job(&self, job: NewJob) -> Result<Submitted, StoreError> {
        let row = JobRow {
            payload: encode(&job.payload)?,
            outcome: job.outcome.as_ref().map(encode).transpose()?,
            request_id: job.request_id,
            verb: job.verb,
            slot: job.slot,
            state: job.state,
        };
        let event = job.event.map(|ev| self.prepare(ev)).transpose()?;
        match self.call(Request::SubmitJob(row, event)).await? {
            Reply::Submitted(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// Changes a job's state (and outcome, when given) and appends `event`, atomically.
    pub async fn update_job(
        &self,
        job_id: i64,
        state: crate::proto::JobState,
        outcome: Option<Value>,
        event: Option<NewEvent>,
    ) -> Result<Option<OutboxRow>, StoreError> {
        let req = Request::UpdateJob {
            job_id,
            state,
            outcome: outcome.as_ref().map(encode).transpose()?,
            event: event.map(|ev| self.prepare(ev)).transpose()?,
        };
        match self.call(req).await? {
            Reply::MaybeRow(row) => Ok(row),
            other => Err(unexpected(other)),
        }
    }

    /// One job by id.
    pub async fn job(&self, job_id: i64) -> Result<Option<Job>, StoreError> {
        self.read(move |c| reader::job(c, job_id)).await
    }

    /// The job recorded for `request_id`, if any.
    pub async fn job_by_request(&self, request_id: &str) -> Result<Option<Job>, StoreError> {
        let id = request_id.to_string();
        self.read(move |c| reader::job_by_request(c, &id)).await
    }

    /// Jobs in `state`, oldest first, at most `limit`.
    pub async fn jobs_in_state(
        &self,
        state: crate::proto::JobState,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError> {
        self.read(move |c| reader::jobs_in_state(c, state, limit))
            .await
    }

    /// Stores one part of a multipart SMS; `Complete` hands back all parts (still stored:
    /// finish with [`Store::complete_message`]).
    pub async fn put_part(&self, part: StoredPart) -> Result<PartOutcome, StoreError> {
        self.put_part_taken(part, None).await
    }

    /// [`Store::put_part`] for a part read from a modem's storage: `receipt` is recorded in
    /// the same transaction (see [`Store::append_once`]).
    pub async fn put_part_taken(
        &self,
        part: StoredPart,
        receipt: Option<String>,
    ) -> Result<PartOutcome, StoreError> {
        let json = encode(&part.part)?;
        match self.call(Request::PutPart(part, json, receipt)).await? {
            Reply::Part(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    /// Appends the assembled message's event and deletes its parts, in one transaction.
    pub async fn complete_message(
        &self,
        key: PartKey,
        event: NewEvent,
    ) -> Result<OutboxRow, StoreError> {
        let ev = self.prepare(event)?;
        match self.call(Request::CompleteMessage(key, ev)).await? {
            Reply::Row(row) => Ok(row),
            other => Err(unexpected(other)),
        }
    }

    /// Incomplete messages whose newest part arrived before `older_than_ms` (unix ms).
    pub async fn stale_parts(
        &self,
        older_than_ms: i64,
    ) -> Result<Vec<(PartKey, Vec<StoredPart>)>, StoreError> {
        self.read(move |c| reader::stale_parts(c, older_than_ms))
            .await
    }

    /// Messages whose parts are all stored but not yet completed (a crash in between).
    pub async fn complete_parts(&self) -> Result<Vec<(PartKey, Vec<StoredPart>)>, StoreError> {
        self.read(reader::complete_parts).await
    }

    /// Adds `delta` to a persistent counter; returns its new value.
    pub async fn counter_add(&self, name: &str, delta: i64) -> Result<i64, StoreError> {
        match self
            .call(Request::CounterAdd(name.to_owned(), delta))
            .await?
        {
            Reply::Count(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    /// A persistent counter's value (0 if never set).
    pub async fn counter_get(&self, name: &str) -> Result<i64, StoreError> {
        let name = name.to_owned();
        self.read(move |c| reader::counter(c, &name)).await
    }

    /// The console's failed-login guard as last stored (all zero when never stored).
    pub async fn console_auth(&self) -> Result<ConsoleAuth, StoreError> {
        self.read(reader::console_auth).await
    }

    /// Stores the console's failed-login guard (also while the disk is full: it is one row).
    pub async fn set_console_auth(&self, state: ConsoleAuth) -> Result<(), StoreError> {
        match self.call(Request::SetConsoleAuth(state)).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Commits what is queued, stops the writer and closes the database; later calls on any
    /// handle fail with [`StoreError::Closed`].
    pub async fn close(&self) -> Result<(), StoreError> {
        let r = self.call(Request::Close).await;
        self.inner.closed.store(true, Ordering::Release);
        self.inner
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.writer_exited().await;
        match r {
            Ok(_) | Err(StoreError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Resolves once the writer thread has stopped (after `close`, or after the last handle
    /// is dropped); holds no handle itself.
    pub fn writer_exited(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.exited.clone();
        async move {
            let _ = rx.wait_for(|done| *done).await;
        }
    }

    fn prepare(&self, ev: NewEvent) -> Result<Prepared, StoreError> {
        Prepared::new(ev, &self.inner.gateway_json)
    }

    async fn call(&self, req: Request) -> Result<Reply, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Op { req, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let conn = inner.take_reader()?;
            let r = f(&conn);
            inner.give_back(conn);
            r
        })
        .await
        .map_err(|e| StoreError::Internal(format!("reader task: {e}")))?
    }

    /// Test hook: runs `f` on the write connection inside the writer's transaction.
    #[cfg(test)]
    async fn exec_on_writer(
        &self,
        f: impl Fn(&Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<(), StoreError> {
        match self.call(Request::Exec(Box::new(f))).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

fn encode(v: &Value) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Encode(e.to_string()))
}

fn unexpected(reply: Reply) -> StoreError {
    StoreError::Internal(format!("unexpected writer reply {reply:?}"))
}
