//! What the uplink needs of an MQTT client, so one test can drive the uplink without a broker.

use std::future::Future;

use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Publish, QoS};

/// The client side of MQTT as the uplink uses it: a stream of events and non-blocking requests
/// (`false`: the client's request queue is full now; the uplink keeps the request and tries
/// again after the next event).
pub trait Transport: Send + 'static {
    /// The next event from the connection (connecting again after an error).
    fn poll(&mut self) -> impl Future<Output = Result<Event, ConnectionError>> + Send;
    /// Queues a QoS 1 publish.
    fn publish(&self, topic: String, retain: bool, payload: Vec<u8>) -> bool;
    /// Queues the PUBACK of a received command.
    fn ack(&self, p: &Publish) -> bool;
    /// Queues a QoS 1 subscription.
    fn subscribe(&self, filter: String) -> bool;
    /// Queues a DISCONNECT.
    fn disconnect(&self);
    /// Forgets the client's in-memory copies of unacknowledged publishes (the store is the
    /// source of truth; the uplink sends again from the oldest unacknowledged row).
    fn clear_pending(&mut self);
}

/// rumqttc's client and event loop.
pub struct Mqtt {
    client: AsyncClient,
    eventloop: EventLoop,
}

impl Mqtt {
    /// A client for these options with a request queue of `cap`.
    pub fn new(options: rumqttc::MqttOptions, cap: usize) -> Self {
        let (client, eventloop) = AsyncClient::new(options, cap);
        Self { client, eventloop }
    }
}

impl Transport for Mqtt {
    fn poll(&mut self) -> impl Future<Output = Result<Event, ConnectionError>> + Send {
        self.eventloop.poll()
    }

    fn publish(&self, topic: String, retain: bool, payload: Vec<u8>) -> bool {
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "publish not queued yet");
                false
            }
        }
    }

    fn ack(&self, p: &Publish) -> bool {
        match self.client.try_ack(p) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "command ack not queued yet");
                false
            }
        }
    }

    fn subscribe(&self, filter: String) -> bool {
        self.client.try_subscribe(filter, QoS::AtLeastOnce).is_ok()
    }

    fn disconnect(&self) {
        let _ = self.client.try_disconnect();
    }

    fn clear_pending(&mut self) {
        self.eventloop.pending.clear();
    }
}
