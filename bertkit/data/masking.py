"""Masked-LM predictions as Google's create_pretraining_data.py makes them, on token ids, with whole-word masking.

A token is a *continuation* when it belongs to the same word as the token before it: a WordPiece `##` piece
(English whole-word masking), or a character inside a word of a Chinese segmenter (jieba, or a reference
file in the format of transformers' run_chinese_ref.py). With whole-word masking a word is chosen or left
as a unit; each chosen token is then replaced by [MASK] (80%), kept (10%) or a random id (10%), as Google does.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bertkit.textfile import text_lines


@dataclass(frozen=True)
class MaskedLM:
    """One masked sequence: the model input and what it must predict."""

    input_ids: list[int]  # with [MASK] / kept / random ids at the chosen positions
    positions: list[int]  # chosen positions, ascending
    labels: list[int]  # the original ids there


def candidate_groups(
    special: Sequence[bool], continuation: Sequence[bool], whole_word: bool
) -> list[list[int]]:
    """Positions that may be masked, grouped into units: one token each, or one whole word each.

    Special tokens are never candidates and always end a word (Google would glue a `##` piece that starts
    segment B onto the last word of segment A; here it starts a unit of its own).
    Example: candidate_groups([1,0,0,0,1], [0,0,1,0,0], True) -> [[1, 2], [3]]
    """
    groups: list[list[int]] = []
    after_special = True
    for i, (is_special, cont) in enumerate(zip(special, continuation, strict=True)):
        if is_special:
            after_special = True
            continue
        if whole_word and cont and not after_special:
            groups[-1].append(i)
        else:
            groups.append([i])
        after_special = False
    return groups


def mask_sequence(
    input_ids: Sequence[int],
    special: Sequence[bool],
    continuation: Sequence[bool],
    *,
    masked_lm_prob: float,
    max_predictions: int,
    whole_word: bool,
    mask_id: int,
    vocab_size: int,
    rng: random.Random,
) -> MaskedLM:
    """Google's create_masked_lm_predictions on ids, drawing from rng in the same order as Google's code.

    round(len * masked_lm_prob) tokens (at least 1, at most max_predictions) are chosen; a whole word that
    would overshoot that number is skipped, so whole-word masking may choose a few fewer.
    """
    groups = candidate_groups(special, continuation, whole_word)
    rng.shuffle(groups)
    output = list(input_ids)
    num_to_predict = min(max_predictions, max(1, int(round(len(input_ids) * masked_lm_prob))))
    chosen: list[int] = []
    for group in groups:
        if len(chosen) >= num_to_predict:
            break
        if len(chosen) + len(group) > num_to_predict:
            continue
        for index in group:  # groups never overlap, so Google's covered-index check is always false here
            if rng.random() < 0.8:
                output[index] = mask_id
            elif rng.random() < 0.5:
                pass  # keep the original token
            else:
                output[index] = rng.randint(0, vocab_size - 1)
            chosen.append(index)
    chosen.sort()
    return MaskedLM(output, chosen, [input_ids[i] for i in chosen])


# --- where words continue ---------------------------------------------------------------------------


def wordpiece_continuation(tokens: Sequence[str]) -> list[bool]:
    """True for `##` pieces. Example: ["un", "##aff", "##able", "!"] -> [False, True, True, False]"""
    return [t.startswith("##") for t in tokens]


def span_continuation(
    offsets: Sequence[tuple[int, int]], word_starts: Sequence[int], word_ends: Sequence[int]
) -> list[bool]:
    """True for tokens that start inside a word but not at its first character.

    offsets: (start, end) of each token in the text; word_starts / word_ends: sorted character spans of the
    segmenter's words. Example: offsets [(0, 1), (1, 2), (2, 3)], words [(0, 2), (2, 3)] -> [False, True, False]
    """
    out = []
    w = 0
    for start, _ in offsets:
        while w < len(word_ends) and word_ends[w] <= start:
            w += 1
        out.append(w < len(word_starts) and word_starts[w] < start)
    return out


def jieba_spans(text: str) -> tuple[list[int], list[int]]:
    """(starts, ends) of the words jieba finds in text (jieba comes with the 'zh' extra)."""
    try:
        import jieba
    except ImportError as err:
        raise ImportError(
            "Chinese whole-word masking with segmenter 'jieba' needs jieba: pip install 'bertkit[zh]' "
            "(or give a word reference file instead)"
        ) from err
    starts, ends = [], []
    for _, start, end in jieba.tokenize(text):
        starts.append(start)
        ends.append(end)
    return starts, ends


def read_word_ref(path: str | Path) -> Iterator[list[int]]:
    """A word reference file, one JSON list per non-blank corpus line (transformers' run_chinese_ref.py format).

    Each list holds positions, counting [CLS] as 0, of tokens that continue a word.
    """
    path = Path(path)
    for number, line in text_lines(path, "word reference file"):
        if not line.strip():
            continue
        try:
            ref = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON list of positions ({err.msg})") from err
        if not isinstance(ref, list) or not all(isinstance(p, int) and p >= 1 for p in ref):
            raise ValueError(f"{path}:{number}: expected a JSON list of positions >= 1, e.g. [2, 5, 6]")
        yield ref


def ref_continuation(ref: Sequence[int], num_tokens: int, source: str) -> list[bool]:
    """Continuation flags for a line of num_tokens tokens from its reference positions ([CLS] = 0)."""
    flags = [False] * num_tokens
    for p in ref:
        if p > num_tokens:
            raise ValueError(
                f"{source}: position {p} is past the line's {num_tokens} tokens; the reference file was made "
                "for another corpus or vocabulary"
            )
        flags[p - 1] = True
    return flags
