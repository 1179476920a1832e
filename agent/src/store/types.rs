//! The values that go in and out of the store.

use crate::proto::{CampaignState, JobState, Verb};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// File name of the database inside the data directory.
pub const DB_FILE_NAME: &str = "gsmgw.db";

/// Rows an `alarm` event may use beyond `max_rows`, so the full-store alarm itself is recorded.
pub const ALARM_RESERVE_ROWS: u64 = 1000;

/// Payload bytes an `alarm` event may use beyond `max_bytes`.
pub const ALARM_RESERVE_BYTES: u64 = 1 << 20;

/// Default [`StoreOptions::job_retention`]: 30 days.
pub const DEFAULT_JOB_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default [`StoreOptions::receipt_retention`]: 30 days (a SIM never keeps a message longer
/// without the agent retrying its delete).
pub const DEFAULT_RECEIPT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Where the store lives and how big its outbox may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The SQLite database file (its folder is created).
    pub path: PathBuf,
    /// Outbox bound in rows.
    pub max_rows: u64,
    /// Outbox bound in payload bytes.
    pub max_bytes: u64,
    /// Most queued operations committed in one transaction.
    pub batch_max: usize,
    /// Finished jobs (and campaigns) are deleted this long after their last change; their
    /// `request_id` is forgotten with them.
    pub job_retention: Duration,
    /// Receipts of taken SMS whose delete was never confirmed are forgotten after this long.
    pub receipt_retention: Duration,
    /// Jobs kept at most: beyond, the oldest finished ones go first; with none finished, new
    /// commands are refused ([`crate::store::StoreError::Full`]).
    pub max_jobs: u64,
    /// How often retention and space reclaiming run.
    pub housekeeping_every: Duration,
    /// How often the writer looks at the disk (free space, full-mode recovery, retries).
    pub tick: Duration,
}

impl StoreOptions {
    /// Defaults (1 000 000 rows, 256 MiB, batches of 1024, jobs kept 30 days and at most
    /// 500 000, housekeeping every 10 minutes) for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_rows: 1_000_000,
            max_bytes: 256 << 20,
            batch_max: 1024,
            job_retention: DEFAULT_JOB_RETENTION,
            receipt_retention: DEFAULT_RECEIPT_RETENTION,
            max_jobs: 500_000,
            housekeeping_every: Duration::from_secs(600),
            tick: Duration::from_secs(1),
        }
    }

    /// Defaults for `data_dir/gsmgw.db`.
    pub fn in_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join(DB_FILE_NAME))
    }
}

/// Whether an event may be dropped when the outbox is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventClass {
    /// Signal changes, modem state: dropped oldest-first at the bound.
    Telemetry,
    /// SMS, calls, command results, alarms: never dropped; refused at the bound instead.
    Critical,
}

impl EventClass {
    /// Value of the `class` column.
    pub(crate) fn code(self) -> i64 {
        match self {
            EventClass::Telemetry => 0,
            EventClass::Critical => 1,
        }
    }

    /// Index into per-class totals.
    pub(crate) fn index(self) -> usize {
        self.code() as usize
    }
}

/// An event to append to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The `type` of the event and last part of its topic: "modem", "sms-received", "alarm" …
    pub event_type: String,
    /// Whether it may be dropped at the bound.
    pub class: EventClass,
    /// Fields beside the envelope; envelope keys here are ignored.
    pub body: Map<String, Value>,
}

impl NewEvent {
    /// An event from a JSON object body (anything else becomes an empty body).
    pub fn new(event_type: impl Into<String>, class: EventClass, body: Value) -> Self {
        let body = match body {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Self {
            event_type: event_type.into(),
            class,
            body,
        }
    }
}

/// One stored event, as it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Per-gateway sequence number: monotonic, never reused, survives restarts.
    pub seq: u64,
    /// UUID v7 of the event.
    pub id: String,
    /// Event type (topic suffix).
    pub event_type: String,
    /// The full JSON envelope.
    pub payload: Vec<u8>,
}

/// Figures about the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Rows in the outbox.
    pub rows: u64,
    /// Payload bytes in the outbox.
    pub bytes: u64,
    /// Of `rows`, how many are telemetry.
    pub telemetry_rows: u64,
    /// Lowest seq still in the outbox.
    pub oldest_seq: Option<u64>,
    /// Seq the next event will get.
    pub next_seq: u64,
    /// Jobs counted by state.
    pub jobs_by_state: BTreeMap<String, u64>,
    /// Stored multipart SMS parts.
    pub sms_parts: u64,
    /// Telemetry rows dropped at the bound, ever.
    pub dropped_telemetry: u64,
    /// Transactions the writer committed since open (group commit: far fewer than operations).
    pub transactions: u64,
    /// Operations the writer committed (or refused) since open.
    pub operations: u64,
    /// Jobs stored (all states).
    pub jobs: u64,
    /// Receipts of taken SMS whose delete is not yet confirmed.
    pub receipts: u64,
    /// Rows acknowledged by the broker whose delete has not committed yet.
    pub acked_undeleted: u64,
    /// Finished jobs deleted by retention since open.
    pub pruned_jobs: u64,
    /// The disk is (nearly) full: new data is refused.
    pub disk_full: bool,
    /// Size of the database file and its WAL, in bytes.
    pub file_bytes: u64,
}

