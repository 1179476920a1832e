//! Where the agent's events go: committed to the store's outbox first, then the publish pump
//! is woken to send them.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;

use crate::store::{EventClass, NewEvent, OutboxRow, Store, StoreError};

/// A cheap handle to record events durably and wake the publisher.
#[derive(Clone)]
pub struct Events {
    store: Store,
    wake: Arc<Notify>,
    jobs: Arc<Notify>,
}

impl Events {
    /// Events into `store`; `wake` is notified after each commit.
    pub fn new(store: Store, wake: Arc<Notify>) -> Self {
        Self {
            store,
            wake,
            jobs: Arc::new(Notify::new()),
        }
    }

    /// The notifier the job runners (the SMS sender) wait on.
    pub fn jobs_wake(&self) -> Arc<Notify> {
        self.jobs.clone()
    }

    /// Tells the job runners that a job was queued.
    pub fn job_queued(&self) {
        self.jobs.notify_one();
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The notifier the publish pump waits on.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Tells the pump that rows were committed by someone else (a job update with an event).
    pub fn committed(&self) {
        self.wake.notify_one();
    }

    /// Commits an event and wakes the pump. Returns only once the event is durable.
    pub async fn emit(
        &self,
        event_type: crate::proto::EventType,
        class: EventClass,
        body: Value,
    ) -> Result<OutboxRow, StoreError> {
        let row = self
            .store
            .append(NewEvent::new(event_type, class, body))
            .await?;
        self.wake.notify_one();
        Ok(row)
    }

    /// Raises an `alarm` event; failures are logged (an alarm must never take anything down).
    pub async fn alarm(&self, code: &str, message: &str, slot: Option<u16>) {
        if code == "disk-full" && self.store.health().borrow().full {
            // The store raised it itself when it went into full mode (and says when it ends).
            tracing::debug!(%message, ?slot, "disk full (already alarmed)");
            return;
        }
        match slot {
            Some(slot) => tracing::error!(%code, slot, "alarm: {message}"),
            None => tracing::error!(%code, "alarm: {message}"),
        }
        let body = serde_json::to_value(crate::proto::Alarm {
            code,
            message,
            slot,
        })
        .unwrap_or_default();
        if let Err(e) = self
            .emit(crate::proto::EventType::Alarm, EventClass::Critical, body)
            .await
        {
            tracing::error!(%code, error = %e, "alarm could not be stored");
        }
    }
}
