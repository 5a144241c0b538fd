//! Prometheus metrics of one broadcast instance (prefix `broadcast_`).
//!
//! A registry per application (not a global recorder) so several instances started in one
//! test process keep separate counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use shared::metrics::{MetricsRegistry, OutcomeLabel};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

pub struct Metrics {
    registry: MetricsRegistry,
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Connections refused (closed with 1013) because of a limit, by `reason`.
    pub connections_rejected: Family<ReasonLabel, Counter>,
    /// (connection, item) pairs being watched.
    pub subscriptions: Gauge,
    /// Items with a live NATS subscription in this instance.
    pub rooms: Gauge,
    /// Rooms opened (each a NATS subscription and a snapshot read).
    pub rooms_opened: Counter,
    /// Subscribes to an item recently found missing, answered without a room.
    pub missing_item_answers: Counter,
    /// Frames written to sockets, by `kind` (`event`, `snapshot`, `viewers`, `error`, `reply`,
    /// `private`, …).
    pub messages_out: Family<KindLabel, Counter>,
    /// Snapshots sent, by `reason` (`subscribe`, `lagged`, `gap`, `reconnect`).
    pub snapshots: Family<ReasonLabel, Counter>,
    /// Viewers that fell behind and got a fresh snapshot instead of their backlog.
    pub conflations: Counter,
    /// Bytes of frames queued for sockets and not yet written (all connections).
    pub queued_bytes: Gauge,
    /// Live events received from NATS.
    pub events_received: Counter,
    /// Live messages that were not a valid event (ignored).
    pub events_invalid: Counter,
    /// Client messages answered with an error frame, by `kind` (the error code).
    pub client_errors: Family<KindLabel, Counter>,
    /// Time from an event's receipt from NATS to its frame being written to a socket.
    pub fan_out_latency: Histogram,
    /// Socket sign-ins and their ends, by `outcome` (`authenticated`, `invalid_token`,
    /// `unavailable`, `expired`).
    pub auth: Family<OutcomeLabel, Counter>,
    /// Sockets signed in right now.
    pub authenticated: Gauge,
    /// Users with a private-events subscription in this instance.
    pub user_feeds: Gauge,
    /// Private messages received from NATS.
    pub private_received: Counter,
    /// Private messages that were not a JSON object with a string `type` (ignored).
    pub private_invalid: Counter,
    /// Private events a signed-in socket missed because its queue was full.
    pub private_dropped: Counter,
    /// The `messages_out{kind="event"}` series itself, resolved once: every session counts
    /// its events after each write, and a family lookup (lock and hash) per write showed up
    /// at 10,000 viewers.
    events_out: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = MetricsRegistry::with_prefix("broadcast");
        let connections = registry.gauge("connections", "Open WebSocket connections");
        let connections_rejected = registry.counters::<ReasonLabel>(
            "connections_rejected",
            "Connections closed with 1013 because of a limit",
        );
        let subscriptions =
            registry.gauge("subscriptions", "Items watched, summed over connections");
        let rooms = registry.gauge("rooms", "Items with a live NATS subscription");
        let rooms_opened = registry.counter(
            "rooms_opened",
            "Rooms opened (each a NATS subscription and a snapshot read)",
        );
        let missing_item_answers = registry.counter(
            "missing_item_answers",
            "Subscribes to an item recently found missing, answered without a room",
        );
        let messages_out =
            registry.counters::<KindLabel>("messages_out", "Frames written to sockets, by kind");
        let snapshots = registry.counters::<ReasonLabel>("snapshots", "Snapshots sent, by reason");
        let conflations = registry.counter(
            "conflations",
            "Lagging viewers sent a snapshot instead of their backlog",
        );
        let queued_bytes = registry.gauge("queued_bytes", "Bytes of frames queued for sockets");
        let events_received = registry.counter("events_received", "Live events received from NATS");
        let events_invalid = registry.counter(
            "events_invalid",
            "Live messages that were not a valid event",
        );
        let client_errors = registry.counters::<KindLabel>(
            "client_errors",
            "Client messages answered with an error frame, by code",
        );
        let fan_out_latency = registry.latency(
            "fan_out_latency_seconds",
            "Time from receiving an event to writing it to a socket",
        );
        let auth = registry
            .counters::<OutcomeLabel>("auth", "Socket sign-ins and their expiries, by outcome");
        let authenticated = registry.gauge("authenticated", "Sockets signed in");
        let user_feeds = registry.gauge(
            "user_feeds",
            "Users with a private-events subscription in this instance",
        );
        let private_received =
            registry.counter("private_received", "Private messages received from NATS");
        let private_invalid = registry.counter(
            "private_invalid",
            "Private messages that were not a JSON object with a string type",
        );
        let private_dropped = registry.counter(
            "private_dropped",
            "Private events a socket missed because its queue was full",
        );
        // Series that exist from the start, so dashboards and alerts see zeros, not gaps.
        for outcome in ["authenticated", "invalid_token", "unavailable", "expired"] {
            drop(auth.get_or_create(&OutcomeLabel { outcome }));
        }
        for kind in ["event", "snapshot", "viewers", "error", "reply", "private"] {
            drop(messages_out.get_or_create(&KindLabel { kind }));
        }
        for reason in ["subscribe", "lagged", "gap", "reconnect"] {
            drop(snapshots.get_or_create(&ReasonLabel { reason }));
        }
        for reason in ["per_ip", "total"] {
            drop(connections_rejected.get_or_create(&ReasonLabel { reason }));
        }
        let events_out = messages_out
            .get_or_create(&KindLabel { kind: "event" })
            .clone();
        Self {
            events_out,
            registry,
            connections,
            connections_rejected,
            subscriptions,
            rooms,
            rooms_opened,
            missing_item_answers,
            messages_out,
            snapshots,
            conflations,
            queued_bytes,
            events_received,
            events_invalid,
            client_errors,
            fan_out_latency,
            auth,
            authenticated,
            user_feeds,
            private_received,
            private_invalid,
            private_dropped,
        }
    }
}

impl Metrics {
    pub fn sent(&self, kind: &'static str, frames: u64) {
        if kind == "event" {
            self.events_out.inc_by(frames);
            return;
        }
        self.messages_out
            .get_or_create(&KindLabel { kind })
            .inc_by(frames);
    }

    pub fn snapshot(&self, reason: &'static str) {
        self.snapshots.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn rejected(&self, reason: &'static str) {
        self.connections_rejected
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn auth(&self, outcome: &'static str) {
        self.auth.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub fn client_error(&self, code: &'static str) {
        self.client_errors
            .get_or_create(&KindLabel { kind: code })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.registry.render()
    }
}