/// Whether the store takes new data; watch it with [`crate::store::Store::health`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageHealth {
    /// The disk is full or nearly: new data is refused until space is freed.
    pub full: bool,
    /// Why, while full.
    pub reason: Option<String>,
}

/// A command from central to record as a job.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The command's `request_id`; a repeated one is never executed twice.
    pub request_id: String,
    /// The command verb.
    pub verb: Verb,
    /// The command's parameters.
    pub payload: Value,
    /// The modem slot it targets, if any.
    pub slot: Option<u16>,
    /// Initial state: `Queued` or `Done`.
    pub state: JobState,
    /// Outcome, when the job is done at once.
    pub outcome: Option<Value>,
    /// An event appended in the same transaction.
    pub event: Option<NewEvent>,
}

/// What `submit_job` found.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// A new job was recorded.
    New {
        /// Its id.
        job_id: i64,
        /// The event appended with it.
        event: Option<OutboxRow>,
    },
    /// The request_id was seen before; nothing was changed.
    Existing {
        /// The earlier job.
        job_id: i64,
        /// Its verb.
        verb: Verb,
        /// Its state now.
        state: JobState,
        /// Its outcome, if any.
        outcome: Option<Value>,
    },
}

/// A recorded job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Store-assigned id.
    pub job_id: i64,
    /// Central's request id.
    pub request_id: String,
    /// The command verb.
    pub verb: Verb,
    /// The command's parameters.
    pub payload: Value,
    /// Current state.
    pub state: JobState,
    /// Target slot.
    pub slot: Option<u16>,
    /// Outcome once known.
    pub outcome: Option<Value>,
    /// When it was recorded (unix ms).
    pub created_ms: i64,
    /// When its state last changed (unix ms).
    pub updated_ms: i64,
}

/// Identifies one multipart SMS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartKey {
    /// Modem slot it arrived on.
    pub slot: u16,
    /// Originating address.
    pub sender: String,
    /// Concatenation reference number.
    pub reference: u16,
    /// Number of parts.
    pub total: u8,
}

impl fmt::Display for PartKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "slot {} ref {} total {} from {}",
            self.slot, self.reference, self.total, self.sender
        )
    }
}

/// One part of a multipart SMS, kept until the whole message is assembled.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPart {
    /// Modem slot.
    pub slot: u16,
    /// Originating address.
    pub sender: String,
    /// Concatenation reference number.
    pub reference: u16,
    /// Number of parts.
    pub total: u8,
    /// This part's number, 1-based.
    pub seq: u8,
    /// The decoded part, as the caller wants it back.
    pub part: Value,
    /// When it arrived (unix ms).
    pub received_ms: i64,
}

impl StoredPart {
    /// The part's decoded fields (defaults for a row that lacks them).
    pub fn meta(&self) -> crate::proto::events::PartMeta {
        serde_json::from_value(self.part.clone()).unwrap_or_default()
    }

    /// The message this part belongs to.
    pub fn key(&self) -> PartKey {
        PartKey {
            slot: self.slot,
            sender: self.sender.clone(),
            reference: self.reference,
            total: self.total,
        }
    }
}

/// What `put_part` did.
#[derive(Debug, Clone, PartialEq)]
pub enum PartOutcome {
    /// Stored; `have` parts of the message are now present.
    Stored {
        /// Parts present.
        have: u8,
    },
    /// That part was already stored; nothing changed.
    Duplicate,
    /// All parts are present (in seq order); finish with `complete_message`.
    Complete(Vec<StoredPart>),
}

/// A campaign to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCampaign {
    /// The central server's id for it.
    pub campaign_id: String,
    /// Its specification (text, options), as accepted.
    pub spec: Value,
    /// Priority of its messages (higher first).
    pub priority: i64,
    /// Not sent before this time (unix ms; 0 = now).
    pub not_before_ms: i64,
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    /// Id.
    pub campaign_id: String,
    /// The command's request_id.
    pub request_id: String,
    /// running, paused, cancelled, done.
    pub state: CampaignState,
    /// Its specification.
    pub spec: Value,
    /// Created (unix ms).
    pub created_ms: i64,
    /// Last change (unix ms).
    pub updated_ms: i64,
}

/// The console's failed-login guard as stored (see `console::auth::LoginGuard`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsoleAuth {
    /// Failed logins in a row since the last lockout or success.
    pub failures: u32,
    /// Lockouts since the last success (each doubles the next).
    pub lockouts: u32,
    /// End of the current lockout (unix ms; 0 = none).
    pub locked_until_ms: i64,
}
