//! Named counters, store statistics, the console's login guard.

use rusqlite::{OptionalExtension, params};

use crate::store::error::StoreError;
use crate::store::types::StoreStats;

use super::{OpError, RESERVED_COUNTERS, Reply, TELEMETRY, Writer, lock};

impl Writer {
    pub(super) fn counter_add(&mut self, name: &str, delta: i64) -> Result<Reply, OpError> {
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

    pub(super) fn stats(&mut self) -> Result<Reply, OpError> {
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
            crate::store::schema::suffixed(&self.db_path, "-wal"),
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

    pub(super) fn set_console_auth(
        &mut self,
        s: &crate::store::types::ConsoleAuth,
    ) -> Result<Reply, OpError> {
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
