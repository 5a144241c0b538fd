"""Schemathesis hooks for `make fuzz` (fuzz/run.sh sets SCHEMATHESIS_HOOKS to this module).

Two checks beyond schemathesis' own:
* `no_5xx_but_503`: no server error, except 503 (a dependency down or a schema not migrated
  yet is a fast 503 by design, DESIGN.md); a 500 is always a failure.
* `rejected_request_changes_nothing`: every 4xx leaves the auction state in Redis as it was.
  A snapshot of the item keys (item hashes, the items index, the closing sets, the outboxes)
  is taken before each call and compared after a rejected one. schemathesis calls one request
  at a time (--workers 1), so nothing else of ours writes between the two snapshots; the
  fuzzed items end far in the future, so the closer does not touch them either.
"""

import atexit
import os

import redis
import schemathesis

PREFIX = os.environ["REDIS_KEY_PREFIX"]
REDIS = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
# What a bid, a create or an admin action writes; rate-limit buckets, sign-in counters and
# stored idempotent rejections are bookkeeping a refusal may legitimately touch.
STATE_PATTERNS = ("*:item:*", "items:*", "*:closing", "*:outbox")

_before = {}
# How many rejections were compared against a non-empty state: a run that never saw an item
# key would prove nothing, so run.sh fails when this stays zero.
_compared = {"rejections": 0, "with_items": 0}


@atexit.register
def _report():
    with open(os.environ.get("FUZZ_REPORT", os.devnull), "w") as out:
        out.write(f"{_compared['rejections']} {_compared['with_items']}\n")


def _snapshot():
    state = {}
    for pattern in STATE_PATTERNS:
        for key in REDIS.scan_iter(match=PREFIX + pattern, count=1000):
            kind = REDIS.type(key).decode()
            if kind == "hash":
                value = sorted(REDIS.hgetall(key).items())
            elif kind == "set":
                value = sorted(REDIS.smembers(key))
            elif kind == "zset":
                value = REDIS.zrange(key, 0, -1, withscores=True)
            elif kind == "stream":
                value = [entry_id for entry_id, _ in REDIS.xrange(key)]
            elif kind == "string":
                value = REDIS.get(key)
            else:
                continue
            state[key] = (kind, value)
    return state


@schemathesis.hook
def before_call(context, case, kwargs):
    _before["state"] = _snapshot()


@schemathesis.check
def no_5xx_but_503(ctx, response, case):
    if response.status_code >= 500 and response.status_code != 503:
        raise AssertionError(f"server error other than 503: {response.status_code}: {response.text[:300]}")


@schemathesis.check
def rejected_request_changes_nothing(ctx, response, case):
    if not 400 <= response.status_code < 500 or "state" not in _before:
        return
    before, after = _before["state"], _snapshot()
    _compared["rejections"] += 1
    _compared["with_items"] += any(b":item:" in key for key in before)
    if before != after:
        changed = sorted(k.decode() for k in set(before) | set(after) if before.get(k) != after.get(k))
        raise AssertionError(f"a rejected request changed Redis: {response.status_code} {response.text[:200]} changed {changed[:5]}")
