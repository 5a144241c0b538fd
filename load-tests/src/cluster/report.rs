//! The `cluster` experiment's README: one table row per scenario, then what failed.

use super::ClusterResult;
use crate::report::{markdown_table, violations_section};

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.0}"))
}

/// The report for people.
pub fn markdown(result: &ClusterResult) -> String {
    let rows: Vec<Vec<String>> = result
        .scenarios
        .iter()
        .map(|s| {
            let failed: usize = s
                .answers
                .iter()
                .filter(|(label, _)| !label.starts_with('2'))
                .map(|(_, n)| n)
                .sum();
            let events: u64 = s
                .viewers
                .iter()
                .map(|v| v.events_after_mark.max(v.events))
                .sum();
            vec![
                format!("{:?}", s.scenario),
                s.bids_sent.to_string(),
                s.accepted.to_string(),
                failed.to_string(),
                ms(s.unavailable_ms),
                ms(s.slowest_failure_ms),
                s.loss.lost.to_string(),
                s.lost_in_redis.to_string(),
                s.loss.answer_lost.to_string(),
                events.to_string(),
                if s.violations.is_empty() {
                    "passed".into()
                } else {
                    "FAILED".into()
                },
            ]
        })
        .collect();
    let mut text = format!(
        "# Cluster: the guarantees on a 3+3 Redis Cluster, 3 NATS nodes and 2 of each service\n\n\
         Run {} · {} bids/s per load · phases of {} s · {} items per scenario · Redis deadline {} ms · \
         `make cluster-experiment` (`load-tests cluster`).\n\n",
        result.started_at, result.rate, result.phase_secs, result.items, result.redis_timeout_ms
    );
    text.push_str(&markdown_table(
        "scenario | bids | accepted | failed answers | failing for (ms after the fault) | slowest failure (ms) | lost (not archived) | lost in Redis | archived, answer lost | viewer events | checks",
        &rows,
    ));
    for s in &result.scenarios {
        if let Some(d) = &s.durable {
            text.push_str(&format!(
                "\n{:?} with `DURABLE_ACCEPT=true` (same failover, its own items): {} bids, {} \
                 accepted, lost {} (not archived) and {} (gone from Redis); answers {:?}.\n",
                s.scenario, d.bids_sent, d.accepted, d.loss.lost, d.lost_in_redis, d.answers
            ));
        }
        if let Some(p) = s.promoted_after_ms {
            text.push_str(&format!(
                "Replica promoted {p:.0} ms after the master was killed.\n"
            ));
        }
        text.push_str(&format!("\n{:?} answers: {:?}\n", s.scenario, s.answers));
    }
    if result.violations.is_empty() {
        text.push_str("\nEvery check passed.\n");
    }
    text + &violations_section(&result.violations)
}
