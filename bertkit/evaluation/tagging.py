"""Entity-level precision / recall / F1 from tag sequences, identical to conlleval and seqeval.

Two ways to read entities out of tags, as in seqeval:
- "default" (conlleval): every scheme is read leniently; `I-X` after `O` opens an entity, a type change
  closes one. seqeval's default mode, and the perl conlleval script (with scheme="BMES", M- is read as I-).
- "strict": seqeval's `mode="strict"` with a scheme (IOB1, IOB2, BIOES; BMES is read as BIOES with M as I):
  an entity counts only if it starts, continues and ends the way the scheme says; a tag whose prefix the
  scheme does not have raises.
An entity is right when its type, first word and last word all match. Micro scores pool every type.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

Entity = tuple[str, int, int]  # (type, start, end) over word indices, end exclusive

# ---- default mode: conlleval's chunk rules ---------------------------------------------------------


def _parse(tag: str) -> tuple[str, str]:
    """seqeval's split: first character is the prefix, the rest after '-' the type."""
    prefix = tag[0] if tag else "O"
    return prefix, tag[1:].split("-", maxsplit=1)[-1] or "_"


def _chunk_end(prev: str, cur: str, prev_type: str, cur_type: str) -> bool:
    if prev in ("E", "S") or (prev in ("B", "I") and cur in ("B", "S", "O")):
        return True
    return prev not in ("O", ".") and prev_type != cur_type


def _chunk_start(prev: str, cur: str, prev_type: str, cur_type: str) -> bool:
    if cur in ("B", "S") or (cur in ("E", "I") and prev in ("E", "S", "O")):
        return True
    return cur not in ("O", ".") and prev_type != cur_type


def conlleval_entities(tags: Sequence[str]) -> list[Entity]:
    """Entities by conlleval's rules. Example: ["B-PER", "I-PER", "O", "I-LOC"] -> [("PER", 0, 2), ("LOC", 3, 4)]."""
    out: list[Entity] = []
    prev, prev_type, begin = "O", "", 0
    for i, tag in enumerate([*tags, "O"]):
        cur, cur_type = _parse(tag)
        if _chunk_end(prev, cur, prev_type, cur_type):
            out.append((prev_type, begin, i))
        if _chunk_start(prev, cur, prev_type, cur_type):
            begin = i
        prev, prev_type = cur, cur_type
    return out


# ---- strict mode: seqeval's scheme patterns --------------------------------------------------------
# A pattern (previous prefixes, current prefixes, type relation) as in seqeval.scheme; "same"/"diff"/"any".
_ANY = "IOBES"
_STRICT: dict[str, dict[str, list[tuple[str, str, str]]]] = {
    "IOB1": {
        "allowed": [("", "IOB", "")],
        "start": [
            ("O", "I", "any"),
            ("I", "I", "diff"),
            ("B", "I", "any"),
            ("I", "B", "same"),
            ("B", "B", "same"),
        ],
        "inside": [("B", "I", "same"), ("I", "I", "same")],
        "end": [
            ("I", "I", "diff"),
            ("I", "O", "any"),
            ("I", "B", "any"),
            ("B", "O", "any"),
            ("B", "I", "diff"),
            ("B", "B", "same"),
        ],
    },
    "IOB2": {
        "allowed": [("", "IOB", "")],
        "start": [(_ANY, "B", "any")],
        "inside": [("B", "I", "same"), ("I", "I", "same")],
        "end": [
            ("I", "O", "any"),
            ("I", "I", "diff"),
            ("I", "B", "any"),
            ("B", "O", "any"),
            ("B", "I", "diff"),
            ("B", "B", "any"),
        ],
    },
    "BIOES": {
        "allowed": [("", "IOBES", "")],
        "start": [(_ANY, "B", "any"), (_ANY, "S", "any")],
        "inside": [("B", "I", "same"), ("B", "E", "same"), ("I", "I", "same"), ("I", "E", "same")],
        "end": [("S", _ANY, "any"), ("E", _ANY, "any")],
    },
}
_STRICT_ALIASES = {"BIO": "IOB2", "IOBES": "BIOES", "BMES": "BIOES"}


def _strict_table(scheme: str) -> dict[str, list[tuple[str, str, str]]]:
    key = _STRICT_ALIASES.get(scheme.upper(), scheme.upper())
    if key not in _STRICT:
        raise ValueError(
            f"strict mode needs a scheme among IOB1, IOB2 (BIO), BIOES (IOBES), BMES; got {scheme!r}"
        )
    return _STRICT[key]


