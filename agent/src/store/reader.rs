//! Read-only queries, run on reader connections (and a few by the writer inside its
//! transaction). Readers see committed data only, which is all any caller was told about.

use crate::proto::{CampaignState, JobState, Verb};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use super::error::StoreError;
use super::types::{Campaign, Job, OutboxRow, PartKey, StoredPart};

/// Decodes a JSON column that must hold a value.
pub(crate) fn parse_json(s: &str) -> Result<Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Decode(e.to_string()))
}

/// Decodes a nullable JSON column.
pub(crate) fn parse_json_opt(s: Option<&str>) -> Result<Option<Value>, StoreError> {
    s.map(parse_json).transpose()
}

/// Outbox rows with seq > `after_seq`, ascending, at most `limit`, leaving out those in
/// `acked` (acknowledged, delete pending).
pub(crate) fn pending(
    conn: &Connection,
    after_seq: u64,
    limit: usize,
    acked: &Mutex<BTreeSet<u64>>,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, id, type, payload FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut after = i64::try_from(after_seq).unwrap_or(i64::MAX);
    let page = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    // A page of nothing but acknowledged rows must not end the read early.
    loop {
        let rows = stmt
            .query_map(params![after, page], |r| {
                Ok(OutboxRow {
                    seq: r.get::<_, i64>(0)? as u64,
                    id: r.get(1)?,
                    event_type: r.get(2)?,
                    payload: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let fetched = rows.len();
        let Some(last) = rows.last().map(|r| r.seq) else {
            return Ok(out);
        };
        {
            let acked = acked.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(rows.into_iter().filter(|r| !acked.contains(&r.seq)));
        }
        if !out.is_empty() || (fetched as i64) < page {
            out.truncate(limit);
            return Ok(out);
        }
        after = last as i64;
    }
}

const JOB_COLUMNS: &str =
    "job_id, request_id, verb, payload, state, slot, outcome, created_ms, updated_ms";

/// Raw job columns, decoded after the statement is done.
type JobColumns = (
    i64,
    String,
    Verb,
    String,
    JobState,
    Option<u16>,
    Option<String>,
    i64,
    i64,
);

fn job_columns(r: &Row<'_>) -> rusqlite::Result<JobColumns> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn decode_job(c: JobColumns) -> Result<Job, StoreError> {
    let (job_id, request_id, verb, payload, state, slot, outcome, created_ms, updated_ms) = c;
    Ok(Job {
        job_id,
        request_id,
        verb,
        payload: parse_json(&payload)?,
        state,
        slot,
        outcome: parse_json_opt(outcome.as_deref())?,
        created_ms,
        updated_ms,
    })
}

/// The job whose `column` equals `value` (a unique column: job_id, request_id).
fn one_job(
    conn: &Connection,
    column: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<Job>, StoreError> {
    let c = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE {column} = ?1"
        ))?
        .query_row([value], job_columns)
        .optional()?;
    c.map(decode_job).transpose()
}

/// One job by id.
pub(crate) fn job(conn: &Connection, job_id: i64) -> Result<Option<Job>, StoreError> {
    one_job(conn, "job_id", &job_id)
}

/// The job of a request id.
pub(crate) fn job_by_request(
    conn: &Connection,
    request_id: &str,
) -> Result<Option<Job>, StoreError> {
    one_job(conn, "request_id", &request_id)
}

/// Jobs in `state`, oldest first.
pub(crate) fn jobs_in_state(
    conn: &Connection,
    state: JobState,
    limit: usize,
) -> Result<Vec<Job>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE state = ?1 ORDER BY job_id LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![state.as_str(), limit], job_columns)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(decode_job).collect()
}

/// Whether a receipt is recorded (see `Store::append_once`).
pub(crate) fn receipt_pending(conn: &Connection, receipt: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM sms_seen WHERE fingerprint = ?1")?
        .query_row([receipt], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A counter's value (0 when it was never set).
pub(crate) fn counter(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM counters WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

type PartColumns = (u16, String, u16, u8, u8, String, i64);

fn part_columns(r: &Row<'_>) -> rusqlite::Result<PartColumns> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn decode_part(c: PartColumns) -> Result<StoredPart, StoreError> {
    let (slot, sender, reference, total, seq, json, received_ms) = c;
    Ok(StoredPart {
        slot,
        sender,
        reference,
        total,
        seq,
        part: parse_json(&json)?,
        received_ms,
    })
}

const PART_COLUMNS: &str = "slot, sender, reference, total, seq, part_json, received_ms";

/// The stored parts of one message, in seq order.
pub(crate) fn load_parts(conn: &Connection, key: &PartKey) -> Result<Vec<StoredPart>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PART_COLUMNS} FROM sms_parts
         WHERE slot = ?1 AND sender = ?2 AND reference = ?3 AND total = ?4 ORDER BY seq"
    ))?;
    let rows = stmt
        .query_map(
            params![key.slot, key.sender, key.reference, key.total],
            part_columns,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(decode_part).collect()
}

/// Messages whose parts pass `having` (SQL over `COUNT(*)`, `MAX(received_ms)`, `total`
/// and `?1`), with their parts in seq order.
fn part_groups(
    conn: &Connection,
    having: &str,
    arg: i64,
) -> Result<Vec<(PartKey, Vec<StoredPart>)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PART_COLUMNS} FROM sms_parts
         JOIN (SELECT slot AS g_slot, sender AS g_sender, reference AS g_ref, total AS g_total
               FROM sms_parts GROUP BY slot, sender, reference, total HAVING {having})
           ON slot = g_slot AND sender = g_sender AND reference = g_ref AND total = g_total
         ORDER BY slot, sender, reference, total, seq"
    ))?;
    let rows = stmt
        .query_map([arg], part_columns)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut groups: BTreeMap<PartKey, Vec<StoredPart>> = BTreeMap::new();
    for c in rows {
        let part = decode_part(c)?;
        groups.entry(part.key()).or_default().push(part);
    }
    Ok(groups.into_iter().collect())
}

