//! Publishing stored notifications on core NATS `<prefix>.user.<user_id>`, where each
//! broadcast instance that has a socket signed in as that user forwards them to it.
//!
//! Core NATS rather than JetStream: a private frame is a live hint about state the API serves
//! (`GET /api/v1/me/notifications` holds every one), like the live price events, so it is
//! published once, after its row is committed, and never waited for.

use crate::metrics::Metrics;
use crate::notifications::Notification;
use shared::subjects::Subjects;
use std::sync::Arc;

#[derive(Clone)]
pub struct Publisher {
    nats: async_nats::Client,
    subjects: Subjects,
    metrics: Arc<Metrics>,
}

impl Publisher {
    pub fn new(nats: async_nats::Client, subjects: Subjects, metrics: Arc<Metrics>) -> Self {
        Self {
            nats,
            subjects,
            metrics,
        }
    }

    /// Publishes each notification to its user's subject, in the order given (oldest first).
    /// A failure is counted and logged, never retried: the row is already stored.
    #[tracing::instrument(name = "nats.publish_notifications", skip_all, fields(count = notes.len()))]
    pub async fn publish(&self, notes: &[Notification]) {
        for note in notes {
            let subject = self.subjects.user(&note.user_id);
            match self.nats.publish(subject, note.frame().into()).await {
                Ok(()) => {
                    self.metrics.notifications_published.inc();
                }
                Err(e) => {
                    self.metrics.notification_publish_failures.inc();
                    tracing::debug!(error = %e, user_id = %note.user_id, "notification not published");
                }
            }
        }
        if !notes.is_empty() {
            // Sent now rather than whenever the client's buffer next fills: these are live.
            if let Err(e) = self.nats.flush().await {
                tracing::debug!(error = %e, "notifications not flushed");
            }
        }
    }
}
