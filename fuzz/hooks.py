"""Schemathesis hooks for `make fuzz` (fuzz/run.sh sets SCHEMATHESIS_HOOKS to this module).

Two checks beyond schemathesis' own:
* `no_5xx_but_503`: no server error, except 503 (a dependency down or a schema not migrated
  yet is a fast 503 by design, DESIGN.md); a 500 is always a failure.
* `rejected_request_changes_nothing`: every 4xx leaves the auction state in Redis as it was.
  Every key of the fuzz run's own Redis is read before each call and compared after a rejected
  one. schemathesis calls one request at a time (--workers 1), so nothing else of ours writes
  between the two snapshots but the gateway's background tasks: the outbox relay (which
  removes relayed entries, so a stream is checked for entries *added*) and the closer (the
  fuzzed items end far in the future, so it does not touch them).

Which keys are state is derived from the Redis layout (`shared::redis_keys`, the table in
docs/ARCHITECTURE.md), one rule per key family below. A key no rule names fails the check: a
new key family must be classified here before the fuzz passes, so the check cannot silently
stop covering what a request writes.
"""

import atexit
import os
import re
from urllib.parse import urlsplit

import redis
import schemathesis

PREFIX = os.environ["REDIS_KEY_PREFIX"]
REDIS = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
# A rejected bid's stored answer lives this long (the gateway's IDEMPOTENCY_REJECTION_TTL_SECS).
REJECTION_TTL_SECS = int(os.environ.get("IDEMPOTENCY_REJECTION_TTL_SECS", "60"))

_ID = r"[A-Za-z0-9_-]+"
_SHARD = r"\{s\d+\}"
# Auction state: what a bid, a create or an admin action writes, so what a rejected request
# must leave exactly as it was. Key (without the prefix) -> Redis type.
STATE = [
    (re.compile(rf"{_SHARD}:item:{_ID}"), "hash"),  # an item
    (re.compile(rf"{_SHARD}:closing"), "zset"),  # end times, the closer's index
    (re.compile(rf"{_SHARD}:outbox"), "stream"),  # events waiting for the archive
    (re.compile(rf"{_SHARD}:outbox:dead"), "stream"),  # undecodable outbox entries
    # The listing index: per status (active, scheduled, closed, cancelled) by end time and by
    # listing time, and the scheduled items by start time.
    (re.compile(rf"{_SHARD}:list:(active|scheduled|closed|cancelled):(ending|newest)"), "zset"),
    (re.compile(rf"{_SHARD}:list:scheduled:starts"), "zset"),
    (re.compile(r"items:index"), "set"),  # the legacy listing index (only emptied, at start)
]
# A bid's stored answer to an `Idempotency-Key`: a rejected bid stores its rejection on purpose
# (a retry gets the same answer), but only for REJECTION_TTL_SECS; see `_idempotency_problems`.
IDEMPOTENCY = re.compile(rf"{_SHARD}:idem:(?P<item>{_ID}):(?P<key>{_ID})")
# Bookkeeping a refusal is meant to write: rate-limit buckets and verdicts (a 429 is counted),
# sign-in throttle counters (a failed sign-in is counted). Not compared.
BOOKKEEPING = [
    re.compile(r"rl:(bid|ip):.+"),
    re.compile(r"rl:verdicts"),
    re.compile(r"auth:(fail|reg|ip):.+"),
]

_before = {}
# How many rejections were compared against a non-empty state: a run that never saw an item
# key would prove nothing, so run.sh fails when this stays zero.
_compared = {"rejections": 0, "with_items": 0}


@atexit.register
def _report():
    with open(os.environ.get("FUZZ_REPORT", os.devnull), "w") as out:
        out.write(f"{_compared['rejections']} {_compared['with_items']}\n")


def _classify(name):
    """('state', type) | ('idempotency', None) | ('bookkeeping', None) | ('unknown', None)."""
    for pattern, kind in STATE:
        if pattern.fullmatch(name):
            return "state", kind
    if IDEMPOTENCY.fullmatch(name):
        return "idempotency", None
    if any(pattern.fullmatch(name) for pattern in BOOKKEEPING):
        return "bookkeeping", None
    return "unknown", None