/// Incomplete messages whose newest part arrived before `older_than_ms`.
pub(crate) fn stale_parts(
    conn: &Connection,
    older_than_ms: i64,
) -> Result<Vec<(PartKey, Vec<StoredPart>)>, StoreError> {
    part_groups(
        conn,
        "COUNT(*) < total AND MAX(received_ms) < ?1",
        older_than_ms,
    )
}

/// Messages with all their parts present (left by a crash between `put_part` and
/// `complete_message`).
pub(crate) fn complete_parts(
    conn: &Connection,
) -> Result<Vec<(PartKey, Vec<StoredPart>)>, StoreError> {
    part_groups(conn, "COUNT(*) >= total AND ?1 = ?1", 0)
}

/// One campaign.
pub(crate) fn campaign(conn: &Connection, id: &str) -> Result<Option<Campaign>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT campaign_id, request_id, state, spec, created_ms, updated_ms
             FROM campaigns WHERE campaign_id = ?1",
        )?
        .query_row([id], campaign_columns)
        .optional()?;
    row.map(decode_campaign).transpose()
}

/// All campaigns, newest first.
pub(crate) fn campaigns(conn: &Connection) -> Result<Vec<Campaign>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT campaign_id, request_id, state, spec, created_ms, updated_ms
             FROM campaigns ORDER BY created_ms DESC",
        )?
        .query_map([], campaign_columns)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(decode_campaign).collect()
}

type CampaignColumns = (String, String, CampaignState, String, i64, i64);

fn campaign_columns(r: &Row<'_>) -> rusqlite::Result<CampaignColumns> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn decode_campaign(c: CampaignColumns) -> Result<Campaign, StoreError> {
    let (campaign_id, request_id, state, spec, created_ms, updated_ms) = c;
    Ok(Campaign {
        campaign_id,
        request_id,
        state,
        spec: parse_json(&spec)?,
        created_ms,
        updated_ms,
    })
}

/// A campaign's recipient jobs counted by state (its command job is not counted).
pub(crate) fn campaign_counts(
    conn: &Connection,
    id: &str,
) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
    let mut out = std::collections::BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT state, COUNT(*) FROM jobs WHERE campaign_id = ?1 AND verb = ?2 GROUP BY state",
    )?;
    let mut rows = stmt.query(params![id, Verb::SmsSend])?;
    while let Some(r) = rows.next()? {
        out.insert(r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64);
    }
    Ok(out)
}

/// Queued recipient jobs of a campaign.
pub(crate) fn campaign_queued(
    conn: &Connection,
    id: &str,
    limit: usize,
) -> Result<Vec<Job>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE campaign_id = ?1 AND state = ?3 AND verb = ?4
             ORDER BY job_id LIMIT ?2"
        ))?
        .query_map(
            params![id, limit, JobState::Queued, Verb::SmsSend],
            job_columns,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(decode_job).collect()
}

/// The next jobs to send (see `Store::next_jobs`).
pub(crate) fn next_jobs(
    conn: &Connection,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<Job>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE state = ?3 AND verb = ?4 AND not_before_ms <= ?1
               AND (campaign_id IS NULL
                    OR campaign_id IN (SELECT campaign_id FROM campaigns WHERE state = ?5))
             ORDER BY priority DESC, job_id LIMIT ?2"
        ))?
        .query_map(
            params![
                now_ms,
                limit,
                JobState::Queued,
                Verb::SmsSend,
                CampaignState::Running
            ],
            job_columns,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(decode_job).collect()
}

/// The console's failed-login guard (see `Store::console_auth`).
pub(crate) fn console_auth(conn: &Connection) -> Result<super::types::ConsoleAuth, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT failures, lockouts, locked_until_ms FROM console_auth WHERE id = 1",
        )?
        .query_row([], |r| {
            Ok(super::types::ConsoleAuth {
                failures: r.get(0)?,
                lockouts: r.get(1)?,
                locked_until_ms: r.get(2)?,
            })
        })
        .optional()?;
    Ok(row.unwrap_or_default())
}
