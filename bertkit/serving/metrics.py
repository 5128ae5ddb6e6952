"""Prometheus metrics in the text exposition format (0.0.4): counters, gauges and histograms, no dependency.

The server needs four families (request counts, latency histograms, batch sizes, queue depth); a small writer
keeps `prometheus_client` out of the `serve` extra. Updates happen on the event loop or under a lock.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOKEN_BUCKETS = (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768)

LabelKey = tuple[str, ...]


def _format_value(value: float) -> str:
    """Prometheus float text: +Inf, integers without a fraction."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str] = ()):
        self.name, self.doc, self.labelnames = name, doc, tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelKey:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"metric {self.name} takes labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.doc}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, doc: str, labelnames: Sequence[str] = ()):
        super().__init__(name, doc, labelnames)
        self.values: dict[LabelKey, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        lines = self.header()
        for key, value in sorted(self.values.items()):
            lines.append(f"{self.name}{_labels_text(self.labelnames, key)} {_format_value(value)}")
        return lines


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self.values[key] = float(value)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, doc: str, buckets: Sequence[float], labelnames: Sequence[str] = ()):
        super().__init__(name, doc, labelnames)
        self.buckets = tuple(sorted(buckets))
        self.series: dict[LabelKey, list[float]] = {}  # per-bucket counts (+Inf last), then sum, then count

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            row = self.series.setdefault(key, [0.0] * (len(self.buckets) + 3))
            row[bisect.bisect_left(self.buckets, value)] += 1  # first bucket with le >= value
            row[-2] += value
            row[-1] += 1

    def count(self, **labels: str) -> int:
        row = self.series.get(self._key(labels))
        return 0 if row is None else int(row[-1])

    def render(self) -> list[str]:
        lines = self.header()
        for key, row in sorted(self.series.items()):
            cumulative = 0.0
            for bound, n in zip((*self.buckets, math.inf), row[:-2], strict=True):
                cumulative += n
                le = f'le="{_format_value(bound)}"'
                lines.append(
                    f"{self.name}_bucket{_labels_text(self.labelnames, key, le)} {_format_value(cumulative)}"
                )
            lines.append(f"{self.name}_sum{_labels_text(self.labelnames, key)} {_format_value(row[-2])}")
            lines.append(f"{self.name}_count{_labels_text(self.labelnames, key)} {_format_value(row[-1])}")
        return lines


class ServerMetrics:
    """The server's metric families; `render()` is the /metrics body."""

    def __init__(self) -> None:
        self.requests = Counter(
            "bertkit_requests_total", "HTTP requests by route and status code.", ("route", "status")
        )
        self.latency = Histogram(
            "bertkit_request_duration_seconds",
            "Request latency, arrival to response.",
            LATENCY_BUCKETS,
            ("route",),
        )
        self.texts = Counter("bertkit_texts_total", "Texts processed by the model, by route.", ("route",))
        self.batch_size = Histogram("bertkit_batch_size", "Texts per model batch.", BATCH_BUCKETS, ("route",))
        self.batch_tokens = Histogram(
            "bertkit_batch_tokens", "Tokens per model batch.", TOKEN_BUCKETS, ("route",)
        )
        self.batch_duration = Histogram(
            "bertkit_batch_duration_seconds",
            "Model time per batch (worker thread).",
            LATENCY_BUCKETS,
            ("route",),
        )
        self.queue_depth = Gauge("bertkit_queue_depth", "Texts waiting for the model.", ("route",))
        self.rejected = Counter(
            "bertkit_rejected_total", "Requests refused with 503 because the queue was full.", ("route",)
        )
        self.in_flight = Gauge("bertkit_requests_in_flight", "Requests being handled now.")
        self.in_flight.set(0)

    def families(self) -> list[_Metric]:
        return [
            self.requests,
            self.latency,
            self.texts,
            self.batch_size,
            self.batch_tokens,
            self.batch_duration,
            self.queue_depth,
            self.rejected,
            self.in_flight,
        ]

    def render(self) -> str:
        return "\n".join(line for family in self.families() for line in family.render()) + "\n"
