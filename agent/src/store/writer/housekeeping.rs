//! Acked deletes, disk watch and the full state, checkpoints, retention, vacuum.

use std::time::Instant;

use rusqlite::{named_params, params};

use crate::proto::CampaignState;

use crate::store::disk;
use crate::store::envelope::{Prepared, unix_ms};
use crate::store::error::StoreError;
use crate::store::types::{EventClass, NewEvent, StorageHealth};
use crate::store::vocab::final_job_states;

use super::{
    FINISHED_JOB_STATES, LIVE, LOG_TARGET, OpError, Request, VACUUM_MIN_FREE_PAGES, Writer, lock,
};

impl Writer {
    /// Writes the acknowledged-but-undeleted set to the ack log (a restart deletes them).
    pub(super) fn persist_acked(&mut self) {
        let set = lock(&self.acked).clone();
        if let Err(e) = self.ack_log.store(&set) {
            tracing::warn!(target: LOG_TARGET, rows = set.len(), error = %e,
                "acknowledged rows not recorded; a restart before their delete publishes them again");
        }
    }

    /// Deletes the acknowledged set; on success the ack log is cleared.
    pub(super) fn retry_deletes(&mut self) {
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
                        tracing::warn!(target: LOG_TARGET, error = %e, "acknowledged-rows log not cleared");
                    }
                } else {
                    self.persist_acked();
                }
                tracing::info!(target: LOG_TARGET, "acknowledged rows deleted after an earlier failure");
            }
            Err(e) => {
                self.abort();
                self.st = snap;
                if e == StoreError::DiskFull {
                    self.enter_full("the disk is full");
                }
                self.persist_acked();
                tracing::debug!(target: LOG_TARGET, error = %e, "acknowledged rows still not deleted");
            }
        }
    }

    /// Periodic work: the disk, failed deletes, housekeeping when due.
    pub(super) fn tick(&mut self) {
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
    pub(super) fn look_at_disk(&mut self) {
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
            tracing::debug!(target: LOG_TARGET, error = %e, "reserve not written back yet");
            return;
        }
        let reason = self.full.take().unwrap_or_default();
        tracing::warn!(target: LOG_TARGET, free, %reason, "disk space back; the store takes data again");
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
    pub(super) fn enter_full(&mut self, reason: &str) -> bool {
        let released = self.reserve.release();
        if self.full.is_some() {
            return released;
        }
        tracing::error!(target: LOG_TARGET, %reason, reserve_released = released,
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
    pub(super) fn internal_alarm(&mut self, code: &str, message: &str) {
        let body = crate::proto::jobs::to_value(&crate::proto::Alarm {
            code,
            message,
            slot: None,
        });
        let ev = match Prepared::new(
            NewEvent::new(crate::proto::EventType::Alarm, EventClass::Critical, body),
            &self.gateway_json,
        ) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::error!(target: LOG_TARGET, error = %e, "store alarm not encoded");
                return;
            }
        };
        let req = Request::Append(ev);
        let snap = self.st;
        if let Err(e) = self.run_txn(std::iter::once(&req)) {
            self.abort();
            self.st = snap;
            tracing::error!(target: LOG_TARGET, %code, error = %e, "store alarm could not be stored");
        }
    }

    /// Checkpoints the whole WAL into the database and truncates it (gives its space back).
    pub(super) fn checkpoint_truncate(&mut self) {
        self.abort();
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
        {
            tracing::debug!(target: LOG_TARGET, error = %e, "WAL checkpoint failed");
        }
    }

    /// Retention (finished jobs and campaigns, stale receipts), the job bound, and giving
    /// free pages back to the file system.
    pub(super) fn housekeeping(&mut self) {
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
                    tracing::debug!(target: LOG_TARGET, pruned, "finished jobs past their retention deleted");
                }
            }
            Err(e) => {
                self.abort();
                self.st = snap;
                tracing::debug!(target: LOG_TARGET, error = %e, "housekeeping failed; retried later");
                return;
            }
        }
        self.reclaim_space();
    }

    /// Deletes finished jobs last changed before `cut` (unix ms) and finished campaigns with
    /// them; then, over the job bound, the oldest finished ones. Returns how many went.
    pub(super) fn prune_jobs(&mut self, cut: i64) -> Result<u64, StoreError> {
        let n = self
            .conn
            .prepare_cached(&format!(
                "DELETE FROM jobs WHERE state IN ({FINISHED_JOB_STATES}) AND updated_ms < :cut AND {LIVE}"
            ))?
            .execute(named_params! {
                ":cut": cut,
                ":finished": final_job_states(),
                ":running": CampaignState::Running,
                ":paused": CampaignState::Paused,
            })? as u64;
        self.st.jobs = self.st.jobs.saturating_sub(n);
        self.pruned_jobs += n;
        let n = n + self.prune_over(self.retention.max_jobs)?;
        self.conn
            .prepare_cached(
                "DELETE FROM campaigns WHERE state IN (?2, ?3) AND updated_ms < ?1
                   AND campaign_id NOT IN (SELECT campaign_id FROM jobs WHERE campaign_id IS NOT NULL)",
            )?
            .execute(params![cut, CampaignState::Done, CampaignState::Cancelled])?;
        Ok(n)
    }

    /// Deletes the oldest finished jobs until at most `keep` remain (or none finished is
    /// left); returns how many went.
    pub(super) fn prune_over(&mut self, keep: u64) -> Result<u64, StoreError> {
        if self.st.jobs <= keep {
            return Ok(0);
        }
        let over = self.st.jobs - keep;
        let n = self
            .conn
            .prepare_cached(&format!(
                "DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM jobs
                   WHERE state IN ({FINISHED_JOB_STATES}) AND {LIVE} ORDER BY updated_ms LIMIT :limit)"
            ))?
            .execute(named_params! {
                ":limit": i64::try_from(over).unwrap_or(i64::MAX),
                ":finished": final_job_states(),
                ":running": CampaignState::Running,
                ":paused": CampaignState::Paused,
            })? as u64;
        self.st.jobs = self.st.jobs.saturating_sub(n);
        self.pruned_jobs += n;
        Ok(n)
    }

    /// Makes room for `n` new jobs under the job bound, or refuses.
    pub(super) fn room_for_jobs(&mut self, n: u64) -> Result<(), OpError> {
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
    pub(super) fn reclaim_space(&mut self) {
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
            tracing::debug!(target: LOG_TARGET, error = %e, "incremental vacuum failed");
            return;
        }
        self.checkpoint_truncate();
        tracing::debug!(target: LOG_TARGET, pages = free, "free pages given back to the file system");
    }
}
