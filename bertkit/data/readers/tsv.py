"""TSV / CSV files (GLUE, CLUE and users' own): columns named by index or header name, never per dataset.

Yields TextExample per good row and Reject (file:line, reason) per bad one; the caller decides what a Reject
means. TSV is read as Google's run_classifier.py reads it (tab-split, no quoting); CSV with standard quoting.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from bertkit.data.datafile import csv_rows
from bertkit.data.examples import TextExample
from bertkit.data.validate import Reject

logger = logging.getLogger(__name__)

Column = int | str  # 0-based index (negative counts from the end) or a header name


def _delimiter_for(path: Path, delimiter: str | None) -> str:
    if delimiter is not None:
        return delimiter
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return "," if name.endswith(".csv") else "\t"


def read_tsv(
    path: str | Path,
    *,
    text: Column,
    text_pair: Column | None = None,
    label: Column | None = None,
    header: bool | None = None,
    delimiter: str | None = None,
    where: Mapping[Column, str] | None = None,
    label_map: Mapping[str, str] | None = None,
    skip_labels: Sequence[str] = (),
) -> Iterator[TextExample | Reject]:
    """Rows of a delimited file -> TextExample(text, text_pair, label, source="file:line") or Reject.

    header: the first line names the columns (default: True when any column is given by name).
    where: keep only rows whose column equals the value (e.g. XNLI's {"language": "zh"}).
    label_map: raw label -> label name (e.g. THUCNews ids -> class names); other labels pass unchanged.
    skip_labels: labels that mark unusable rows by the dataset's own convention (OCNLI's "-"); counted and logged.
    """
    path = Path(path)
    columns: dict[str, Column | None] = {"text": text, "text_pair": text_pair, "label": label}
    for key in where or {}:
        columns[f"where:{key}"] = key
    if header is None:
        header = any(isinstance(c, str) for c in columns.values())
    sep = _delimiter_for(path, delimiter)
    quoting = csv.QUOTE_MINIMAL if sep == "," else csv.QUOTE_NONE
    index: dict[str, int] = {}
    width: int | None = None
    skipped = 0
    for first, row, raw, problem in csv_rows(path, sep, quoting):
        source = f"{path}:{first}"
        if header and width is None and row:
            width = len(row)
            index = {name.strip(): i for i, name in enumerate(row)}
            for key, col in columns.items():
                if isinstance(col, str) and col not in index:
                    raise ValueError(
                        f"{path}:{first}: no column named {col!r} (for {key}); the header has "
                        f"{', '.join(repr(n) for n in index)}. Name an existing column or give its 0-based index"
                    )
            continue
        if problem is not None:
            yield Reject(source, raw, problem)
            continue
        if width is not None and len(row) != width:
            yield Reject(
                source,
                raw,
                f"has {len(row)} columns but the header has {width} (a stray or missing delimiter?)",
            )
            continue
        values: dict[str, str | None] = {}
        problem = None
        for key, col in columns.items():
            if col is None:
                values[key] = None
                continue
            i = index[col] if isinstance(col, str) else col
            if not -len(row) <= i < len(row):
                problem = f"has {len(row)} column(s), but {key} is column {i} (0-based)"
                break
            values[key] = row[i]
        if problem:
            yield Reject(source, raw, problem)
            continue
        if where and any(values[f"where:{k}"] != v for k, v in where.items()):
            continue
        value = values["label"]
        if value is not None:
            value = value.strip()
            if value in skip_labels:
                skipped += 1
                continue
            if label_map:
                value = label_map.get(value, value)
        yield TextExample(values["text"], values["text_pair"], value, source)
    if skipped:
        logger.info(
            "%s: skipped %d row(s) labelled %s (the dataset's mark for no label)", path, skipped, skip_labels
        )
