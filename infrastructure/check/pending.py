"""Settings the deployment gives ahead of the code, in one list.

The compose file and Terraform are written for the deployment as designed (docs/DEPLOY.md):
Redis Cluster over TLS, NATS at R3, a signing key in Secrets Manager, PostgreSQL over TLS. A
few of those settings wait for work that has not landed (TLS to Redis and PostgreSQL, Redis
Cluster, the NATS server list and JETSTREAM_REPLICAS have: issue 14). Each
entry names the setting, the issue or prerequisite it waits for, and how the checker tells that
the work has landed; once it has, `make infra-check` fails on the entry until someone wires the
real option and removes it.
"""

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Facts:
    """What the checker knows about the code: each service's options and the repository."""

    options: dict  # service -> {ENV_NAME: help text}
    read_repo_file: Callable[[str], str]


@dataclass(frozen=True)
class Pending:
    name: str  # the environment variable (or setting) concerned
    services: tuple  # the services it is given to
    reason: str  # one line: what it waits for, naming the issue
    landed: Callable[[Facts], bool]  # true once the work exists: the entry is then stale
    # "unknown": the variable is not an option yet (it may be given although --help lacks it);
    # "value": the option exists, but the value given needs the pending work.
    kind: str = "unknown"


def _has_option(service, name):
    return lambda facts: name in facts.options.get(service, {})


def _help_matches(service, words, option=None):
    """True once the service's --help (or one option's text) mentions every word."""

    def landed(facts):
        texts = facts.options.get(service, {})
        text = texts.get(option, "") if option else " ".join(texts.values())
        return all(word in text.lower() for word in words)

    return landed


# Every prerequisite the deployment waited for has landed (TLS, cluster mode, roles); a new one
# goes here with the issue that will remove it.
PENDING: tuple[Pending, ...] = (
)


def unknown_names_allowed(service):
    """Names that may be given to `service` although its --help lacks them (yet)."""
    return {p.name for p in PENDING if p.kind == "unknown" and service in p.services}
