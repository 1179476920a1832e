//! Incoming SMS: receipts seen once, multipart parts and their completion.

use rusqlite::params;

use crate::store::envelope::{Prepared, unix_ms};
use crate::store::error::StoreError;
use crate::store::reader::load_parts;
use crate::store::types::{PartKey, PartOutcome, StoredPart};

use super::{OpError, Reply, Writer};

impl Writer {
    /// Records receipt `fp`; false if it was recorded already.
    pub(super) fn mark_seen(&mut self, fp: &str) -> Result<bool, OpError> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO sms_seen(fingerprint, seen_ms) VALUES (?1, ?2)
                 ON CONFLICT(fingerprint) DO NOTHING",
            )?
            .execute(params![fp, unix_ms()])?;
        Ok(n == 1)
    }

    pub(super) fn append_once(&mut self, fp: &str, ev: &Prepared) -> Result<Reply, OpError> {
        if !self.mark_seen(fp)? {
            return Ok(Reply::MaybeRow(None));
        }
        Ok(Reply::MaybeRow(Some(self.insert_event(ev)?)))
    }

    pub(super) fn put_part(
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

    pub(super) fn complete_message(
        &mut self,
        key: &PartKey,
        ev: &Prepared,
    ) -> Result<Reply, OpError> {
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
}
