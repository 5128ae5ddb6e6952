"""A linear-chain CRF over per-word label scores: forward-algorithm log-likelihood and Viterbi decoding.

Shapes: B batch, W words (the labelled positions, left-aligned), L labels.
Transitions a scheme forbids (I- after O in BIO, ...) are given as boolean masks. They score NEG in
the likelihood, so gold sequences (always valid) are unaffected and the model puts no mass on invalid
ones, and -inf in Viterbi, so decoding can only return a valid sequence whatever the emissions are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

NEG = -10000.0  # score of a forbidden move in the likelihood: exp(NEG) is 0 in float32


class CRF(nn.Module):
    """Start, transition (from, to) and end scores; `allowed_*` masks restrict them (None = all allowed)."""

    def __init__(
        self,
        num_labels: int,
        allowed_start: Sequence[bool] | None = None,
        allowed_transitions: Sequence[Sequence[bool]] | None = None,
        allowed_end: Sequence[bool] | None = None,
    ):
        super().__init__()
        n = num_labels
        self.num_labels = n
        self.start_transitions = nn.Parameter(torch.empty(n).uniform_(-0.1, 0.1))
        self.transitions = nn.Parameter(torch.empty(n, n).uniform_(-0.1, 0.1))
        self.end_transitions = nn.Parameter(torch.empty(n).uniform_(-0.1, 0.1))

        def mask(values: Sequence | None, shape: tuple[int, ...], name: str) -> Tensor:
            t = (
                torch.ones(shape, dtype=torch.bool)
                if values is None
                else torch.tensor(values, dtype=torch.bool)
            )
            if tuple(t.shape) != shape:
                raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {shape} for {n} labels")
            return t

        # Derived from the labels and the scheme, not learned: rebuilt by whoever builds the module.
        self.register_buffer("allowed_start", mask(allowed_start, (n,), "allowed_start"), persistent=False)
        self.register_buffer(
            "allowed_transitions", mask(allowed_transitions, (n, n), "allowed_transitions"), persistent=False
        )
        self.register_buffer("allowed_end", mask(allowed_end, (n,), "allowed_end"), persistent=False)

    def scores(self, forbidden: float = NEG) -> tuple[Tensor, Tensor, Tensor]:
        """(start (L,), transitions (L, L), end (L,)) with forbidden moves set to `forbidden`."""
        return (
            self.start_transitions.masked_fill(~self.allowed_start, forbidden),
            self.transitions.masked_fill(~self.allowed_transitions, forbidden),
            self.end_transitions.masked_fill(~self.allowed_end, forbidden),
        )

    def nll(
        self,
        emissions: Tensor,
        tags: Tensor,
        mask: Tensor,
        open_start: Tensor | None = None,
        open_end: Tensor | None = None,
    ) -> Tensor:
        """Negative log-likelihood of `tags` per sequence: (B, W, L), (B, W), (B, W) bool -> (B,).

        mask must be left-aligned (True for the first n words of a row). open_start / open_end (B,) bool mark
        rows that are windows cut out of a longer sentence: their first / last word is not the sentence's, so
        no start / end score (and no start / end constraint) applies there.
        """
        start, trans, end = self.scores()
        return log_partition(emissions, mask, start, trans, end, open_start, open_end) - path_score(
            emissions, tags, mask, start, trans, end, open_start, open_end
        )

    def decode(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """Best valid label sequence of each row: (B, W, L), (B, W) bool -> B lists of n_b label ids."""
        return viterbi(emissions, mask, *self.scores(forbidden=float("-inf")))


def _edge_scores(
    start: Tensor, end: Tensor, batch: int, open_start: Tensor | None, open_end: Tensor | None
) -> tuple[Tensor, Tensor]:
    """(B, L) start and end scores, zero on open rows."""
    s = start.expand(batch, -1)
    e = end.expand(batch, -1)
    if open_start is not None:
        s = torch.where(open_start[:, None], torch.zeros_like(s), s)
    if open_end is not None:
        e = torch.where(open_end[:, None], torch.zeros_like(e), e)
    return s, e


def path_score(
    emissions: Tensor,
    tags: Tensor,
    mask: Tensor,
    start: Tensor,
    trans: Tensor,
    end: Tensor,
    open_start: Tensor | None = None,
    open_end: Tensor | None = None,
) -> Tensor:
    """Score of the given label paths: (B, W, L), (B, W), (B, W) -> (B,)."""
    b, w, _ = emissions.shape
    s, e = _edge_scores(start, end, b, open_start, open_end)
    m = mask.to(emissions.dtype)
    tags = tags.masked_fill(~mask, 0)
    emit = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # (B, W)
    score = s.gather(1, tags[:, :1]).squeeze(1) + (emit * m).sum(1)
    if w > 1:
        score = score + (trans[tags[:, :-1], tags[:, 1:]] * m[:, 1:]).sum(1)
    last = tags.gather(1, (mask.sum(1) - 1).clamp(min=0).unsqueeze(1))  # (B, 1)
    return score + e.gather(1, last).squeeze(1)


def log_partition(
    emissions: Tensor,
    mask: Tensor,
    start: Tensor,
    trans: Tensor,
    end: Tensor,
    open_start: Tensor | None = None,
    open_end: Tensor | None = None,
) -> Tensor:
    """log Z by the forward algorithm: (B, W, L), (B, W) -> (B,)."""
    b, w, _ = emissions.shape
    s, e = _edge_scores(start, end, b, open_start, open_end)
    alpha = s + emissions[:, 0]  # (B, L)
    for t in range(1, w):
        nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + emissions[:, t]
        alpha = torch.where(mask[:, t : t + 1], nxt, alpha)
    return torch.logsumexp(alpha + e, dim=1)


def viterbi(emissions: Tensor, mask: Tensor, start: Tensor, trans: Tensor, end: Tensor) -> list[list[int]]:
    """Highest-scoring label path per row: (B, W, L), (B, W) bool -> B lists (one id per unmasked word)."""
    b, w, _ = emissions.shape
    lengths = mask.sum(1).tolist()
    score = start + emissions[:, 0]  # (B, L)
    history = []
    for t in range(1, w):
        best, idx = (score.unsqueeze(2) + trans.unsqueeze(0)).max(dim=1)  # over the previous label
        history.append(idx)
        score = torch.where(mask[:, t : t + 1], best + emissions[:, t], score)
    last = (score + end).argmax(dim=1).tolist()
    back = torch.stack(history, dim=1).tolist() if history else [[] for _ in range(b)]  # (B, W-1, L)
    paths = []
    for i in range(b):
        n = int(lengths[i])
        path = [last[i]] if n else []
        for t in range(n - 1, 0, -1):
            path.append(back[i][t - 1][path[-1]])
        paths.append(path[::-1])
    return paths
