//! What the writer is asked to do, and what it answers.

use tokio::sync::oneshot;

use super::JobRow;
use crate::store::envelope::Prepared;
use crate::store::error::StoreError;
use crate::store::types::{OutboxRow, PartKey, PartOutcome, StoreStats, StoredPart, Submitted};

/// Test hook body: SQL run on the write connection.
#[cfg(test)]
pub(crate) type ExecHook = Box<dyn Fn(&rusqlite::Connection) -> rusqlite::Result<()> + Send>;

/// What the writer is asked to do.
pub(crate) enum Request {
    Append(Prepared),
    AppendMany(Vec<Prepared>),
    Delete(Vec<u64>),
    SubmitJob(JobRow, Option<Prepared>),
    UpdateJob {
        job_id: i64,
        state: crate::proto::JobState,
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
    SetCampaignState(String, crate::proto::CampaignState),
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
    SetConsoleAuth(crate::store::types::ConsoleAuth),
}

impl Request {
    /// Whether the operation may be refused after it has written, so needs a savepoint.
    pub(super) fn needs_savepoint(&self) -> bool {
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
    pub(super) fn allowed_while_full(&self) -> bool {
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
pub(super) enum OpError {
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
