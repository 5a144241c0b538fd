"""Facts read from the services' Rust sources: HTTP routes and Prometheus metric names.

Reading the code (not a list kept here) means a renamed route or metric fails the check in the
same change that renames it.
"""

import pathlib
import re

# Every service merges shared::health::router(); the broadcast and gateway add their own.
ROUTE_SOURCES = {
    "shared": "shared/src/health.rs",
    "broadcast-service": "broadcast-service/src/routes",
    "api-gateway": "api-gateway/src/routes",
}

METRIC_SOURCES = {
    "api-gateway": "api-gateway/src/metrics.rs",
    "broadcast-service": "broadcast-service/src/metrics.rs",
    "archival-worker": "archival-worker/src/metrics.rs",
}


def _rust_text(root, relative):
    path = pathlib.Path(root, relative)
    files = sorted(path.rglob("*.rs")) if path.is_dir() else [path]
    return "\n".join(f.read_text() for f in files)


def routes(root):
    """{"shared"|service: [path]} of the `.route("/path", …)` calls."""
    return {
        owner: re.findall(r'\.route\(\s*"([^"]+)"', _rust_text(root, relative))
        for owner, relative in ROUTE_SOURCES.items()
    }


def metric_names(root):
    """Every exposed series name: counters get `_total`, histograms `_bucket/_sum/_count`."""
    names = set()
    for relative in METRIC_SOURCES.values():
        text = _rust_text(root, relative)
        prefix = re.search(r'Registry::with_prefix\("([a-z_]+)"\)', text).group(1)
        kinds = {}
        for var, kind in re.findall(
            r"let (\w+) = (?:Family::<\w+, )?(Counter|Gauge|Histogram)\b", text
        ):
            kinds[var] = kind
        for name, var in re.findall(
            r'registry\.register\(\s*"([a-z_]+)",\s*"[^"]*",\s*(\w+)', text
        ):
            base = f"{prefix}_{name}"
            kind = kinds.get(var)
            if kind == "Counter":
                names.add(f"{base}_total")
            elif kind == "Histogram":
                names.update({f"{base}_bucket", f"{base}_sum", f"{base}_count"})
            else:
                names.add(base)
    return names
