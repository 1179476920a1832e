//! Outbox rows: insert, make room (evict telemetry, alarm reserve), delete.

use rusqlite::params;

use crate::store::envelope::Prepared;
use crate::store::error::StoreError;
use crate::store::types::{ALARM_RESERVE_BYTES, ALARM_RESERVE_ROWS, OutboxRow};

use super::{CRITICAL, LOG_TARGET, OpError, TELEMETRY, Writer};

impl Writer {
    pub(super) fn full(&self) -> OpError {
        OpError::Refused(StoreError::Full {
            rows: self.st.totals.rows(),
            bytes: self.st.totals.bytes(),
        })
    }

    /// Allocates the next seq and stores `ev` under it, within the bound policy.
    pub(super) fn insert_event(&mut self, ev: &Prepared) -> Result<OutboxRow, OpError> {
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
    pub(super) fn make_room(&mut self, alarm: bool, size: u64) -> Result<(), OpError> {
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
    pub(super) fn evict_telemetry(&mut self, n: u64) -> Result<u64, OpError> {
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
            tracing::debug!(target: LOG_TARGET, deleted, "outbox at its bound: dropped oldest telemetry");
        }
        Ok(deleted)
    }

    pub(super) fn delete(&mut self, seqs: &[u64]) -> Result<(), OpError> {
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
}
