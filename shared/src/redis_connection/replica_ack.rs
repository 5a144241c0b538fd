//! Durable accept (`--durable-accept`): a script's reply waits until one replica has its writes.
//!
//! Redis replicates asynchronously, so a bid the master applied and answered can vanish when
//! the master dies before its replica read it, and the promoted replica never heard of it.
//! `WAIT 1 <ms>` blocks the calling connection until at least one replica acknowledged every
//! write sent on that connection before it; answering the bid only after it makes an
//! accepted bid survive a failover (short of the replica dying too).
//!
//! [`ReplicaAcked`] wraps the connection of one call: after each successful `EVAL`/`EVALSHA`
//! it sends `WAIT` on the connection the script went to (standalone: the one multiplexed
//! connection; cluster: the connection of the master owning the script's first key's slot,
//! which redis-rs keeps one of per node). No replica in time, or a failed `WAIT`, is an I/O
//! timeout: the caller's classification makes it "outcome unknown" (the write is on the master
//! and may or may not survive), never "not applied".
//!
//! The cost is a replication round trip per write, and `WAIT` holds the shared connection while
//! it blocks (Redis runs nothing else from a blocked client), so writes on one connection are
//! serialised behind each other's acknowledgements; `make bench-cluster` measures it.
//! Known gap: if the node's connection is replaced between the script and the `WAIT` (it
//! dropped and redis-rs reconnected), the new connection has written nothing and `WAIT`
//! answers at once.

use super::RedisConnection;
use futures::FutureExt;
use redis::aio::ConnectionLike;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Arg, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::time::Duration;

/// Replicas that must acknowledge a write (the one replica of each master in the local
/// cluster; ElastiCache's node groups have one or more).
const REPLICAS: u32 = 1;

/// The connection of one script call, with the `WAIT` after it.
pub(crate) struct ReplicaAcked {
    conn: RedisConnection,
    timeout: Duration,
    /// Bound of the `WAIT` command's own round trip: `timeout` plus an eighth of the call's
    /// deadline, so the whole call ends before the caller's outer deadline fires.
    bound: Duration,
}

impl ReplicaAcked {
    pub(crate) fn new(conn: RedisConnection, timeout: Duration, deadline: Duration) -> Self {
        Self {
            conn,
            timeout,
            bound: timeout + deadline / 8,
        }
    }

    /// `WAIT` on the node `script` ran on; `Ok` when enough replicas acknowledged.
    async fn wait_for_replica(&mut self, script: &Cmd) -> RedisResult<()> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(REPLICAS)
            .arg(u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX));
        let sent = async {
            match &mut self.conn {
                RedisConnection::Standalone(conn) => conn.req_packed_command(&wait).await,
                RedisConnection::Cluster(conn) => match first_key(script) {
                    Some(key) => {
                        let route = Route::with_key(key, SlotAddr::Master);
                        let node =
                            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                        conn.route_command(wait, node).await
                    }
                    None => Err(unacknowledged("the script has no key to find its node by")),
                },
            }
        };
        match tokio::time::timeout(self.bound, sent).await {
            Ok(Ok(Value::Int(acked))) if acked >= i64::from(REPLICAS) => Ok(()),
            Ok(Ok(Value::Int(_))) => {
                Err(unacknowledged("no replica acknowledged the write in time"))
            }
            Ok(Ok(other)) => Err(unacknowledged(&format!("WAIT answered {other:?}"))),
            Ok(Err(e)) => Err(unacknowledged(&format!("WAIT failed: {e}"))),
            Err(_) => Err(unacknowledged("WAIT was not answered in time")),
        }
    }
}

impl ConnectionLike for ReplicaAcked {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        async move {
            let reply = self.conn.req_packed_command(cmd).await?;
            if is_script(cmd) && !matches!(reply, Value::ServerError(_)) {
                self.wait_for_replica(cmd).await?;
            }
            Ok(reply)
        }
        .boxed()
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.conn.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

fn is_script(cmd: &Cmd) -> bool {
    matches!(
        cmd.args_iter().next(),
        Some(Arg::Simple(name)) if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL")
    )
}

/// `EVALSHA <sha> <numkeys> <key> …`: the first key, whose slot every key of the script shares.
fn first_key(cmd: &Cmd) -> Option<&[u8]> {
    match cmd.args_iter().nth(3) {
        Some(Arg::Simple(key)) => Some(key),
        _ => None,
    }
}

/// An I/O timeout, which `RedisCallError::failure` classifies as "sent, outcome unknown".
fn unacknowledged(why: &str) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("durable accept: {why}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_call_is_recognised_and_its_first_key_found() {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg("abc")
            .arg(2)
            .arg("{s3}:item:x")
            .arg("{s3}:outbox")
            .arg("argv");
        assert!(is_script(&cmd));
        assert_eq!(first_key(&cmd), Some(&b"{s3}:item:x"[..]));
        assert!(!is_script(redis::cmd("GET").arg("k")));
    }

    #[test]
    fn an_unacknowledged_write_is_an_unknown_outcome_not_an_outage() {
        let e = super::super::RedisCallError::Redis(unacknowledged("test"));
        assert_eq!(e.failure(), super::super::RedisFailure::TimedOut);
    }
}
