"""The Prometheus text exposition writer, against the format's rules worked by hand."""

from __future__ import annotations

import pytest

from bertkit.serving.metrics import Counter, Gauge, Histogram, ServerMetrics


def test_counter_lines_and_label_escaping():
    c = Counter("x_total", "Things.", ("route", "status"))
    c.inc(route="/a", status="200")
    c.inc(2, route="/a", status="200")
    c.inc(route='say "hi"\n', status="500")
    assert c.render() == [
        "# HELP x_total Things.",
        "# TYPE x_total counter",
        'x_total{route="/a",status="200"} 3',
        'x_total{route="say \\"hi\\"\\n",status="500"} 1',
    ]


def test_histogram_buckets_are_cumulative_with_inf_sum_and_count():
    h = Histogram("lat_seconds", "Latency.", (0.1, 0.5, 1.0))
    for v in (0.05, 0.1, 0.3, 2.0):
        h.observe(v)
    # le is inclusive: 0.1 falls in the 0.1 bucket
    assert h.render()[2:] == [
        'lat_seconds_bucket{le="0.1"} 2',
        'lat_seconds_bucket{le="0.5"} 3',
        'lat_seconds_bucket{le="1"} 3',
        'lat_seconds_bucket{le="+Inf"} 4',
        "lat_seconds_sum 2.45",
        "lat_seconds_count 4",
    ]


def test_gauge_set_and_wrong_labels():
    g = Gauge("depth", "Queue.", ("route",))
    g.set(5, route="/encode")
    g.inc(-2, route="/encode")
    assert g.render()[-1] == 'depth{route="/encode"} 3'
    with pytest.raises(ValueError, match="takes labels"):
        g.set(1)


def test_server_metrics_render_every_family_once():
    m = ServerMetrics()
    m.requests.inc(route="/encode", status="200")
    m.latency.observe(0.004, route="/encode")
    m.batch_size.observe(7, route="/encode")
    text = m.render()
    for name in (
        "bertkit_requests_total",
        "bertkit_request_duration_seconds",
        "bertkit_batch_size",
        "bertkit_batch_tokens",
        "bertkit_queue_depth",
        "bertkit_rejected_total",
        "bertkit_requests_in_flight",
    ):
        assert text.count(f"# TYPE {name} ") == 1
    assert 'bertkit_batch_size_bucket{route="/encode",le="8"} 1' in text
    assert "bertkit_requests_in_flight 0" in text
    assert text.endswith("\n")
