//! The single writer: a std thread that owns the write connection and commits queued
//! operations in groups.
//!
//! Group commit: take the first queued operation, drain whatever else is queued (up to
//! `batch_max`), run them all in one transaction, COMMIT, and only then reply to each caller,
//! so a caller's future resolves only once its data is durable. An operation refused for a
//! reason of its own (outbox full, unknown job …) is undone alone, through a savepoint or by
//! checking before it writes; a SQLite failure (disk full …) rolls the whole group back, which
//! is then retried one operation per transaction so each caller gets its own answer.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use super::disk::{self, AckLog, Reserve};
use super::envelope::{Prepared, unix_ms};
use super::error::StoreError;
use super::reader::{load_parts, parse_json_opt};
use super::types::{
    ALARM_RESERVE_BYTES, ALARM_RESERVE_ROWS, EventClass, NewEvent, OutboxRow, PartKey, PartOutcome,
    StorageHealth, StoreOptions, StoreStats, StoredPart, Submitted,
};

/// Job states after which nothing more happens to a job (retention may delete it).
pub(crate) const FINISHED_JOB_STATES: &str =
    "'done','delivered','failed','cancelled','unknown','expired','sent'";

/// Alarms taken while the disk is full, per episode: the reserve is for recovery.
const ALARMS_WHILE_FULL: u32 = 16;

/// Jobs that belong to no campaign still running (a running campaign counts its recipients).
const LIVE: &str = "(campaign_id IS NULL OR campaign_id NOT IN
     (SELECT campaign_id FROM campaigns WHERE state IN ('running','paused')))";

/// Locks a mutex, also one a panicking thread left poisoned (the data is a plain set).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Free pages worth reclaiming with an incremental vacuum.
const VACUUM_MIN_FREE_PAGES: i64 = 32;

/// Counter names the store keeps for itself.
pub(crate) const RESERVED_COUNTERS: [&str; 2] = ["next_seq", "dropped_telemetry"];

/// A job as the writer records it (JSON already encoded by the caller).
#[derive(Debug)]
pub(crate) struct JobRow {
    pub request_id: String,
    pub verb: String,
    pub payload: String,
    pub slot: Option<u16>,
    pub state: String,
    pub outcome: Option<String>,
}

/// Test hook body: SQL run on the write connection.
#[cfg(test)]
pub(crate) type ExecHook = Box<dyn Fn(&Connection) -> rusqlite::Result<()> + Send>;

/// What the writer is asked to do.
pub(crate) enum Request {
    Append(Prepared),
    AppendMany(Vec<Prepared>),
    Delete(Vec<u64>),
    SubmitJob(JobRow, Option<Prepared>),
    UpdateJob {
        job_id: i64,
        state: String,
        outcome: Option<String>,
        event: Option<Prepared>,
    },
    PutPart(StoredPart, String, Option<String>),
    CompleteMessage(PartKey, Prepared),
    AppendOnce(String, Prepared),
    /// Records a receipt: a message taken from a modem's storage, delete not yet confirmed.
    AddReceipt(String),
    /// The modem confirmed the delete: the receipt goes.
    ForgetReceipt(String),
    SubmitCampaign {
        command: JobRow,
        campaign_id: String,
        spec: String,
        priority: i64,
        not_before_ms: i64,
        recipients: Vec<JobRow>,
    },
    SetCampaignState(String, String),
    MarkSending {
        job_id: i64,
        outcome: String,
        counters: Vec<String>,
    },
    Requeue {
        job_id: i64,
        outcome: String,
        not_before_ms: i64,
    },
    CounterAdd(String, i64),
    Stats,
    /// Time passed: look at the disk, retry failed deletes, housekeeping when due.
    Tick,
    Close,
    /// Test hook: run SQL on the write connection inside the writer's transaction.
    #[cfg(test)]
    Exec(ExecHook),
    /// The console's failed-login guard.
    SetConsoleAuth(super::types::ConsoleAuth),
}

impl Request {
    /// Whether the operation may be refused after it has written, so needs a savepoint.
    fn needs_savepoint(&self) -> bool {
        match self {
            Request::AppendMany(_)
            | Request::SubmitJob(..)
            | Request::UpdateJob { .. }
            | Request::CompleteMessage(..)
            | Request::AppendOnce(..)
            | Request::SubmitCampaign { .. } => true,
            #[cfg(test)]
            Request::Exec(_) => true,
            _ => false,
        }
    }
}

impl Request {
    /// Whether the operation may run while the disk is full: it records what already
    /// happened outside (a send, an acknowledgement, a delete on the modem), frees space, or
    /// is the alarm itself. New data waits at its source instead.
    fn allowed_while_full(&self) -> bool {
        match self {
            Request::Append(ev) => ev.is_alarm(),
            Request::Delete(_)
            | Request::UpdateJob { .. }
            | Request::Requeue { .. }
            | Request::ForgetReceipt(_)
            | Request::AddReceipt(_)
            | Request::SetCampaignState(..)
            | Request::Stats
            | Request::Tick
            | Request::Close
            | Request::SetConsoleAuth(_) => true,
            #[cfg(test)]
            Request::Exec(_) => true,
            _ => false,
        }
    }
}

/// The writer's answer.
#[derive(Debug)]
pub(crate) enum Reply {
    Row(OutboxRow),
    Rows(Vec<OutboxRow>),
    MaybeRow(Option<OutboxRow>),
    Done,
    Submitted(Submitted),
    Part(PartOutcome),
    Count(i64),
    Stats(Box<StoreStats>),
}

