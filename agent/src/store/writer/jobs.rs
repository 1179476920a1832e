//! Jobs: submit (idempotent by request_id), update, mark sending.

use rusqlite::{OptionalExtension, params};

use crate::proto::{JobState, Verb};
use crate::store::envelope::{Prepared, unix_ms};
use crate::store::error::StoreError;
use crate::store::reader::parse_json_opt;
use crate::store::types::Submitted;

use super::{CRITICAL, JobRow, OpError, Reply, Writer};

impl Writer {
    pub(super) fn submit_job(
        &mut self,
        job: &JobRow,
        event: Option<&Prepared>,
    ) -> Result<Reply, OpError> {
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

    pub(super) fn update_job(
        &mut self,
        job_id: i64,
        state: JobState,
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

    pub(super) fn existing_job(&mut self, request_id: &str) -> Result<Reply, OpError> {
        let existing = self
            .conn
            .prepare_cached("SELECT job_id, verb, state, outcome FROM jobs WHERE request_id = ?1")?
            .query_row([request_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Verb>(1)?,
                    r.get::<_, JobState>(2)?,
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
    pub(super) fn mark_sending(
        &mut self,
        job_id: i64,
        outcome: &str,
        counters: &[String],
    ) -> Result<Reply, OpError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE jobs SET state = ?4, outcome = ?2, updated_ms = ?3
                 WHERE job_id = ?1 AND state = ?5",
            )?
            .execute(params![
                job_id,
                outcome,
                unix_ms(),
                JobState::Sending,
                JobState::Queued
            ])?;
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
}
