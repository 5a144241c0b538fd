//! The loss check: the event ids the load generator saw accepted against the ids archived in
//! PostgreSQL once the pipeline drained.
//!
//! A row the generator never saw accepted is not necessarily wrong: when a gateway is killed
//! while a bid is in flight, Redis may have accepted the bid although its answer never reached
//! the client. Such a row is traced back to its request (amounts are unique per item) and
//! reported as `answer_lost`; only a row that matches no request sent is a violation.

use crate::archive::{self, ArchivedBid};
use crate::open_loop::{Kind, Request};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// The outcome of the loss check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LossCheck {
    /// Bids answered `200 accepted` (distinct event ids).
    pub accepted: usize,
    /// Rows in `bids`.
    pub archived: usize,
    /// Accepted but not archived: lost.
    pub lost: usize,
    /// Archived but never seen accepted, whose request got no 2xx answer (the answer was lost
    /// with a killed gateway): the bid happened, the client just did not learn it.
    pub answer_lost: usize,
    /// Archived rows matching no request at all.
    pub unexplained: usize,
    /// Messages in the JetStream archive stream (`None` when it could not be read).
    pub stream_messages: Option<u64>,
    /// How long after the load stopped the archive held every accepted bid (`None`: never, within
    /// the drain bound).
    pub drained_after_ms: Option<f64>,
    /// A few lost event ids, for investigation.
    pub lost_examples: Vec<Uuid>,
    /// What the client was told for the archived bids it never saw accepted, per answer label
    /// (`503 unavailable`, `transport other`, …): a 503 here means the gateway reported
    /// "unavailable" for a bid Redis had in fact accepted.
    pub answer_lost_by_label: BTreeMap<String, usize>,
}

impl LossCheck {
    /// Compares the generator's record with the archive's rows; `items` maps an item index in
    /// the requests to its id.
    pub fn compare(requests: &[Request], items: &[String], rows: &[ArchivedBid]) -> Self {
        let accepted: HashSet<Uuid> = requests.iter().filter_map(|r| r.event_id).collect();
        let archived: HashSet<Uuid> = rows.iter().map(|r| r.event_id).collect();
        let mut lost: Vec<Uuid> = accepted.difference(&archived).copied().collect();
        lost.sort();
        // Bids sent without a 2xx answer, by (item id, amount).
        let unanswered: HashMap<(&str, i64), &Request> = requests
            .iter()
            .filter(|r| r.kind == Kind::Bid && !r.is_2xx())
            .filter_map(|r| Some(((items.get(r.item)?.as_str(), r.amount_cents), r)))
            .collect();
        let (mut answer_lost, mut unexplained) = (0, 0);
        let mut answer_lost_by_label = BTreeMap::new();
        for row in rows.iter().filter(|r| !accepted.contains(&r.event_id)) {
            if let Some(request) = unanswered.get(&(row.item_id.as_str(), row.amount_cents)) {
                answer_lost += 1;
                *answer_lost_by_label.entry(request.label()).or_default() += 1;
            } else {
                unexplained += 1;
            }
        }
        Self {
            accepted: accepted.len(),
            archived: archived.len(),
            lost: lost.len(),
            answer_lost,
            unexplained,
            stream_messages: None,
            drained_after_ms: None,
            lost_examples: lost.into_iter().take(5).collect(),
            answer_lost_by_label,
        }
    }

    /// Waits (at most `bound`) until PostgreSQL holds every accepted bid of `requests`, then
    /// compares them with its rows of `items`; `drained_after_ms` counts from `since`.
    pub async fn after_drain(
        database_url: &str,
        requests: &[Request],
        items: &[String],
        bound: Duration,
        since: Instant,
    ) -> Self {
        let accepted: Vec<Uuid> = requests.iter().filter_map(|r| r.event_id).collect();
        let (deadline, mut drained_after_ms) = (Instant::now() + bound, None);
        while drained_after_ms.is_none() && Instant::now() < deadline {
            let archived = archive::count_archived(database_url, Some(&accepted)).await;
            if archived.is_ok_and(|n| n >= accepted.len()) {
                drained_after_ms = Some(since.elapsed().as_secs_f64() * 1000.0);
            } else {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        // Rows still arriving for bids whose answer was lost are relayed by now too (they were
        // in the outbox with the accepted ones), so one read of the table is the final state.
        let rows = archive::archived_bids(database_url).await;
        let mut rows = rows.unwrap_or_else(|e| {
            tracing::error!(error = %format!("{e:#}"), "cannot read the archive");
            Vec::new()
        });
        rows.retain(|r| items.contains(&r.item_id));
        let mut check = Self::compare(requests, items, &rows);
        check.drained_after_ms = drained_after_ms;
        check
    }

    /// Whether the archive holds exactly the accepted bids (plus bids whose answer was lost).
    pub fn holds(&self) -> bool {
        self.lost == 0 && self.unexplained == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(amount_cents: i64, status: Option<u16>) -> Request {
        Request::bid(0.0, 0, amount_cents, status, 1.0)
    }

    fn row(event_id: Uuid, amount_cents: i64) -> ArchivedBid {
        ArchivedBid {
            event_id,
            item_id: "a".into(),
            amount_cents,
        }
    }

    #[test]
    fn an_accepted_bid_missing_from_the_archive_is_lost() {
        let requests = [request(100, Some(200)), request(101, Some(200))];
        let rows = [row(requests[0].event_id.unwrap(), 100)];
        let check = LossCheck::compare(&requests, &["a".into()], &rows);
        assert_eq!((check.accepted, check.archived, check.lost), (2, 1, 1));
        assert_eq!(check.lost_examples, vec![requests[1].event_id.unwrap()]);
        assert!(!check.holds());
    }

    #[test]
    fn a_row_for_a_bid_whose_answer_was_lost_is_explained_but_a_stranger_is_not() {
        let requests = [request(100, Some(200)), request(101, None)];
        let items = ["a".to_owned()];
        let accepted = requests[0].event_id.unwrap();
        let mut rows = vec![row(accepted, 100), row(Uuid::now_v7(), 101)];
        let check = LossCheck::compare(&requests, &items, &rows);
        let counts = (check.lost, check.answer_lost, check.unexplained);
        assert_eq!(counts, (0, 1, 0));
        assert_eq!(
            check.answer_lost_by_label.get("transport connect"),
            Some(&1)
        );
        assert!(check.holds());
        rows.push(row(Uuid::now_v7(), 999));
        let check = LossCheck::compare(&requests, &items, &rows);
        assert_eq!(check.unexplained, 1);
        assert!(!check.holds());
    }
}