def _snapshot():
    """{key name without the prefix: (class, value)}; values of state and idempotency keys."""
    names, foreign = [], []
    for key in REDIS.scan_iter(count=1000):
        key = key.decode(errors="replace")
        if key.startswith(PREFIX):
            names.append(key[len(PREFIX):])
        else:
            foreign.append(key)
    reads = []
    pipe = REDIS.pipeline(transaction=False)
    for name in names:
        family, kind = _classify(name)
        key = PREFIX + name
        if family == "state":
            if kind == "hash":
                pipe.hgetall(key)
            elif kind == "zset":
                pipe.zrange(key, 0, -1, withscores=True)
            elif kind == "set":
                pipe.smembers(key)
            else:
                pipe.xrange(key)
        elif family == "idempotency":
            pipe.get(key)
        else:
            continue
        reads.append((name, family, kind))
    values = pipe.execute(raise_on_error=False) if reads else []
    state = {}
    for (name, family, kind), value in zip(reads, values):
        if kind == "hash":
            value = sorted(value.items())
        elif kind == "set":
            value = sorted(value)
        elif kind == "stream":
            value = frozenset(entry_id for entry_id, _ in value)
        state[name] = (family, value)
    for name in names:
        family, _ = _classify(name)
        if family in ("bookkeeping", "unknown"):
            state[name] = (family, None)
    # The run's Redis is its own: a key outside REDIS_KEY_PREFIX is one the prefix missed.
    for key in foreign:
        state["(no prefix) " + key] = ("unknown", None)
    return state


def _state_problems(before, after):
    """State keys a request changed; a stream only counts when an entry was added (the relay
    removes relayed entries in the background)."""
    changed = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name), after.get(name)
        if (b or a)[0] != "state":
            continue
        if isinstance((b or a)[1], frozenset):
            added = (a[1] if a else frozenset()) - (b[1] if b else frozenset())
            if added:
                changed.append(f"{name} (+{len(added)} entries)")
        elif b != a:
            changed.append(name)
    return changed


def _idempotency_problems(before, after, request):
    """A rejected request may leave an idempotency record only as a bid refused with an
    `Idempotency-Key`: the record of that key, for at most REJECTION_TTL_SECS. An existing
    record (the first answer) is never rewritten; one that disappeared expired."""
    problems = []
    path = urlsplit(request.url).path
    bid = re.fullmatch(rf".*/api/v1/items/(?P<item>{_ID})/bid", path)
    sent_key = request.headers.get("Idempotency-Key")
    for name, (family, value) in after.items():
        if family != "idempotency":
            continue
        if name in before:
            if before[name] != (family, value):
                problems.append(f"{name} rewritten")
            continue
        record = IDEMPOTENCY.fullmatch(name)
        if not (bid and request.method == "POST" and sent_key == record["key"]
                and bid["item"] == record["item"]):
            problems.append(f"{name} written by a request that was not a bid with that key")
            continue
        ttl = REDIS.ttl(PREFIX + name)
        if not 0 < ttl <= REJECTION_TTL_SECS:
            problems.append(f"{name} kept {ttl} s (a rejection's record: at most {REJECTION_TTL_SECS} s)")
    return problems


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
    _compared["with_items"] += any(":item:" in name for name, (family, _) in before.items() if family == "state")
    unknown = sorted(name for name, (family, _) in after.items() if family == "unknown")
    if unknown:
        raise AssertionError(
            f"Redis holds keys no rule of fuzz/hooks.py classifies (state, idempotency or "
            f"bookkeeping): {unknown[:5]}; classify the new key family first"
        )
    problems = _state_problems(before, after) + _idempotency_problems(before, after, response.request)
    if problems:
        raise AssertionError(
            f"a rejected request changed Redis: {response.status_code} {response.text[:200]} changed {problems[:5]}"
        )
