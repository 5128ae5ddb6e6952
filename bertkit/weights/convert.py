"""convert(): any supported checkpoint -> a Hugging Face folder with the tokenizer files beside the weights."""

from __future__ import annotations

from pathlib import Path

from bertkit.model.registry import MODEL_CLASSES
from bertkit.tokenization import Tokenizer
from bertkit.weights.hf import copy_other_files, save_hf
from bertkit.weights.load import (
    LoadReport,
    detect_format,
    infer_model,
    load_every_head,
    load_pretrained,
    model_folder,
    resolve_model_path,
)


def convert(src: str | Path, dst: str | Path, architecture: str | None = None,
            do_lower_case: bool | None = None) -> LoadReport:
    """Load src with every head it has (or as `architecture`), save to dst with vocab and casing.

    From a Hugging Face folder the other files (bertkit.json, labels, pooling) are copied too.
    """
    if architecture is None:
        model, report = load_every_head(src)
    else:
        if architecture not in MODEL_CLASSES:
            raise ValueError(f"unknown architecture {architecture!r}; use one of {', '.join(MODEL_CLASSES)}")
        model, report = load_pretrained(src, MODEL_CLASSES[architecture], num_labels=infer_model(src).num_labels)
    dst = Path(dst)
    save_hf(model, dst)
    path = model_folder(resolve_model_path(src))
    folder = path if path.is_dir() else path.parent
    if (folder / "vocab.txt").is_file():
        if do_lower_case is None and not (folder / "tokenizer_config.json").is_file():
            do_lower_case = guess_casing(folder.name)
        tokenizer = Tokenizer.from_pretrained(folder)
        if do_lower_case is not None and do_lower_case != tokenizer.do_lower_case:
            tokenizer = Tokenizer.from_vocab(folder / "vocab.txt", do_lower_case=do_lower_case)
        tokenizer.save_pretrained(dst)
    if detect_format(path) == "hf":
        copy_other_files(folder, dst)
    return report


def guess_casing(folder_name: str) -> bool:
    """Google's folder names say the casing (cased_L-12_H-768_A-12 vs uncased_...); uncased when unsure.

    Example: guess_casing("cased_L-12_H-768_A-12") -> False.
    """
    name = folder_name.lower()
    return not ("cased" in name and "uncased" not in name)
