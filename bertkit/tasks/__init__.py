"""The task registry: task families (one file each) and dataset presets (official file layouts), both explicit.

A new family adds one FAMILIES line ("name": "module:Class", imported only when used; or the TaskBase subclass
itself, for a family defined outside the package); a new dataset adds one PRESETS entry. `bertkit train --task NAME` looks NAME up in PRESETS first, then in FAMILIES.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from bertkit.data.readers import READERS
from bertkit.tasks.base import Feature, Preset, Task

FAMILIES: dict[str, str | type[Task]] = {
    "classification": "bertkit.tasks.classification:ClassificationTask",
    "tagging": "bertkit.tasks.tagging:TaggingTask",
    "qa": "bertkit.tasks.qa:QATask",
    "multiple_choice": "bertkit.tasks.multiple_choice:MultipleChoiceTask",
    "pretraining": "bertkit.tasks.pretraining:PretrainingTask",
}

_GLUE = {"train": ("train.tsv",), "dev": ("dev.tsv",), "test": ("test.tsv",)}
_GLUE_PAIR = {"text": 1, "text_pair": 2, "label": -1, "header": True}  # index, sentence1, sentence2, label
_GLUE_PAIR_TEST = {"text": 1, "text_pair": 2, "header": True}
_NLI3 = ("contradiction", "entailment", "neutral")
_BINARY = ("0", "1")
_MNLI = {"text": 8, "text_pair": 9, "label": -1, "header": True}  # sentence1, sentence2, gold_label (last)
_THUCNEWS = ("finance", "realty", "stocks", "education", "science", "society", "politics", "sports", "game",
             "entertainment")  # fmt: skip
_CLUE_JSON = {"text": "sentence1", "text_pair": "sentence2", "label": "label"}


def _clue(name: str) -> tuple[str, str]:
    return (f"{name}.json", f"{name}.jsonl")


PRESETS: dict[str, Preset] = {
    # ---- GLUE, in glue_data's layout (download_glue_data.py) ----
    "cola": Preset("classification", "tsv", _GLUE, {"text": 3, "label": 1, "header": False},
                   {"test": {"text": 1, "header": True}}, {"labels": _BINARY, "main_metric": "mcc"},
                   "GLUE CoLA: acceptability (source, label, original label, sentence; no header)"),
    "sst2": Preset("classification", "tsv", _GLUE, {"text": 0, "label": 1, "header": True},
                   {"test": {"text": 1, "header": True}}, {"labels": _BINARY}, "GLUE SST-2: sentiment"),
    "mrpc": Preset("classification", "tsv", _GLUE, {"text": 3, "text_pair": 4, "label": 0, "header": True},
                   {"test": {"text": 3, "text_pair": 4, "header": True}}, {"labels": _BINARY},
                   "GLUE MRPC: paraphrase pairs"),
    "stsb": Preset("classification", "tsv", _GLUE, {"text": 7, "text_pair": 8, "label": 9, "header": True},
                   {"test": {"text": 7, "text_pair": 8, "header": True}},
                   {"problem_type": "regression", "main_metric": "pearson"}, "GLUE STS-B: similarity 0-5"),
    "qqp": Preset("classification", "tsv", _GLUE, {"text": 3, "text_pair": 4, "label": 5, "header": True},
                  {"test": {"text": 1, "text_pair": 2, "header": True}}, {"labels": _BINARY},
                  "GLUE QQP: duplicate questions"),
    "mnli": Preset("classification", "tsv",
                   {"train": ("train.tsv",), "dev": ("dev_matched.tsv",), "test": ("test_matched.tsv",)},
                   _MNLI, {"test": {"text": 8, "text_pair": 9, "header": True}}, {"labels": _NLI3},
                   "GLUE MNLI, matched dev/test"),
    "mnli-mm": Preset("classification", "tsv",
                      {"train": ("train.tsv",), "dev": ("dev_mismatched.tsv",), "test": ("test_mismatched.tsv",)},
                      _MNLI, {"test": {"text": 8, "text_pair": 9, "header": True}}, {"labels": _NLI3},
                      "GLUE MNLI, mismatched dev/test"),
    "qnli": Preset("classification", "tsv", _GLUE, _GLUE_PAIR, {"test": _GLUE_PAIR_TEST},
                   {"labels": ("entailment", "not_entailment")}, "GLUE QNLI: question / sentence entailment"),
    "rte": Preset("classification", "tsv", _GLUE, _GLUE_PAIR, {"test": _GLUE_PAIR_TEST},
                  {"labels": ("entailment", "not_entailment")}, "GLUE RTE: entailment"),
    "wnli": Preset("classification", "tsv", _GLUE, _GLUE_PAIR, {"test": _GLUE_PAIR_TEST}, {"labels": _BINARY},
                   "GLUE WNLI: Winograd entailment"),
    # ---- XNLI (Chinese, as Google's run_classifier.py XnliProcessor) ----
    "xnli": Preset("classification", "tsv",
                   {"train": ("multinli/multinli.train.zh.tsv", "XNLI-MT-1.0/multinli/multinli.train.zh.tsv"),
                    "dev": ("xnli.dev.tsv", "XNLI-1.0/xnli.dev.tsv"),
                    "test": ("xnli.test.tsv", "XNLI-1.0/xnli.test.tsv")},
                   {"text": "premise", "text_pair": "hypo", "label": "label",
                    "label_map": {"contradictory": "contradiction"}},
                   {"dev": {"text": "sentence1", "text_pair": "sentence2", "label": "gold_label",
                            "where": {"language": "zh"}},
                    "test": {"text": "sentence1", "text_pair": "sentence2", "label": "gold_label",
                             "where": {"language": "zh"}}},
                   {"labels": _NLI3}, "XNLI, Chinese: machine-translated MNLI train, XNLI dev/test (language zh)"),
    # ---- Chinese (CLUE and classic sets) ----
    "chnsenticorp": Preset("classification", "tsv", _GLUE, {"text": "text_a", "label": "label"}, None,
                           {"labels": _BINARY}, "ChnSentiCorp sentiment (ERNIE layout: label, text_a)"),
    "thucnews": Preset("classification", "tsv",
                       {"train": ("train.txt",), "dev": ("dev.txt",), "test": ("test.txt",)},
                       {"text": 0, "label": 1, "header": False,
                        "label_map": {str(i): n for i, n in enumerate(_THUCNEWS)}},
                       None, {"labels": _THUCNEWS}, "THUCNews headlines, 10 classes (text, class id)"),
    "afqmc": Preset("classification", "jsonl",
                    {"train": _clue("train"), "dev": _clue("dev"), "test": _clue("test")}, _CLUE_JSON,
                    {"test": {"text": "sentence1", "text_pair": "sentence2", "label": None}}, {"labels": _BINARY},
                    "CLUE AFQMC: question-pair similarity"),
    "ocnli": Preset("classification", "jsonl",
                    {"train": ("train.50k.json", "train.50k.json.gz", "train.json", "train.3k.json"),
                     "dev": ("dev.json",), "test": ("test.json",)},
                    {**_CLUE_JSON, "skip_labels": ("-",)},
                    {"test": {"text": "sentence1", "text_pair": "sentence2", "label": None}}, {"labels": _NLI3},
                    "CLUE OCNLI: Chinese NLI (pairs labelled '-' have no majority label and are skipped)"),
    "lcqmc": Preset("classification", "tsv", {"train": ("train.txt",), "dev": ("dev.txt",), "test": ("test.txt",)},
                    {"text": 0, "text_pair": 1, "label": 2, "header": False}, None, {"labels": _BINARY},
                    "LCQMC question matching (text_a, text_b, label; no header)"),
    # ---- extractive QA and multiple choice (bertkit/tasks/qa.py, multiple_choice.py) ----
    "squad": Preset("qa", "squad", {"train": ("train-v1.1.json",), "dev": ("dev-v1.1.json",)}, {}, None,
                    {"metric": "squad"}, "SQuAD v1.1 (also any SQuAD-format JSON or QA JSONL file): EM / F1"),
    "squad-v2": Preset("qa", "squad", {"train": ("train-v2.0.json",), "dev": ("dev-v2.0.json",)}, {}, None,
                       {"metric": "squad_v2"}, "SQuAD v2.0: unanswerable questions, null score and threshold"),
    "cmrc2018": Preset("qa", "squad",
                       {"train": ("cmrc2018_train.json", "cmrc2018_train.json.gz"), "dev": ("cmrc2018_dev.json",),
                        "trial": ("cmrc2018_trial.json",)},
                       {}, None, {"metric": "cmrc2018"}, "CMRC 2018 Chinese span extraction: char-level EM / F1"),
    "swag": Preset("multiple_choice", "swag", {"train": ("train.csv",), "dev": ("val.csv",), "test": ("test.csv",)},
                   {}, None, {}, "SWAG (rowanz/swagaf CSV): sent1 + sent2 and four endings"),
    "socialiqa": Preset("multiple_choice", "socialiqa",
                        {"train": ("train.jsonl", "train.jsonl.gz"), "dev": ("dev.jsonl",)}, {},
                        {"train": {"labels_path": "train-labels.lst"}, "dev": {"labels_path": "dev-labels.lst"}},
                        {}, "Social IQa (AI2 layout: JSONL + labels file), three answers"),
    "c3": Preset("multiple_choice", "c3", {"train": ("train.json",), "dev": ("dev.json",), "test": ("test.json",)},
                 {}, None, {}, "C3 Chinese multiple-choice reading comprehension, 2-4 choices"),
    "choice-jsonl": Preset("multiple_choice", "choice_jsonl",
                           {"train": ("train.jsonl",), "dev": ("dev.jsonl",), "test": ("test.jsonl",)}, {}, None,
                           {}, "generic multiple choice: JSONL with context, question, choices, label"),
    # ---- token tagging / NER (bertkit/tasks/tagging.py) ----
    "conll2003": Preset("tagging", "conll",
                        {"train": ("train.txt", "eng.train"), "dev": ("valid.txt", "dev.txt", "eng.testa"),
                         "test": ("test.txt", "eng.testb")},
                        {"tag_column": -1}, None, {"scheme": "IOB2", "split": "words"},
                        "CoNLL-2003 English NER (word POS chunk tag): PER/LOC/ORG/MISC, entity F1 as conlleval"),
    "msra": Preset("tagging", "conll",
                   {"train": ("train.txt", "train.txt.gz"), "dev": ("dev.txt", "test.txt"), "test": ("test.txt",)},
                   {"joiner": ""}, None, {"scheme": "IOB2", "split": "chars"},
                   "MSRA NER (SIGHAN 2006), one character per line; no official dev split: test.txt unless dev.txt"),
    "peoples-daily": Preset("tagging", "conll",
                            {"train": ("example.train", "train.txt"), "dev": ("example.dev", "dev.txt"),
                             "test": ("example.test", "test.txt")},
                            {"joiner": ""}, None, {"scheme": "IOB2", "split": "chars"},
                            "People's Daily 1998 NER (example.train/dev/test), one character per line"),
    "conll": Preset("tagging", "conll",
                    {"train": ("train.txt",), "dev": ("dev.txt", "valid.txt"), "test": ("test.txt",)},
                    {"tag_column": -1}, {"test": {"tag_column": None}}, {},
                    "any CoNLL-style file: one token per line, tag in the last column, blank line between sentences"),
    "ner-jsonl": Preset("tagging", "tagged_jsonl",
                        {"train": ("train.jsonl",), "dev": ("dev.jsonl",), "test": ("test.jsonl",)}, {}, None, {},
                        "JSON lines: tokens + tags, or text + character-offset entities"),
}  # fmt: skip


def task_class(family: str) -> type:
    """The class of a task family, imported on first use."""
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; known: {', '.join(sorted(FAMILIES))}")
    entry = FAMILIES[family]
    if isinstance(entry, type):
        return entry
    module, _, cls = entry.partition(":")
    return getattr(importlib.import_module(module), cls)


def build_task(family: str, options: dict[str, Any] | None = None) -> Task:
    """FAMILIES[family](**options), with a clear error for an unknown option."""
    cls = task_class(family)
    try:
        return cls(**(options or {}))
    except TypeError as err:
        raise ValueError(f"task {family!r}: {err}") from err


def get_preset(name: str) -> Preset:
    key = name.lower().replace("_", "-")
    key = {
        "sst-2": "sst2",
        "sts-b": "stsb",
        "mnli-m": "mnli",
        "mnli-matched": "mnli",
        "mnli-mismatched": "mnli-mm",
    }.get(key, key)
    if key not in PRESETS:
        raise ValueError(
            f"unknown task {name!r}: presets are {', '.join(sorted(PRESETS))}; families are "
            f"{', '.join(sorted(FAMILIES))} (use a family with --train-file/--dev-file)"
        )
    return PRESETS[key]


def split_file(preset: Preset, data_dir: str | Path, split: str) -> Path | None:
    """The preset's file for a split inside data_dir (first candidate that exists), or None."""
    for name in preset.files.get(split, ()):
        path = Path(data_dir) / name
        if path.is_file():
            return path
    return None


def fields_for(preset: Preset, split: str) -> dict[str, Any]:
    """Reader arguments for a split: the preset's fields with that split's overrides."""
    overrides = (preset.split_fields or {}).get(split)
    return dict(overrides if overrides is not None else preset.fields)


def read_split(preset: Preset, data_dir: str | Path, split: str) -> list[Any]:
    """Examples (and Rejects) of one split of a preset's dataset."""
    path = split_file(preset, data_dir, split)
    if path is None:
        tried = (
            ", ".join(str(Path(data_dir) / n) for n in preset.files.get(split, ()))
            or "(no file for this split)"
        )
        raise FileNotFoundError(f"no {split} file in {data_dir} for this dataset; looked for {tried}")
    return list(READERS[preset.reader](path, **fields_for(preset, split)))


__all__ = [
    "FAMILIES",
    "PRESETS",
    "Feature",
    "Preset",
    "Task",
    "build_task",
    "get_preset",
    "read_split",
    "task_class",
]
