//! The single writer: a std thread that owns the write connection and commits queued
//! operations in groups.
//!
//! Group commit: take the first queued operation, drain whatever else is queued (up to
//! `batch_max`), run them all in one transaction, COMMIT, and only then reply to each caller,
//! so a caller's future resolves only once its data is durable. An operation refused for a
//! reason of its own (outbox full, unknown job …) is undone alone, through a savepoint or by
//! checking before it writes; a SQLite failure (disk full …) rolls the whole group back, which
//! is then retried one operation per transaction so each caller gets its own answer.

mod campaigns;
mod counters;
mod housekeeping;
mod inbox;
mod jobs;
mod outbox;
mod request;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, watch};

use super::disk::{AckLog, Reserve};
use super::envelope::unix_ms;
use super::error::StoreError;
use super::types::{StorageHealth, StoreOptions};

use request::OpError;
pub(crate) use request::{Op, Reply, Request};

/// The log target of every part of the writer: its lines read as they did when it was one file.
const LOG_TARGET: &str = module_path!();

/// Job states after which nothing more happens to a job (retention may delete it): the set
/// `:finished` binds (`vocab::final_job_states`).
pub(crate) const FINISHED_JOB_STATES: &str = "SELECT value FROM json_each(:finished)";

/// Alarms taken while the disk is full, per episode: the reserve is for recovery.
const ALARMS_WHILE_FULL: u32 = 16;

/// Jobs that belong to no campaign still running (a running campaign counts its recipients).
const LIVE: &str = "(campaign_id IS NULL OR campaign_id NOT IN
     (SELECT campaign_id FROM campaigns WHERE state IN (:running, :paused)))";

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
    pub verb: crate::proto::Verb,
    pub payload: String,
    pub slot: Option<u16>,
    pub state: crate::proto::JobState,
    pub outcome: Option<String>,
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
    beat: crate::actor::Heartbeat,
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
    /// Beaten on every turn of the writer's loop (its clock ticks every second).
    pub beat: crate::actor::Heartbeat,
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
            beat: links.beat,
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
            self.beat.beat();
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
            } => self.update_job(*job_id, *state, outcome.as_deref(), event.as_ref()),
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
                        "UPDATE jobs SET state = ?5, outcome = ?2, not_before_ms = ?3, updated_ms = ?4
                         WHERE job_id = ?1",
                    )?
                    .execute(params![
                        job_id,
                        outcome,
                        not_before_ms,
                        unix_ms(),
                        crate::proto::JobState::Queued
                    ])?;
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
