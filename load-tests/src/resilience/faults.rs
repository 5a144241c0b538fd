//! The components the experiment crashes, in the order the issue lists them, and what each
//! one's outage is expected to do to the write path.

use serde::Serialize;

/// One component to kill and restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// The NATS server (core NATS and JetStream).
    Nats,
    /// The PostgreSQL server (the read model).
    Postgres,
    /// The archival worker.
    Worker,
    /// The broadcast service (the viewer's WebSocket drops).
    Broadcast,
    /// One of the two gateway instances (the second one).
    Gateway,
    /// The Redis server (the write path itself).
    Redis,
}

impl Fault {
    /// The default sequence: write path last, so the earlier faults are measured on a cluster
    /// whose Redis has never restarted.
    pub const ALL: [Fault; 6] = [
        Fault::Nats,
        Fault::Postgres,
        Fault::Worker,
        Fault::Broadcast,
        Fault::Gateway,
        Fault::Redis,
    ];

    /// The flag spelling, also used in the report.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Nats => "nats",
            Fault::Postgres => "postgres",
            Fault::Worker => "worker",
            Fault::Broadcast => "broadcast",
            Fault::Gateway => "gateway",
            Fault::Redis => "redis",
        }
    }

    /// Whether the design promises that bids keep being accepted while this component is down:
    /// a bid needs only Redis and a live gateway (NATS, PostgreSQL, the worker and the
    /// broadcast service are behind the outbox or off the write path).
    pub fn bids_unaffected(self) -> bool {
        !matches!(self, Fault::Gateway | Fault::Redis)
    }

    /// What the outage should look like, for the report's notes.
    pub fn expectation(self) -> &'static str {
        match self {
            Fault::Nats => {
                "bids accepted (outbox waits in Redis); viewers and archive resume after restart"
            }
            Fault::Postgres => "bids accepted; the worker retries and the archive catches up",
            Fault::Worker => "bids accepted; JetStream holds the backlog until the worker returns",
            Fault::Broadcast => "bids accepted; the viewer reconnects after restart",
            Fault::Gateway => "the other instance keeps serving; the killed one refuses",
            Fault::Redis => "fast 503s (never timeouts) until Redis returns",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_fault_parses_from_its_report_name_and_only_two_may_refuse_bids() {
        for fault in Fault::ALL {
            assert_eq!(Fault::from_str(fault.name(), false), Ok(fault));
        }
        let refusing = Fault::ALL.into_iter().filter(|f| !f.bids_unaffected());
        assert_eq!(refusing.collect::<Vec<_>>(), [Fault::Gateway, Fault::Redis]);
    }
}
