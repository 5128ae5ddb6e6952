"""The CPU batch-budget probe: which budget it keeps for given timings, what it runs, and when it runs."""

from __future__ import annotations

import pytest

import bertkit.serving.backend as backend_module
from bertkit.serving.backend import PROBE_WIDTH, Backend
from bertkit.serving.config import ServeConfig


@pytest.fixture
def probed(monkeypatch, encoder_dir):
    """Backend(config) with the probe's timings replaced: seconds[budget] per run; records the batches run."""
    runs: list[tuple[int, int]] = []

    def build(seconds: dict[int, float], **options) -> Backend:
        def timed(run, encodings):
            run(encodings)
            runs.append((len(encodings), len(encodings[0].ids)))
            if callable(seconds):  # (budget, index of this timed run among all) -> seconds
                return seconds(len(encodings) * PROBE_WIDTH, len(runs) - 1)
            return seconds[len(encodings) * PROBE_WIDTH]

        monkeypatch.setattr(backend_module, "_timed", timed)
        monkeypatch.setattr(backend_module, "_PROBED", {})
        return Backend(ServeConfig(model=str(encoder_dir), **options))

    build.runs = runs  # type: ignore[attr-defined]
    return build


def test_the_fastest_budget_wins(probed):
    # tokens/s: 512 -> 5120, 1024 -> 6827, 2048 -> 5851: 1024 is the fastest by far
    b = probed({512: 0.1, 1024: 0.15, 2048: 0.35})
    assert b.max_batch_tokens == 1024
    order = [(budget // PROBE_WIDTH, PROBE_WIDTH) for budget in (512, 1024, 2048)]
    # three timed rounds, every budget in each, the order reversed every round; rows of PROBE_WIDTH tokens
    assert probed.runs == order + order[::-1] + order


def test_a_slow_moment_does_not_decide(probed):
    """2048 is 10 % faster, but the machine runs at half speed for two timed runs from the first 2048 run on.
    Budget after budget (the old schedule) both 2048 runs fell in that moment and 512 won; alternating rounds
    leave 2048 a run outside it."""
    fast = {512: 0.1, 1024: 0.2, 2048: 0.4 / 1.1}
    first = []

    def seconds(budget: int, index: int) -> float:
        if budget == 2048 and not first:
            first.append(index)
        slow = bool(first) and first[0] <= index < first[0] + 2
        return fast[budget] * (2 if slow else 1)

    assert probed(seconds).max_batch_tokens == 2048


def test_the_largest_budget_within_the_margin_of_the_fastest_wins(probed):
    # the forward as fast (or within 3 %) at a larger budget: fewer batches, less per-batch cost in the server
    assert probed({512: 0.1, 1024: 0.2, 2048: 0.4}).max_batch_tokens == 2048
    assert probed({512: 0.1, 1024: 0.2, 2048: 0.4 * 1.02}).max_batch_tokens == 2048
    assert probed({512: 0.1, 1024: 0.2, 2048: 0.4 * 1.05}).max_batch_tokens == 1024
    assert probed({512: 0.1, 1024: 0.2 * 1.05, 2048: 0.4 * 1.10}).max_batch_tokens == 512


def test_an_explicit_budget_skips_the_probe(probed):
    assert probed({}, max_batch_tokens=777).max_batch_tokens == 777 and probed.runs == []


def test_one_probe_per_model_and_settings_in_a_process(probed, encoder_dir):
    probed({512: 0.1, 1024: 0.1, 2048: 0.1})
    assert len(probed.runs) == 9
    assert Backend(ServeConfig(model=str(encoder_dir))).max_batch_tokens == 2048 and len(probed.runs) == 9

