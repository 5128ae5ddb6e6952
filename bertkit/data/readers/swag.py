"""SWAG's CSV layout -> ChoiceExample: a context sentence, the start of the next one, and N endings.

rowanz/swagaf ``data/{train,val,test}.csv`` have a header with ``sent1`` (context), ``sent2`` (the start of
the second sentence), ``ending0`` ... ``ending3`` and ``label`` (absent in test.csv). Each choice is
``sent2 + " " + ending``, as in transformers' run_swag.py. Column names are arguments.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from bertkit.data.datafile import csv_rows
from bertkit.data.examples import ChoiceExample
from bertkit.data.validate import Reject


def read_swag(
    path: str | Path,
    *,
    context: str = "sent1",
    question: str = "sent2",
    ending_prefix: str = "ending",
    label: str = "label",
) -> Iterator[ChoiceExample | Reject]:
    """Rows of a SWAG-style CSV; endings are the columns ``{ending_prefix}0``, ``{ending_prefix}1``, ... in order.

    The ending start (``sent2``) is stored as the question, so a choice reads ``question + " " + ending``.
    A row with a bad label, the wrong number of columns or bytes that are not UTF-8 is a Reject.
    """
    path = Path(path)
    rows = csv_rows(path, ",", csv.QUOTE_MINIMAL, "SWAG file")
    first_row = next(rows, None)
    header = first_row.fields if first_row else []
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
    column = {name: i for i, name in enumerate(header)}
    for number, row, raw, problem in rows:
        where = f"{path}:{number}"
        if problem is None and len(row) != len(header):
            problem = f"has {len(row)} columns but the header has {len(header)}"
        if problem is not None:
            yield Reject(where, raw, problem)
            continue
        value = row[column[label]].strip() if label in column else ""
        index = None
        if value:
            try:
                index = int(value)
            except ValueError:
                yield Reject(where, raw, f"label {value!r} is not a choice index")
                continue
            if not 0 <= index < len(endings):
                yield Reject(where, raw, f"label {index} is outside 0..{len(endings) - 1}")
                continue
        yield ChoiceExample(
            context=row[column[context]],
            question=row[column[question]],
            choices=tuple(row[column[e]] for e in endings),
            label=index,
            source=where,
        )
