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
    """Every exposed series name: counters get `_total`, histograms `_bucket/_sum/_count`.

    Each service registers through `shared::metrics::MetricsRegistry`: `with_prefix("p")`,
    then `counter`/`counters::<L>` (counters), `gauge` (gauges), `histogram`/`latency`
    (histograms), or `register(name, help, metric)` with a metric made just before.
    """
    names = set()
    for relative in METRIC_SOURCES.values():
        text = _rust_text(root, relative)
        prefix = re.search(r'MetricsRegistry::with_prefix\("([a-z_]+)"\)', text).group(1)
        for method, name in re.findall(
            r'registry\s*\.(counters|counter|gauge|histogram|latency)\b(?:::<[^>]*>)?\(\s*"([a-z_]+)"',
            text,
        ):
            base = f"{prefix}_{name}"
            if method in ("counter", "counters"):
                names.add(f"{base}_total")
            elif method in ("histogram", "latency"):
                names.update({f"{base}_bucket", f"{base}_sum", f"{base}_count"})
            else:
                names.add(base)
        kinds = dict(
            re.findall(r"let (\w+)(?:: [^=]+)? = (?:Family::<\w+, )?(Counter|Gauge|Histogram)\b", text)
        )
        for name, var in re.findall(r'registry\s*\.register\(\s*"([a-z_]+)",\s*"[^"]*",\s*(\w+)', text):
            base = f"{prefix}_{name}"
            kind = kinds.get(var)
            if kind == "Counter":
                names.add(f"{base}_total")
            elif kind == "Histogram":
                names.update({f"{base}_bucket", f"{base}_sum", f"{base}_count"})
            else:
                names.add(base)
    return names
