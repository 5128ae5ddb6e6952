"""One flat options dict of a fine-tuning run (a --config file plus flags) split into its parts.

Light on purpose (no torch): the CLI imports it when it builds its parser.
"""

from __future__ import annotations

import re
from typing import Any

# Keys of one flat options dict (a --config file plus flags) that are not training options.
DATA_KEYS = {"task", "data_dir", "train_file", "dev_file", "test_file", "dev_split", "reader", "fields",
             "task_options", "max_train_examples", "max_eval_examples", "rejects"}  # fmt: skip
FIELD_KEYS = ("text", "text_pair", "label", "header")  # reader fields
TASK_KEYS = ("problem_type", "label_separator", "threshold", "window_stride", "pooling", "main_metric")
RUN_KEYS = ("model", "output_dir", "do_train", "do_eval", "do_predict", "seeds")


def column(value: str) -> int | str:
    """'3' or '-1' -> an index; anything else is a header name / JSON field."""
    return int(value) if re.fullmatch(r"-?\d+", value) else value


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One flat options dict -> (DataSpec fields, TrainConfig fields, run options: model, output_dir, ...).

    Reader fields (text, label, ...) go to DataSpec.fields, task options (labels as a list or "a,b", ...) to
    DataSpec.task_options; whatever is left is for TrainConfig, which rejects unknown keys.
    """
    options = dict(options)
    fields = dict(options.pop("fields", {}) or {})
    for key in FIELD_KEYS:
        if key in options:
            fields[key] = options.pop(key)
    task_options = dict(options.pop("task_options", {}) or {})
    for key in TASK_KEYS:
        if key in options:
            task_options[key] = options.pop(key)
    if "labels" in options:
        labels = options.pop("labels")
        task_options["labels"] = labels.split(",") if isinstance(labels, str) else list(labels)
    data = {k: options.pop(k) for k in list(options) if k in DATA_KEYS}
    data["fields"], data["task_options"] = fields, task_options
    run = {k: options.pop(k) for k in RUN_KEYS if k in options}
    return data, options, run