/// A queued operation and where its answer goes.
pub(crate) struct Op {
    pub req: Request,
    pub reply: oneshot::Sender<Result<Reply, StoreError>>,
}

/// How an operation failed.
enum OpError {
    /// Refused on its own account; the transaction is still good.
    Refused(StoreError),
    /// SQLite failed; the whole transaction must go.
    Fatal(StoreError),
}

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        OpError::Fatal(e.into())
    }
}

/// Outbox rows and payload bytes per class.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    rows: [u64; 2],
    bytes: [u64; 2],
}

impl Totals {
    fn rows(&self) -> u64 {
        self.rows[0] + self.rows[1]
    }
    fn bytes(&self) -> u64 {
        self.bytes[0] + self.bytes[1]
    }
    fn add(&mut self, class: usize, size: u64) {
        self.rows[class] += 1;
        self.bytes[class] += size;
    }
    fn sub(&mut self, class: usize, size: u64) {
        self.rows[class] = self.rows[class].saturating_sub(1);
        self.bytes[class] = self.bytes[class].saturating_sub(size);
    }
}

/// What the writer keeps in memory; snapshotted and restored around anything rolled back.
#[derive(Debug, Clone, Copy)]
struct State {
    next_seq: u64,
    dropped: u64,
    totals: Totals,
    /// Values last written to `counters`.
    flushed_seq: u64,
    flushed_dropped: u64,
    /// Rows in `jobs`.
    jobs: u64,
}

/// Retention and bounds beyond the outbox.
#[derive(Debug, Clone)]
struct Retention {
    job_ms: i64,
    receipt_ms: i64,
    max_jobs: u64,
    every: Duration,
}

/// The writer: its connection, its memory and its limits.
pub(crate) struct Writer {
    conn: Connection,
    st: State,
    max_rows: u64,
    max_bytes: u64,
    batch_max: usize,
    transactions: u64,
    operations: u64,
    retention: Retention,
    last_housekeeping: Instant,
    pruned_jobs: u64,
    db_path: PathBuf,
    /// The folder holding the database (free space is measured there).
    data_dir: PathBuf,
    gateway_json: String,
    /// Seqs acknowledged by the broker and not yet deleted (shared with readers, which
    /// never hand them out again).
    acked: Arc<Mutex<BTreeSet<u64>>>,
    ack_log: AckLog,
    /// A delete failed: retry the acknowledged set at the next tick.
    delete_failed: bool,
    reserve: Reserve,
    /// Why the store is in full mode, while it is.
    full: Option<String>,
    alarms_while_full: u32,
    health: watch::Sender<StorageHealth>,
}

/// What the writer shares with the store's handles.
pub(crate) struct WriterLinks {
    pub acked: Arc<Mutex<BTreeSet<u64>>>,
    pub health: watch::Sender<StorageHealth>,
    pub gateway_json: String,
}

const TELEMETRY: usize = 0;
const CRITICAL: usize = 1;

