//! Campaigns: a campaign and its recipient jobs in one operation.

use rusqlite::params;

use crate::proto::{CampaignState, JobState};

use crate::store::envelope::unix_ms;
use crate::store::error::StoreError;
use crate::store::types::Submitted;

use super::{CRITICAL, JobRow, OpError, Reply, Writer};

impl Writer {
    pub(super) fn submit_campaign(
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
                 VALUES (?1, ?2, ?5, ?3, ?4, ?4) ON CONFLICT(campaign_id) DO NOTHING",
            )?
            .execute(params![
                campaign_id,
                command.request_id,
                spec,
                now,
                CampaignState::Running
            ])?;
        if inserted == 0 {
            return Err(OpError::Refused(StoreError::Encode(format!(
                "campaign {campaign_id} exists already"
            ))));
        }
        {
            let mut stmt = self.conn.prepare_cached(
                "INSERT INTO jobs(request_id, verb, payload, state, slot, outcome, created_ms, updated_ms,
                                  campaign_id, priority, not_before_ms)
                 VALUES (?1, ?2, ?3, ?9, ?4, NULL, ?5, ?5, ?6, ?7, ?8)
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
                    not_before_ms,
                    JobState::Queued
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
}
