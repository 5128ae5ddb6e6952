"""SWAG's CSV layout -> ChoiceExample: a context sentence, the start of the next one, and N endings.

rowanz/swagaf ``data/{train,val,test}.csv`` have a header with ``sent1`` (context), ``sent2`` (the start of
the second sentence), ``ending0`` ... ``ending3`` and ``label`` (absent in test.csv). Each choice is
``sent2 + " " + ending``, as in transformers' run_swag.py. Column names are arguments.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from pathlib import Path

from bertkit.data.examples import ChoiceExample


def read_swag(
    path: str | Path,
    *,
    context: str = "sent1",
    question: str = "sent2",
    ending_prefix: str = "ending",
    label: str = "label",
) -> Iterator[ChoiceExample]:
    """Rows of a SWAG-style CSV; endings are the columns ``{ending_prefix}0``, ``{ending_prefix}1``, ... in order.

    The ending start (``sent2``) is stored as the question, so a choice reads ``question + " " + ending``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SWAG file {path} does not exist")
    opener = (
        gzip.open(path, "rt", encoding="utf-8", newline="")
        if path.suffix == ".gz"
        else path.open(encoding="utf-8", newline="")
    )
    with opener as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        endings = sorted(
            (h for h in header if h.startswith(ending_prefix) and h[len(ending_prefix) :].isdigit()),
            key=lambda h: int(h[len(ending_prefix) :]),
        )
        missing = [c for c in (context, question) if c not in header]
        if missing or len(endings) < 2:
            raise ValueError(
                f"{path}: expected a header with {context!r}, {question!r} and at least two "
                f"{ending_prefix}N columns (SWAG layout); found {header}"
            )
        for row in reader:
            where = f"{path}:{reader.line_num}"
            value = (row.get(label) or "").strip() if label in header else ""
            index = None
            if value:
                try:
                    index = int(value)
                except ValueError as err:
                    raise ValueError(f"{where}: label {value!r} is not a choice index") from err
                if not 0 <= index < len(endings):
                    raise ValueError(f"{where}: label {index} is outside 0..{len(endings) - 1}")
            yield ChoiceExample(
                context=row[context],
                question=row[question],
                choices=tuple(row[e] for e in endings),
                label=index,
                source=where,
            )
