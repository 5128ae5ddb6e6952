"""How one feature field (a column of the feature store) is written as flat arrays and read back, equal in value
and type to what was written.

kind     one feature's value                         arrays on disk (N features)
int      an int, or a bool ("elem": "bool")          (N,) int64
float    a float                                     (N,) float64
floats   K floats (the same K for every feature)     (N, K) float64
ragged   a list of ints, or of bools                 values (sum of lengths,), offsets (N + 1)
rows     a list of K-tuples of ints (QA offsets)     values (rows x K,), offsets (N + 1) counting rows
nested   a list of lists of ints (one per choice)    values, inner offsets (items + 1), offsets (N + 1)

Integer values are written as int32 and narrowed to uint8 / uint16 when the whole column fits. Any other value
(a string, a list of lists of floats, a dict, None) has no column form: UnstorableFeature, and the
caller keeps its features in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

KINDS = ("int", "float", "floats", "ragged", "rows", "nested")
LISTS = ("ragged", "rows", "nested")  # kinds with per-feature offsets
TWO_LEVEL = ("nested",)  # kinds with inner offsets as well


class UnstorableFeature(ValueError):
    """A feature value that has no compact column form (a string, a list of lists of floats, ...)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    """A float column's value: ints in it are stored exactly as floats."""
    return isinstance(value, float | int | np.floating | np.integer) and not _is_bool(value)


def column_spec(key: str, values: list[Any]) -> dict[str, Any]:
    """The column kind of key's values in the first chunk (decided by the first non-empty list, if a list).

    Example: column_spec("offsets", [[(0, 3), (4, 9)]]) -> {"kind": "rows", "width": 2}
    """
    first = values[0]
    if _is_bool(first):
        return {"kind": "int", "elem": "bool"}
    if _is_int(first):
        return {"kind": "int"}
    if isinstance(first, float | np.floating):
        return {"kind": "float"}
    if isinstance(first, list | tuple | np.ndarray):
        sample = next((v for v in values if isinstance(v, list | tuple | np.ndarray) and len(v)), first)
        items = list(sample)
        if all(_is_int(v) for v in items):
            return {"kind": "ragged"}
        if all(_is_bool(v) for v in items):
            return {"kind": "ragged", "elem": "bool"}
        if all(isinstance(v, float | int) and not isinstance(v, bool) for v in items):
            return {"kind": "floats", "width": len(first)}
        if isinstance(first, list) and all(
            isinstance(v, tuple) and v and all(map(_is_int, v)) for v in items
        ):
            return {"kind": "rows", "width": len(items[0])}
        if isinstance(first, list) and all(isinstance(v, list) and all(map(_is_int, v)) for v in items):
            return {"kind": "nested"}
    raise UnstorableFeature(
        f"feature column {key!r} holds a {type(first).__name__} ({first!r:.60}), which has no compact column form"
    )


@dataclass
class Encoded:
    """One chunk of a column: its values (int64 or float64), list items per feature, lengths of nested lists."""

    values: np.ndarray
    counts: np.ndarray | None = None  # (n,) int64: list kinds
    inner: np.ndarray | None = None  # (items,) int64: nested


def _ints(key: str, lists: list[Any], elem: str = "int") -> np.ndarray:
    """The ints (or bools) of a list of lists, flat, as int64; checked first (np.fromiter would cast 2.5 to 2)."""
    types = set(map(type, chain.from_iterable(lists)))
    if elem == "bool":
        fits = all(issubclass(t, bool | np.bool_) for t in types)
    else:
        fits = all(issubclass(t, int | np.integer) and not issubclass(t, bool | np.bool_) for t in types)
    if not fits:
        raise UnstorableFeature(
            f"column {key!r} mixes value types ({', '.join(sorted(t.__name__ for t in types))})"
        )
    array = np.fromiter(chain.from_iterable(lists), dtype=np.int64, count=sum(map(len, lists)))
    if array.size and (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
        raise UnstorableFeature(f"column {key!r} has values outside int32")
    return array


def _lists(key: str, values: list[Any], kind: str) -> None:
    if not all(isinstance(v, list | tuple | np.ndarray) for v in values):
        raise UnstorableFeature(f"column {key!r} mixes lists with other values")
    if kind != "ragged" and not all(isinstance(v, list) for v in values):
        raise UnstorableFeature(f"column {key!r} mixes lists with tuples or arrays")


def encode(key: str, spec: dict[str, Any], values: list[Any]) -> Encoded:
    """The arrays of one chunk of a column, after checking every value fits its spec (else UnstorableFeature)."""
    kind = spec["kind"]
    if kind in ("int", "float"):
        check = _is_number if kind == "float" else _is_bool if spec.get("elem") == "bool" else _is_int
        if not all(map(check, values)):
            raise UnstorableFeature(f"column {key!r} mixes value types")
        return Encoded(np.asarray(values, dtype=np.int64 if kind == "int" else np.float64))
    if kind == "floats":
        width = spec["width"]
        if any(not isinstance(v, list | tuple | np.ndarray) or len(v) != width for v in values):
            raise UnstorableFeature(f"column {key!r} holds lists of different lengths")
        return Encoded(np.asarray(values, dtype=np.float64).reshape(len(values), width))
    _lists(key, values, kind)
    counts = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    if kind == "ragged":
        return Encoded(_ints(key, values, spec.get("elem", "int")), counts)
    items = list(chain.from_iterable(values))
    if kind == "rows":
        if set(map(type, items)) - {tuple} or set(map(len, items)) - {spec["width"]}:
            raise UnstorableFeature(f"column {key!r} holds rows that are not {spec['width']}-tuples")
        return Encoded(_ints(key, items), counts)
    if set(map(type, items)) - {list}:  # nested
        raise UnstorableFeature(f"column {key!r} mixes lists of ints with other values")
    inner = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    return Encoded(_ints(key, items), counts, inner)


def decode(spec: dict[str, Any], values: np.ndarray, offsets: np.ndarray | None, inner: np.ndarray | None,
           i: int) -> Any:  # fmt: skip
    """Feature i's value of a column, as it was written."""
    kind = spec["kind"]
    if kind == "int" and spec.get("elem") == "bool":
        return bool(values[i])
    if offsets is None:
        return values[i].tolist()
    start, end = int(offsets[i]), int(offsets[i + 1])
    if kind == "ragged":
        part = values[start:end]
        return part.astype(bool).tolist() if spec.get("elem") == "bool" else part.tolist()
    if kind == "rows":
        width = spec["width"]
        return list(map(tuple, values[start * width : end * width].reshape(-1, width).tolist()))
    assert inner is not None  # nested
    bounds = inner[start : end + 1].tolist()
    base = bounds[0]
    flat = values[base : bounds[-1]].tolist()
    return [flat[a - base : b - base] for a, b in zip(bounds, bounds[1:])]  # noqa: B905
