"""Chart points from the same numbers `/metrics` serves: its exposition text is parsed, and two
samples in a row give rates and, from the histogram buckets' growth, latency quantiles of the
requests that ended between them."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# The dashboard's own requests (its page, its event stream) are not the box's work.
OWN_ROUTES = ("/dashboard", "/")
POINTS = 120  # two minutes at one sample a second


@dataclass
class Reading:
    at: float
    requests: float = 0.0
    tokens: float = 0.0
    depth: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count


def _own(labels: dict[str, str]) -> bool:
    route = labels.get("route", "")
    return route == "/" or route.startswith("/dashboard")


def read(text: str, at: float) -> Reading:
    r = Reading(at)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "emberflow_requests_total" and not _own(s.labels):
                r.requests += s.value
            elif s.name == "emberflow_llm_completion_tokens_total":
                r.tokens += s.value
            elif s.name == "emberflow_queue_depth":
                r.depth += s.value
            elif s.name == "emberflow_request_duration_seconds_bucket" and not _own(s.labels):
                le = float(s.labels["le"])
                r.buckets[le] = r.buckets.get(le, 0.0) + s.value
    return r


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile: linear inside the bucket the rank falls in."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower  # beyond the last finite bound: its lower edge is all we know
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, count
    return lower


def point(before: Reading, now: Reading) -> dict[str, Any]:
    dt = max(now.at - before.at, 1e-6)
    grown = {le: now.buckets.get(le, 0.0) - before.buckets.get(le, 0.0) for le in now.buckets}
    p50, p99 = quantile(0.5, grown), quantile(0.99, grown)
    return {
        "t": round(now.at, 3),
        "rps": round((now.requests - before.requests) / dt, 3),
        "p50_ms": None if p50 is None else round(p50 * 1000, 2),
        "p99_ms": None if p99 is None else round(p99 * 1000, 2),
        "tokens_s": round((now.tokens - before.tokens) / dt, 2),
        "depth": now.depth,
    }


class Series:
    """The last POINTS chart points, kept while the daemon runs (a page opened later sees them)."""

    def __init__(self) -> None:
        self.points: deque[dict[str, Any]] = deque(maxlen=POINTS)
        self._last: Reading | None = None

    def sample(self, text: str, at: float) -> dict[str, Any] | None:
        now = read(text, at)
        before, self._last = self._last, now
        if before is None:
            return None
        p = point(before, now)
        self.points.append(p)
        return p