impl Writer {
    /// Takes over `conn` (migrated) and loads the counters and outbox totals; deletes rows
    /// acknowledged in an earlier run whose delete did not commit.
    pub fn new(
        conn: Connection,
        opts: &StoreOptions,
        links: WriterLinks,
    ) -> Result<Self, StoreError> {
        let counter = |name: &str| -> Result<u64, StoreError> {
            let v: Option<i64> = conn
                .query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?;
            Ok(v.unwrap_or(0).max(0) as u64)
        };
        let mut next_seq = counter("next_seq")?.max(1);
        let dropped = counter("dropped_telemetry")?;
        // Belt and braces: never hand out a seq at or below one already stored.
        let max_seq: Option<i64> =
            conn.query_row("SELECT MAX(seq) FROM outbox", [], |r| r.get(0))?;
        if let Some(m) = max_seq {
            next_seq = next_seq.max(m as u64 + 1);
        }
        let mut totals = Totals::default();
        {
            let mut stmt = conn.prepare(
                "SELECT class, COUNT(*), COALESCE(SUM(length(payload)), 0) FROM outbox GROUP BY class",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let class: i64 = r.get(0)?;
                let idx = if class == 0 { TELEMETRY } else { CRITICAL };
                totals.rows[idx] += r.get::<_, i64>(1)? as u64;
                totals.bytes[idx] += r.get::<_, i64>(2)? as u64;
            }
        }
        let jobs: i64 = conn.query_row("SELECT COUNT(*) FROM jobs", [], |r| r.get(0))?;
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut ack_log = AckLog::open(&opts.path);
        let earlier = ack_log.load();
        let delete_failed = !earlier.is_empty();
        lock(&links.acked).extend(earlier);
        let reserve = Reserve::beside(&opts.path);
        let mut w = Self {
            conn,
            st: State {
                next_seq,
                dropped,
                totals,
                flushed_seq: 0,
                flushed_dropped: dropped,
                jobs: jobs.max(0) as u64,
            },
            max_rows: opts.max_rows,
            max_bytes: opts.max_bytes,
            batch_max: opts.batch_max.max(1),
            transactions: 0,
            operations: 0,
            retention: Retention {
                job_ms: ms(opts.job_retention),
                receipt_ms: ms(opts.receipt_retention),
                max_jobs: opts.max_jobs.max(1),
                every: opts.housekeeping_every,
            },
            last_housekeeping: Instant::now(),
            pruned_jobs: 0,
            db_path: opts.path.clone(),
            data_dir: match opts.path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            },
            gateway_json: links.gateway_json,
            acked: links.acked,
            ack_log,
            delete_failed,
            reserve,
            full: None,
            alarms_while_full: 0,
            health: links.health,
        };
        if let Err(e) = w.reserve.fill() {
            tracing::warn!(error = %e, "disk-full reserve not written; the disk is nearly full");
        }
        if w.delete_failed {
            w.retry_deletes();
        }
        w.housekeeping();
        w.look_at_disk();
        Ok(w)
    }

    /// Serves operations until every sender is gone or `Close` arrives.
    pub fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let mut batch: Vec<Op> = Vec::with_capacity(self.batch_max);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < self.batch_max {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            let close = batch.iter().any(|op| matches!(op.req, Request::Close));
            let before = batch.len();
            batch.retain(|op| !matches!(op.req, Request::Tick));
            let ticked = batch.len() < before;
            if !batch.is_empty() {
                self.process(&mut batch);
            }
            if ticked {
                self.tick();
            }
            if close {
                break;
            }
        }
        // Whatever is still queued is dropped: those callers see `Closed`.
        rx.close();
        tracing::debug!(
            transactions = self.transactions,
            operations = self.operations,
            "store writer stopped"
        );
    }

    /// Runs one group and replies to each caller.
    fn process(&mut self, batch: &mut Vec<Op>) {
        if self.full.is_some() {
            self.refuse_while_full(batch);
            if batch.is_empty() {
                return;
            }
        }
        let snapshot = self.st;
        match self.run_txn(batch.iter().map(|op| &op.req)) {
            Ok(results) => {
                for (op, r) in batch.drain(..).zip(results) {
                    self.committed(&op.req, r.is_ok());
                    let _ = op.reply.send(r);
                }
            }
            Err(e) => {
                self.abort();
                self.st = snapshot;
                let mut released = false;
                if e == StoreError::DiskFull {
                    // The reserve is released: what may run while full gets its retry.
                    released = self.enter_full("the disk is full");
                    self.refuse_while_full(batch);
                }
                if batch.len() > 1 || released {
                    tracing::warn!(error = %e, ops = batch.len(), "store group failed; retrying one by one");
                    for op in batch.drain(..) {
                        let snap = self.st;
                        let r = match self.run_txn(std::iter::once(&op.req)) {
                            Ok(mut v) => v
                                .pop()
                                .unwrap_or_else(|| Err(StoreError::Internal("no result".into()))),
                            Err(e) => {
                                self.abort();
                                self.st = snap;
                                if e == StoreError::DiskFull {
                                    self.enter_full("the disk is full");
                                }
                                Err(e)
                            }
                        };
                        self.committed(&op.req, r.is_ok());
                        let _ = op.reply.send(r);
                    }
                } else {
                    if e != StoreError::DiskFull {
                        tracing::warn!(error = %e, "store operation failed");
                    }
                    for op in batch.drain(..) {
                        self.committed(&op.req, false);
                        let _ = op.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Answers [`StoreError::DiskFull`] to what may not run while full, keeping the rest.
    fn refuse_while_full(&mut self, batch: &mut Vec<Op>) {
        let mut kept = Vec::with_capacity(batch.len());
        for op in batch.drain(..) {
            let alarm = matches!(&op.req, Request::Append(ev) if ev.is_alarm());
            let allowed = op.req.allowed_while_full()
                && !(alarm && self.alarms_while_full >= ALARMS_WHILE_FULL);
            if allowed {
                if alarm {
                    self.alarms_while_full += 1;
                }
                kept.push(op);
            } else {
                self.committed(&op.req, false);
                let _ = op.reply.send(Err(StoreError::DiskFull));
            }
        }
        *batch = kept;
    }

    /// After an operation's transaction committed (`ok`) or failed: the acknowledged set.
    fn committed(&mut self, req: &Request, ok: bool) {
        if let Request::Delete(seqs) = req {
            if ok {
                let mut acked = lock(&self.acked);
                for s in seqs {
                    acked.remove(s);
                }
            } else {
                self.delete_failed = true;
                self.persist_acked();
            }
        }
    }

    /// Writes the acknowledged-but-undeleted set to the ack log (a restart deletes them).
    fn persist_acked(&mut self) {
        let set = lock(&self.acked).clone();
        if let Err(e) = self.ack_log.store(&set) {
            tracing::warn!(rows = set.len(), error = %e,
                "acknowledged rows not recorded; a restart before their delete publishes them again");
        }
    }

    /// Deletes the acknowledged set; on success the ack log is cleared.
    fn retry_deletes(&mut self) {
        let seqs: Vec<u64> = lock(&self.acked).iter().copied().collect();
        if seqs.is_empty() {
            self.delete_failed = false;
            let _ = self.ack_log.clear();
            return;
        }
        let req = Request::Delete(seqs);
        let snap = self.st;
        match self.run_txn(std::iter::once(&req)) {
            Ok(_) => {
                self.committed(&req, true);
                self.delete_failed = false;
                if lock(&self.acked).is_empty() {
                    if let Err(e) = self.ack_log.clear() {
                        tracing::warn!(error = %e, "acknowledged-rows log not cleared");
                    }
                } else {
                    self.persist_acked();
                }
                tracing::info!("acknowledged rows deleted after an earlier failure");
            }
            Err(e) => {
                self.abort();
                self.st = snap;
                if e == StoreError::DiskFull {
                    self.enter_full("the disk is full");
                }
                self.persist_acked();
                tracing::debug!(error = %e, "acknowledged rows still not deleted");
            }
        }
    }

    /// Periodic work: the disk, failed deletes, housekeeping when due.
    fn tick(&mut self) {
        // Deletes first: they give space back before the disk is judged.
        if self.delete_failed {
            self.retry_deletes();
        }
        self.look_at_disk();
        if self.last_housekeeping.elapsed() >= self.retention.every {
            self.housekeeping();
        }
    }

    /// Free space: under the low-water mark the store goes into full mode (checkpointing the
    /// WAL back first); with enough free again it leaves it.
    fn look_at_disk(&mut self) {
        let dir = self.data_dir.clone();
        let dir = dir.as_path();
        let Some(free) = disk::free_bytes(dir) else {
            return;
        };
        if self.full.is_none() {
            if free < disk::LOW_WATER_BYTES {
                // A checkpoint may hand the WAL's space back before we give up.
                self.checkpoint_truncate();
                let free = disk::free_bytes(dir).unwrap_or(free);
                if free < disk::LOW_WATER_BYTES {
                    self.enter_full(&format!("only {free} bytes free on the data disk"));
                }
            }
            return;
        }
        self.checkpoint_truncate();
        let free = disk::free_bytes(dir).unwrap_or(free);
        let needed = disk::RECOVER_BYTES
            + if self.reserve.present() {
                0
            } else {
                disk::RESERVE_BYTES
            };
        if free < needed {
            return;
        }
        if let Err(e) = self.reserve.fill() {
            tracing::debug!(error = %e, "reserve not written back yet");
            return;
        }
        let reason = self.full.take().unwrap_or_default();
        tracing::warn!(free, %reason, "disk space back; the store takes data again");
        self.alarms_while_full = 0;
        self.internal_alarm(
            "disk-ok",
            &format!(
                "the data disk has room again ({free} bytes free); the store takes data again"
            ),
        );
        self.health.send_replace(StorageHealth::default());
    }

    /// Enters full mode (if not in it): releases the reserve, records a `disk-full` alarm
    /// with its space, tells the watchers. True if the reserve was released now.
    fn enter_full(&mut self, reason: &str) -> bool {
        let released = self.reserve.release();
        if self.full.is_some() {
            return released;
        }
        tracing::error!(%reason, reserve_released = released,
            "store in full mode: new data is refused until disk space is freed");
        self.full = Some(reason.to_string());
        self.alarms_while_full = 1;
        self.checkpoint_truncate();
        self.internal_alarm(
            "disk-full",
            &format!("{reason}: new events and commands are refused, received SMS stay on the SIM until space is freed"),
        );
        self.health.send_replace(StorageHealth {
            full: true,
            reason: Some(reason.to_string()),
        });
        released
    }

    /// Appends an alarm of the store's own in a transaction of its own (logged if it cannot:
    /// the retained status still says the store is full).
    fn internal_alarm(&mut self, code: &str, message: &str) {
        let body = json!({"code": code, "message": message, "slot": null});
        let ev = match Prepared::new(
            NewEvent::new("alarm", EventClass::Critical, body),
            &self.gateway_json,
        ) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::error!(error = %e, "store alarm not encoded");
                return;
            }
        };
        let req = Request::Append(ev);
        let snap = self.st;
        if let Err(e) = self.run_txn(std::iter::once(&req)) {
            self.abort();
            self.st = snap;
            tracing::error!(%code, error = %e, "store alarm could not be stored");
        }
    }

    /// Checkpoints the whole WAL into the database and truncates it (gives its space back).
    fn checkpoint_truncate(&mut self) {
        self.abort();
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
        {
            tracing::debug!(error = %e, "WAL checkpoint failed");
        }
    }

    /// Retention (finished jobs and campaigns, stale receipts), the job bound, and giving
    /// free pages back to the file system.
    fn housekeeping(&mut self) {
        self.last_housekeeping = Instant::now();
        let now = unix_ms();
        let job_cut = now.saturating_sub(self.retention.job_ms);
        let receipt_cut = now.saturating_sub(self.retention.receipt_ms);
        let snap = self.st;
        let r = (|| -> Result<u64, StoreError> {
            self.abort();
            self.sql("BEGIN IMMEDIATE")?;
            let pruned = self.prune_jobs(job_cut)?;
            self.conn
                .prepare_cached("DELETE FROM sms_seen WHERE seen_ms < ?1")?
                .execute([receipt_cut])?;
            self.sql("COMMIT")?;
            Ok(pruned)
        })();
        match r {
            Ok(pruned) => {
                if pruned > 0 {
                    tracing::debug!(pruned, "finished jobs past their retention deleted");
                }
            }
            Err(e) => {
                self.abort();
                self.st = snap;
                tracing::debug!(error = %e, "housekeeping failed; retried later");
                return;
            }
        }
        self.reclaim_space();
    }

    /// Deletes finished jobs last changed before `cut` (unix ms) and finished campaigns with
    /// them; then, over the job bound, the oldest finished ones. Returns how many went.
    fn prune_jobs(&mut self, cut: i64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .prepare_cached(&format!(
                "DELETE FROM jobs WHERE state IN ({FINISHED_JOB_STATES}) AND updated_ms < ?1 AND {LIVE}"
            ))?
            .execute([cut])? as u64;
        self.st.jobs = self.st.jobs.saturating_sub(n);
        self.pruned_jobs += n;
        let n = n + self.prune_over(self.retention.max_jobs)?;
        self.conn
            .prepare_cached(
                "DELETE FROM campaigns WHERE state IN ('done','cancelled') AND updated_ms < ?1
                   AND campaign_id NOT IN (SELECT campaign_id FROM jobs WHERE campaign_id IS NOT NULL)",
            )?
            .execute([cut])?;
        Ok(n)
    }

    /// Deletes the oldest finished jobs until at most `keep` remain (or none finished is
    /// left); returns how many went.
    fn prune_over(&mut self, keep: u64) -> Result<u64, StoreError> {
        if self.st.jobs <= keep {
            return Ok(0);
        }
        let over = self.st.jobs - keep;
        let n = self
            .conn
            .prepare_cached(&format!(
                "DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM jobs
                   WHERE state IN ({FINISHED_JOB_STATES}) AND {LIVE} ORDER BY updated_ms LIMIT ?1)"
            ))?
            .execute([i64::try_from(over).unwrap_or(i64::MAX)])? as u64;
        self.st.jobs = self.st.jobs.saturating_sub(n);
        self.pruned_jobs += n;
        Ok(n)
    }

    /// Makes room for `n` new jobs under the job bound, or refuses.
    fn room_for_jobs(&mut self, n: u64) -> Result<(), OpError> {
        let max = self.retention.max_jobs;
        if self.st.jobs + n <= max {
            return Ok(());
        }
        self.prune_over(max.saturating_sub(n))
            .map_err(OpError::Fatal)?;
        if self.st.jobs + n <= max {
            Ok(())
        } else {
            Err(OpError::Refused(StoreError::Full {
                rows: self.st.totals.rows(),
                bytes: self.st.totals.bytes(),
            }))
        }
    }

    /// Hands free pages back to the file system (incremental vacuum), then truncates the WAL,
    /// so the file shrinks after a big backlog drained.
    fn reclaim_space(&mut self) {
        self.abort();
        let free: i64 = self
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap_or(0);
        if free < VACUUM_MIN_FREE_PAGES {
            return;
        }
        let r = self
            .conn
            .prepare("PRAGMA incremental_vacuum")
            .and_then(|mut st| {
                let mut rows = st.query([])?;
                while rows.next()?.is_some() {}
                Ok(())
            });
        if let Err(e) = r {
            tracing::debug!(error = %e, "incremental vacuum failed");
            return;
        }
        self.checkpoint_truncate();
        tracing::debug!(pages = free, "free pages given back to the file system");
    }

    /// Rolls back whatever transaction is open (SQLite may have done it already).
    fn abort(&mut self) {
        if !self.conn.is_autocommit() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "store rollback failed");
            }
        }
    }

    fn sql(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// One transaction over `reqs`: results per operation, or the error that sank them all.
    fn run_txn<'a>(
        &mut self,
        reqs: impl Iterator<Item = &'a Request>,
    ) -> Result<Vec<Result<Reply, StoreError>>, StoreError> {
        self.abort();
        self.sql("BEGIN IMMEDIATE")?;
        let mut out = Vec::new();
        for req in reqs {
            let r = if req.needs_savepoint() {
                self.sql("SAVEPOINT op")?;
                let snap = self.st;
                match self.exec(req) {
                    Ok(v) => {
                        self.sql("RELEASE op")?;
                        Ok(v)
                    }
                    Err(OpError::Refused(e)) => {
                        self.sql("ROLLBACK TO op")?;
                        self.sql("RELEASE op")?;
                        self.st = snap;
                        Err(e)
                    }
                    Err(OpError::Fatal(e)) => return Err(e),
                }
            } else {
                match self.exec(req) {
                    Ok(v) => Ok(v),
                    Err(OpError::Refused(e)) => Err(e),
                    Err(OpError::Fatal(e)) => return Err(e),
                }
            };
            out.push(r);
        }
        self.flush_counters()?;
        self.sql("COMMIT")?;
        self.transactions += 1;
        self.operations += out.len() as u64;
        Ok(out)
    }

    /// Writes the in-memory counters into this transaction.
    fn flush_counters(&mut self) -> rusqlite::Result<()> {
        if self.st.next_seq != self.st.flushed_seq {
            self.conn
                .prepare_cached("UPDATE counters SET value = ?1 WHERE name = 'next_seq'")?
                .execute([self.st.next_seq as i64])?;
            self.st.flushed_seq = self.st.next_seq;
        }
        if self.st.dropped != self.st.flushed_dropped {
            self.conn
                .prepare_cached(
                    "INSERT INTO counters(name, value) VALUES ('dropped_telemetry', ?1)
                     ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                )?
                .execute([self.st.dropped as i64])?;
            self.st.flushed_dropped = self.st.dropped;
        }
        Ok(())
    }

    /// Carries out one operation inside the open transaction.
    fn exec(&mut self, req: &Request) -> Result<Reply, OpError> {
        match req {
            Request::Append(ev) => Ok(Reply::Row(self.insert_event(ev)?)),
            Request::AppendMany(evs) => {
                let mut rows = Vec::with_capacity(evs.len());
                for ev in evs {
                    rows.push(self.insert_event(ev)?);
                }
                Ok(Reply::Rows(rows))
            }
            Request::Delete(seqs) => {
                self.delete(seqs)?;
                Ok(Reply::Done)
            }
            Request::SubmitJob(job, event) => self.submit_job(job, event.as_ref()),
            Request::UpdateJob {
                job_id,
                state,
                outcome,
                event,
            } => self.update_job(*job_id, state, outcome.as_deref(), event.as_ref()),
            Request::PutPart(part, json, receipt) => self.put_part(part, json, receipt.as_deref()),
            Request::AddReceipt(r) => {
                self.mark_seen(r)?;
                Ok(Reply::Done)
            }
            Request::ForgetReceipt(r) => {
                self.conn
                    .prepare_cached("DELETE FROM sms_seen WHERE fingerprint = ?1")?
                    .execute([r])?;
                Ok(Reply::Done)
            }
            Request::CompleteMessage(key, ev) => self.complete_message(key, ev),
            Request::AppendOnce(fp, ev) => self.append_once(fp, ev),
            Request::SubmitCampaign {
                command,
                campaign_id,
                spec,
                priority,
                not_before_ms,
                recipients,
            } => self.submit_campaign(
                command,
                campaign_id,
                spec,
                *priority,
                *not_before_ms,
                recipients,
            ),
            Request::SetCampaignState(id, state) => {
                let n = self
                    .conn
                    .prepare_cached(
                        "UPDATE campaigns SET state = ?2, updated_ms = ?3 WHERE campaign_id = ?1",
                    )?
                    .execute(params![id, state, unix_ms()])?;
                Ok(Reply::Count(n as i64))
            }
            Request::MarkSending {
                job_id,
                outcome,
                counters,
            } => self.mark_sending(*job_id, outcome, counters),
            Request::Requeue {
                job_id,
                outcome,
                not_before_ms,
            } => {
                self.conn
                    .prepare_cached(
                        "UPDATE jobs SET state = 'queued', outcome = ?2, not_before_ms = ?3, updated_ms = ?4
                         WHERE job_id = ?1",
                    )?
                    .execute(params![job_id, outcome, not_before_ms, unix_ms()])?;
                Ok(Reply::Done)
            }
            Request::CounterAdd(name, delta) => self.counter_add(name, *delta),
            Request::Stats => self.stats(),
            Request::Tick | Request::Close => Ok(Reply::Done),
            #[cfg(test)]
            Request::Exec(f) => {
                f(&self.conn)?;
                Ok(Reply::Done)
            }
            Request::SetConsoleAuth(state) => self.set_console_auth(state),
        }
    }

    fn full(&self) -> OpError {
        OpError::Refused(StoreError::Full {
            rows: self.st.totals.rows(),
            bytes: self.st.totals.bytes(),
        })
    }

    /// Allocates the next seq and stores `ev` under it, within the bound policy.
    fn insert_event(&mut self, ev: &Prepared) -> Result<OutboxRow, OpError> {
        let seq = self.st.next_seq;
        let payload = ev.payload(seq);
        let size = payload.len() as u64;
        self.make_room(ev.is_alarm(), size)?;
        self.conn
            .prepare_cached(
                "INSERT INTO outbox(seq, id, type, class, payload, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                seq as i64,
                ev.id,
                ev.event_type,
                ev.class.code(),
                payload,
                ev.created_ms
            ])?;
        self.st.next_seq += 1;
        self.st.totals.add(ev.class.index(), size);
        Ok(OutboxRow {
            seq,
            id: ev.id.clone(),
            event_type: ev.event_type.clone(),
            payload,
        })
    }

    /// Makes room for one row of `size` bytes by dropping the oldest telemetry, or refuses
    /// (before writing anything) when even dropping all telemetry would not be enough.
    fn make_room(&mut self, alarm: bool, size: u64) -> Result<(), OpError> {
        let (max_rows, max_bytes) = if alarm {
            (
                self.max_rows.saturating_add(ALARM_RESERVE_ROWS),
                self.max_bytes.saturating_add(ALARM_RESERVE_BYTES),
            )
        } else {
            (self.max_rows, self.max_bytes)
        };
        let fits = |rows: u64, bytes: u64| rows < max_rows && bytes + size <= max_bytes;
        let t = self.st.totals;
        if fits(t.rows(), t.bytes()) {
            return Ok(());
        }
        if !fits(t.rows[CRITICAL], t.bytes[CRITICAL]) {
            return Err(self.full());
        }
        loop {
            let t = self.st.totals;
            if fits(t.rows(), t.bytes()) {
                return Ok(());
            }
            let row_excess = (t.rows() + 1).saturating_sub(max_rows);
            let byte_excess = (t.bytes() + size).saturating_sub(max_bytes);
            let avg = (t.bytes[TELEMETRY] / t.rows[TELEMETRY].max(1)).max(1);
            let n = row_excess.max(byte_excess.div_ceil(avg)).max(1);
            if self.evict_telemetry(n)? == 0 {
                return Err(OpError::Fatal(StoreError::Internal(
                    "outbox totals out of step with the table".into(),
                )));
            }
        }
    }

    /// Deletes the `n` oldest telemetry rows; returns how many went.
    fn evict_telemetry(&mut self, n: u64) -> Result<u64, OpError> {
        let mut stmt = self.conn.prepare_cached(
            "DELETE FROM outbox WHERE seq IN
               (SELECT seq FROM outbox WHERE class = 0 ORDER BY seq LIMIT ?1)
             RETURNING length(payload)",
        )?;
        let mut rows = stmt.query([n as i64])?;
        let mut deleted = 0;
        while let Some(r) = rows.next()? {
            let size: i64 = r.get(0)?;
            self.st.totals.sub(TELEMETRY, size as u64);
            deleted += 1;
        }
        self.st.dropped += deleted;
        if deleted > 0 {
            tracing::debug!(deleted, "outbox at its bound: dropped oldest telemetry");
        }
        Ok(deleted)
    }

    fn delete(&mut self, seqs: &[u64]) -> Result<(), OpError> {
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM outbox WHERE seq = ?1 RETURNING class, length(payload)")?;
        for &seq in seqs {
            let mut rows = stmt.query([seq as i64])?;
            if let Some(r) = rows.next()? {
                let class: i64 = r.get(0)?;
                let size: i64 = r.get(1)?;
                let idx = if class == 0 { TELEMETRY } else { CRITICAL };
                self.st.totals.sub(idx, size as u64);
            }
        }
        Ok(())
    }

    fn submit_job(&mut self, job: &JobRow, event: Option<&Prepared>) -> Result<Reply, OpError> {
        if let existing @ Reply::Submitted(_) = self.existing_job(&job.request_id)? {
            return Ok(existing);
        }
        // New work is refused while critical rows alone fill the outbox: its results could
        // not be recorded.
        let t = self.st.totals;
        if t.rows[CRITICAL] >= self.max_rows || t.bytes[CRITICAL] >= self.max_bytes {
            return Err(self.full());
        }
        self.room_for_jobs(1)?;
        let now = unix_ms();
        self.st.jobs += 1;
        self.conn
            .prepare_cached(
                "INSERT INTO jobs(request_id, verb, payload, state, slot, outcome, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            )?
            .execute(params![
                job.request_id,
                job.verb,
                job.payload,
                job.state,
                job.slot,
                job.outcome,
                now
            ])?;
        let job_id = self.conn.last_insert_rowid();
        let event = match event {
            Some(ev) => Some(self.insert_event(ev)?),
            None => None,
        };
        Ok(Reply::Submitted(Submitted::New { job_id, event }))
    }

    fn update_job(
        &mut self,
        job_id: i64,
        state: &str,
        outcome: Option<&str>,
        event: Option<&Prepared>,
    ) -> Result<Reply, OpError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE jobs SET state = ?2, outcome = COALESCE(?3, outcome), updated_ms = ?4
                 WHERE job_id = ?1",
            )?
            .execute(params![job_id, state, outcome, unix_ms()])?;
        if changed == 0 {
            return Err(OpError::Refused(StoreError::NoSuchJob(job_id)));
        }
        let row = match event {
            Some(ev) => Some(self.insert_event(ev)?),
            None => None,
        };
        Ok(Reply::MaybeRow(row))
    }

    fn submit_campaign(
        &mut self,
        command: &JobRow,
        campaign_id: &str,
        spec: &str,
        priority: i64,
        not_before_ms: i64,
        recipients: &[JobRow],
    ) -> Result<Reply, OpError> {
        // A repeated command is answered from the stored one.
        if let existing @ Reply::Submitted(_) = self.existing_job(&command.request_id)? {
            return Ok(existing);
        }
        let t = self.st.totals;
        if t.rows[CRITICAL] >= self.max_rows || t.bytes[CRITICAL] >= self.max_bytes {
            return Err(self.full());
        }
        self.room_for_jobs(recipients.len() as u64 + 1)?;
        let now = unix_ms();
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO campaigns(campaign_id, request_id, state, spec, created_ms, updated_ms)
                 VALUES (?1, ?2, 'running', ?3, ?4, ?4) ON CONFLICT(campaign_id) DO NOTHING",
            )?
            .execute(params![campaign_id, command.request_id, spec, now])?;
        if inserted == 0 {
            return Err(OpError::Refused(StoreError::Encode(format!(
                "campaign {campaign_id} exists already"
            ))));
        }
        {
            let mut stmt = self.conn.prepare_cached(
                "INSERT INTO jobs(request_id, verb, payload, state, slot, outcome, created_ms, updated_ms,
                                  campaign_id, priority, not_before_ms)
                 VALUES (?1, ?2, ?3, 'queued', ?4, NULL, ?5, ?5, ?6, ?7, ?8)
                 ON CONFLICT(request_id) DO NOTHING",
            )?;
            for r in recipients {
                self.st.jobs += stmt.execute(params![
                    r.request_id,
                    r.verb,
                    r.payload,
                    r.slot,
                    now,
                    campaign_id,
                    priority,
                    not_before_ms
                ])? as u64;
            }
        }
        self.conn
            .prepare_cached(
                "INSERT INTO jobs(request_id, verb, payload, state, slot, outcome, created_ms, updated_ms, campaign_id)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?6, ?7)",
            )?
            .execute(params![
                command.request_id,
                command.verb,
                command.payload,
                command.state,
                command.outcome,
                now,
                campaign_id
            ])?;
        self.st.jobs += 1;
        let job_id = self.conn.last_insert_rowid();
        Ok(Reply::Submitted(Submitted::New {
            job_id,
            event: None,
        }))
    }

    fn existing_job(&mut self, request_id: &str) -> Result<Reply, OpError> {
        let existing = self
            .conn
            .prepare_cached("SELECT job_id, verb, state, outcome FROM jobs WHERE request_id = ?1")?
            .query_row([request_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .optional()?;
        match existing {
            Some((job_id, verb, state, outcome)) => {
                let outcome = parse_json_opt(outcome.as_deref()).map_err(OpError::Refused)?;
                Ok(Reply::Submitted(Submitted::Existing {
                    job_id,
                    verb,
                    state,
                    outcome,
                }))
            }
            None => Ok(Reply::Done),
        }
    }

    /// Marks a job `sending` and counts it against its SIM's limits in one transaction, so
    /// the limits hold to the message across a crash.
    fn mark_sending(
        &mut self,
        job_id: i64,
        outcome: &str,
        counters: &[String],
    ) -> Result<Reply, OpError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE jobs SET state = 'sending', outcome = ?2, updated_ms = ?3
                 WHERE job_id = ?1 AND state = 'queued'",
            )?
            .execute(params![job_id, outcome, unix_ms()])?;
        if changed == 0 {
            return Err(OpError::Refused(StoreError::NoSuchJob(job_id)));
        }
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO counters(name, value) VALUES (?1, 1)
             ON CONFLICT(name) DO UPDATE SET value = value + 1",
        )?;
        for c in counters {
            stmt.execute([c])?;
        }
        Ok(Reply::Done)
    }

    /// Records receipt `fp`; false if it was recorded already.
    fn mark_seen(&mut self, fp: &str) -> Result<bool, OpError> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO sms_seen(fingerprint, seen_ms) VALUES (?1, ?2)
                 ON CONFLICT(fingerprint) DO NOTHING",
            )?
            .execute(params![fp, unix_ms()])?;
        Ok(n == 1)
    }

    fn append_once(&mut self, fp: &str, ev: &Prepared) -> Result<Reply, OpError> {
        if !self.mark_seen(fp)? {
            return Ok(Reply::MaybeRow(None));
        }
        Ok(Reply::MaybeRow(Some(self.insert_event(ev)?)))
    }

    fn put_part(
        &mut self,
        part: &StoredPart,
        json: &str,
        receipt: Option<&str>,
    ) -> Result<Reply, OpError> {
        if part.total == 0 || part.seq == 0 || part.seq > part.total {
            return Err(OpError::Refused(StoreError::InvalidPart(format!(
                "part {} of {}",
                part.seq, part.total
            ))));
        }
        if let Some(r) = receipt {
            self.mark_seen(r)?;
        }
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO sms_parts(slot, sender, reference, total, seq, part_json, received_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(slot, sender, reference, total, seq) DO NOTHING",
            )?
            .execute(params![
                part.slot,
                part.sender,
                part.reference,
                part.total,
                part.seq,
                json,
                part.received_ms
            ])?;
        let key = part.key();
        let have: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM sms_parts
                 WHERE slot = ?1 AND sender = ?2 AND reference = ?3 AND total = ?4",
            )?
            .query_row(
                params![key.slot, key.sender, key.reference, key.total],
                |r| r.get(0),
            )?;
        if have >= i64::from(key.total) {
            // Also for a duplicate: all parts stored but never completed (a crash in
            // between) must still complete.
            let parts = load_parts(&self.conn, &key).map_err(OpError::Fatal)?;
            Ok(Reply::Part(PartOutcome::Complete(parts)))
        } else if inserted == 0 {
            Ok(Reply::Part(PartOutcome::Duplicate))
        } else {
            Ok(Reply::Part(PartOutcome::Stored { have: have as u8 }))
        }
    }

    fn complete_message(&mut self, key: &PartKey, ev: &Prepared) -> Result<Reply, OpError> {
        let deleted = self
            .conn
            .prepare_cached(
                "DELETE FROM sms_parts
                 WHERE slot = ?1 AND sender = ?2 AND reference = ?3 AND total = ?4",
            )?
            .execute(params![key.slot, key.sender, key.reference, key.total])?;
        if deleted == 0 {
            return Err(OpError::Refused(StoreError::NoSuchMessage(key.to_string())));
        }
        Ok(Reply::Row(self.insert_event(ev)?))
    }

    fn counter_add(&mut self, name: &str, delta: i64) -> Result<Reply, OpError> {
        if RESERVED_COUNTERS.contains(&name) {
            return Err(OpError::Refused(StoreError::ReservedCounter(name.into())));
        }
        let current: i64 = self
            .conn
            .prepare_cached("SELECT value FROM counters WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let value = current.checked_add(delta).ok_or_else(|| {
            OpError::Refused(StoreError::Encode(format!("counter {name} would overflow")))
        })?;
        self.conn
            .prepare_cached(
                "INSERT INTO counters(name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![name, value])?;
        Ok(Reply::Count(value))
    }

    fn stats(&mut self) -> Result<Reply, OpError> {
        let oldest: Option<i64> = self
            .conn
            .prepare_cached("SELECT MIN(seq) FROM outbox")?
            .query_row([], |r| r.get(0))?;
        let mut jobs_by_state = std::collections::BTreeMap::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                jobs_by_state.insert(r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64);
            }
        }
        let sms_parts: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM sms_parts")?
            .query_row([], |r| r.get(0))?;
        let receipts: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM sms_seen")?
            .query_row([], |r| r.get(0))?;
        let file_bytes = [
            self.db_path.clone(),
            super::schema::suffixed(&self.db_path, "-wal"),
        ]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
        let t = self.st.totals;
        Ok(Reply::Stats(Box::new(StoreStats {
            rows: t.rows(),
            bytes: t.bytes(),
            telemetry_rows: t.rows[TELEMETRY],
            oldest_seq: oldest.map(|s| s as u64),
            next_seq: self.st.next_seq,
            jobs_by_state,
            sms_parts: sms_parts as u64,
            dropped_telemetry: self.st.dropped,
            transactions: self.transactions,
            operations: self.operations,
            jobs: self.st.jobs,
            receipts: receipts as u64,
            acked_undeleted: lock(&self.acked).len() as u64,
            pruned_jobs: self.pruned_jobs,
            disk_full: self.full.is_some(),
            file_bytes,
        })))
    }

    fn set_console_auth(&mut self, s: &super::types::ConsoleAuth) -> Result<Reply, OpError> {
        self.conn
            .prepare_cached(
                "INSERT INTO console_auth(id, failures, lockouts, locked_until_ms)
                 VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET failures = excluded.failures,
                   lockouts = excluded.lockouts, locked_until_ms = excluded.locked_until_ms",
            )?
            .execute(params![s.failures, s.lockouts, s.locked_until_ms])?;
        Ok(Reply::Done)
    }
}

/// FNV-1a 64: a hash that stays the same across Rust releases (it is stored).
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
