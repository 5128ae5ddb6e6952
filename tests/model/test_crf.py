"""The CRF: loss equals brute-force enumeration over all label paths; Viterbi equals the brute-force argmax;
decoding under a scheme's constraints never returns an invalid sequence (hypothesis)."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.data.tag_schemes import allowed_transitions, is_valid, labels_for
from bertkit.model.crf import CRF

LABELS = {scheme: labels_for(["A", "B"], scheme) for scheme in ("IOB1", "IOB2", "BIOES", "BMES")}


def constrained_crf(scheme: str, seed: int = 0) -> CRF:
    torch.manual_seed(seed)
    labels = LABELS[scheme]
    crf = CRF(len(labels), *allowed_transitions(labels, scheme))
    with torch.no_grad():  # bigger than the init, so the scores matter
        for p in crf.parameters():
            p.normal_(0, 1.0)
    return crf


@torch.no_grad()
def brute_force(crf: CRF, emissions: torch.Tensor, n: int, open_start=False, open_end=False, valid_only=True):
    """(log Z, best path, scores) by enumerating every label path of length n."""
    start, trans, end = crf.start_transitions, crf.transitions, crf.end_transitions
    scores = {}
    for path in itertools.product(range(crf.num_labels), repeat=n):
        ok = (
            (open_start or crf.allowed_start[path[0]])
            and (open_end or crf.allowed_end[path[-1]])
            and all(crf.allowed_transitions[a, b] for a, b in zip(path, path[1:], strict=False))
        )
        if valid_only and not ok:
            continue
        s = (0 if open_start else start[path[0]]) + (0 if open_end else end[path[-1]])
        s = (
            s
            + sum(emissions[t, path[t]] for t in range(n))
            + sum(trans[a, b] for a, b in zip(path, path[1:], strict=False))
        )
        scores[path] = s
    log_z = torch.logsumexp(torch.stack(list(scores.values())), 0)
    return log_z, max(scores, key=lambda p: float(scores[p])), scores


@pytest.mark.parametrize("scheme", ["IOB2", "BIOES"])
def test_nll_equals_brute_force_over_valid_paths(scheme):
    crf = constrained_crf(scheme)
    torch.manual_seed(1)
    lengths = [4, 1, 3]
    emissions = torch.randn(3, 4, crf.num_labels) * 2
    mask = torch.arange(4)[None, :] < torch.tensor(lengths)[:, None]
    tags = torch.zeros(3, 4, dtype=torch.long)
    expected = []
    for i, n in enumerate(lengths):
        log_z, best, scores = brute_force(crf, emissions[i], n)
        gold = best if i != 1 else next(iter(scores))  # one gold path that is not the best
        tags[i, :n] = torch.tensor(gold)
        expected.append(log_z - scores[gold])
    nll = crf.nll(emissions, tags, mask)
    assert torch.allclose(nll, torch.stack(expected), atol=1e-4)
    assert (nll > 0).all()


def test_unconstrained_nll_equals_brute_force_and_gradients_flow():
    torch.manual_seed(3)
    crf = CRF(3)
    emissions = torch.randn(2, 5, 3, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.bool)
    tags = torch.tensor([[0, 1, 2, 1, 0], [2, 2, 0, 0, 0]])
    nll = crf.nll(emissions, tags, mask)
    for i, n in enumerate((5, 2)):
        log_z, _, scores = brute_force(crf, emissions[i].detach(), n, valid_only=False)
        assert float(nll[i].detach()) == pytest.approx(
            float(log_z - scores[tuple(tags[i, :n].tolist())]), abs=1e-4
        )
    nll.sum().backward()
    assert crf.transitions.grad is not None and emissions.grad is not None
    assert torch.all(emissions.grad[1, 2:] == 0)  # padded words carry no gradient


def test_open_windows_drop_start_and_end_scores():
    crf = constrained_crf("IOB2", seed=4)
    torch.manual_seed(5)
    emissions = torch.randn(1, 3, crf.num_labels)
    mask = torch.ones(1, 3, dtype=torch.bool)
    i_a = LABELS["IOB2"].index("I-A")  # a window cut inside an entity starts with I-A: fine when open
    tags = torch.tensor([[i_a, i_a, 0]])
    log_z, _, scores = brute_force(crf, emissions[0], 3, open_start=True, open_end=True)
    nll = crf.nll(emissions, tags, mask, open_start=torch.tensor([True]), open_end=torch.tensor([True]))
    assert float(nll[0].detach()) == pytest.approx(float(log_z - scores[(i_a, i_a, 0)]), abs=1e-4)
    closed = crf.nll(emissions, tags, mask)  # as a whole sentence it is invalid: huge loss
    assert float(closed[0].detach()) > 1000


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "BIOES", "BMES"])
def test_viterbi_equals_brute_force_argmax(scheme):
    crf = constrained_crf(scheme, seed=7)
    torch.manual_seed(8)
    lengths = [3, 2, 1]
    emissions = torch.randn(3, 3, crf.num_labels) * 3
    mask = torch.arange(3)[None, :] < torch.tensor(lengths)[:, None]
    paths = crf.decode(emissions, mask)
    for i, n in enumerate(lengths):
        _, best, _ = brute_force(crf, emissions[i], n)
        assert tuple(paths[i]) == best


@settings(max_examples=150, deadline=None)
@given(
    scheme=st.sampled_from(["IOB1", "IOB2", "BIOES", "BMES"]),
    lengths=st.lists(st.integers(0, 12), min_size=1, max_size=4),
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.1, 1.0, 30.0, 1e4]),
)
def test_decode_never_emits_an_invalid_sequence(scheme, lengths, seed, scale):
    labels = LABELS[scheme]
    crf = CRF(len(labels), *allowed_transitions(labels, scheme))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # adversarial: learned scores that favour invalid moves strongly
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    width = max(lengths)
    emissions = torch.randn(len(lengths), max(width, 1), len(labels), generator=gen) * scale
    mask = torch.arange(max(width, 1))[None, :] < torch.tensor(lengths)[:, None]
    for n, path in zip(lengths, crf.decode(emissions, mask), strict=True):
        assert len(path) == n
        assert is_valid([labels[k] for k in path], scheme)


def test_bad_mask_shape_raises():
    with pytest.raises(ValueError, match="allowed_transitions has shape"):
        CRF(3, None, [[True, True], [True, True]], None)