def _match(patterns: list[tuple[str, str, str]], prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    for p, c, rel in patterns:
        if prev[0] in p and cur[0] in c:
            if rel == "any" or (rel == "same") == (prev[1] == cur[1]):
                return True
    return False


def strict_entities(tags: Sequence[str], scheme: str) -> list[Entity]:
    """Entities the way seqeval's strict mode finds them (seqeval.scheme.Tokens.entities)."""
    table = _strict_table(scheme)
    allowed = table["allowed"][0][1]
    tokens: list[tuple[str, str]] = []
    for tag in tags:
        prefix = "I" if tag[:1] == "M" and scheme.upper() == "BMES" else tag[:1]
        if prefix not in allowed:
            raise ValueError(f"tag {tag!r} is not allowed in scheme {scheme} (prefixes {', '.join(allowed)})")
        tokens.append((prefix, tag[1:].strip("-") or "_"))
    ext = [*tokens, ("O", "_")]
    out: list[Entity] = []
    i, prev = 0, ("O", "_")
    while i < len(ext):
        token = ext[i]
        if _match(table["start"], prev, token):
            end, last = i + 1, token
            while end < len(ext) and _match(table["inside"], last, ext[end]):
                last, end = ext[end], end + 1
            if _match(table["end"], ext[end - 1], ext[end]):
                out.append((token[1], i, end))
            i = end
        else:
            i += 1
        prev = ext[i - 1]
    return out


# ---- scores -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeScores:
    precision: float
    recall: float
    f1: float
    support: int  # gold entities of this type
    predicted: int
    correct: int


def _prf(correct: int, predicted: int, gold: int) -> tuple[float, float, float]:
    """Zero when undefined, as seqeval's zero_division default (it also warns)."""
    p = correct / predicted if predicted else 0.0
    r = correct / gold if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def entities_of(tags: Sequence[str], mode: str = "default", scheme: str | None = None) -> list[Entity]:
    """Entities of one sentence in the given mode."""
    if mode == "default":
        if scheme is not None and scheme.upper() == "BMES":  # conlleval knows no M-: it is BIOES's I-
            tags = ["I" + t[1:] if t.startswith("M-") else t for t in tags]
        return conlleval_entities(tags)
    if mode == "strict":
        if scheme is None:
            raise ValueError("strict mode needs scheme= (IOB1, IOB2, BIOES or BMES)")
        return strict_entities(tags, scheme)
    raise ValueError(f"mode must be 'default' (conlleval) or 'strict', got {mode!r}")


def entity_scores(
    y_true: Sequence[Sequence[str]],
    y_pred: Sequence[Sequence[str]],
    mode: str = "default",
    scheme: str | None = None,
) -> dict[str, TypeScores]:
    """Scores per entity type plus "micro" (all types pooled), over sentences of gold and predicted tags."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold sentences but {len(y_pred)} predicted ones")
    gold: dict[str, set[tuple[int, int, int]]] = defaultdict(set)
    pred: dict[str, set[tuple[int, int, int]]] = defaultdict(set)
    for k, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
        if len(t) != len(p):
            raise ValueError(f"sentence {k}: {len(t)} gold tags but {len(p)} predicted tags")
        for kind, start, end in entities_of(t, mode, scheme):
            gold[kind].add((k, start, end))
        for kind, start, end in entities_of(p, mode, scheme):
            pred[kind].add((k, start, end))
    out: dict[str, TypeScores] = {}
    totals = [0, 0, 0]
    for kind in sorted(set(gold) | set(pred)):
        correct = len(gold[kind] & pred[kind])
        out[kind] = TypeScores(
            *_prf(correct, len(pred[kind]), len(gold[kind])), len(gold[kind]), len(pred[kind]), correct
        )
        totals = [totals[0] + correct, totals[1] + len(pred[kind]), totals[2] + len(gold[kind])]
    correct, predicted, support = totals
    out["micro"] = TypeScores(*_prf(correct, predicted, support), support, predicted, correct)
    return out


def tagging_metrics(
    y_true: Sequence[Sequence[str]],
    y_pred: Sequence[Sequence[str]],
    mode: str = "default",
    scheme: str | None = None,
) -> dict[str, float]:
    """Flat metrics: precision, recall, f1 (entity micro), accuracy (per word), and {type}_precision/recall/f1."""
    scores = entity_scores(y_true, y_pred, mode, scheme)
    micro = scores.pop("micro")
    words = sum(len(t) for t in y_true)
    same = sum(a == b for t, p in zip(y_true, y_pred, strict=True) for a, b in zip(t, p, strict=True))
    out = {
        "precision": micro.precision,
        "recall": micro.recall,
        "f1": micro.f1,
        "accuracy": same / words if words else 0.0,
    }
    for kind, s in scores.items():
        out.update({f"{kind}_precision": s.precision, f"{kind}_recall": s.recall, f"{kind}_f1": s.f1})
    return out


def format_report(scores: dict[str, TypeScores]) -> str:
    """A conlleval-like table: one row per type, then the micro average."""
    lines = [f"{'type':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for kind, s in scores.items():
        lines.append(f"{kind:<12}{s.precision:>10.4f}{s.recall:>10.4f}{s.f1:>10.4f}{s.support:>9}")
    return "\n".join(lines)
