"""Validation before any compute: bad rows are collected with file:line and a reason, then either raise
together (one message listing them) or go to a rejects file. Nothing is dropped silently.

The reader contract: every reader in bertkit.data.readers yields an Example per good record and a Reject per
bad one, and raises only when the whole file is unusable (missing, no header, not JSON at all). `checked`
is the default path (stop with file:line); `--rejects FILE` sends the Rejects to FILE instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SHOWN = 20  # bad rows listed in one error message


@dataclass(frozen=True)
class Reject:
    """A row that cannot become an example: where it is, its raw text, and why."""

    source: str  # "file:line"
    row: str  # the raw row as read (decoding errors replaced)
    reason: str


def split_valid(
    items: Iterable[Any], check: Callable[[Any], str | None] | None = None
) -> tuple[list[Any], list[Reject]]:
    """Separate examples from Rejects; `check(example)` returns a reason to reject a parsed example, or None."""
    good: list[Any] = []
    bad: list[Reject] = []
    for item in items:
        if isinstance(item, Reject):
            bad.append(item)
            continue
        reason = check(item) if check is not None else None
        if reason:
            bad.append(Reject(getattr(item, "source", ""), _row_of(item), reason))
        else:
            good.append(item)
    return good, bad


def _row_of(example: Any) -> str:
    try:
        return json.dumps(asdict(example), ensure_ascii=False)
    except TypeError:
        return repr(example)


def checked(items: Iterable[Any], what: str = "input", rejects_path: str | Path | None = None) -> list[Any]:
    """The examples of a reader; any Reject raises one ValueError listing them all with file:line (or, with
    rejects_path, goes to that file).

    Example: checked(read_conll("train.txt")) -> [TaggedExample, ...]
    """
    good, bad = split_valid(items)
    handle_rejects(bad, rejects_path, what)
    return good


def handle_rejects(rejects: list[Reject], rejects_path: str | Path | None, what: str) -> None:
    """Raise one error listing the bad rows, or append them to rejects_path (JSON lines) and warn."""
    if not rejects:
        return
    if rejects_path is None:
        lines = [f"  {r.source}: {r.reason}" for r in rejects[:SHOWN]]
        more = f"\n  ... and {len(rejects) - SHOWN} more" if len(rejects) > SHOWN else ""
        raise ValueError(
            f"{len(rejects)} bad row(s) in the {what} data:\n" + "\n".join(lines) + more + "\n"
            "Fix these rows, or pass --rejects FILE to skip them into FILE (one JSON object per rejected row)"
        )
    path = Path(rejects_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for r in rejects:
            f.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
    logger.warning("skipped %d bad row(s) of the %s data into %s", len(rejects), what, path)
