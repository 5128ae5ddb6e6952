"""vocab.txt and tokenizer_config.json: reading and writing the files that describe a tokenizer."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from bertkit.textfile import load_json_object

logger = logging.getLogger(__name__)

VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer_config.json"
# Google's run_classifier.py validate_case_matches_checkpoint: the casing of its released checkpoints.
_GOOGLE_LOWER = (
    "uncased_L-24_H-1024_A-16",
    "uncased_L-12_H-768_A-12",
    "multilingual_L-12_H-768_A-12",
    "chinese_L-12_H-768_A-12",
)
_GOOGLE_CASED = ("cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16", "multi_cased_L-12_H-768_A-12")
_UNUSED = re.compile(r"\[unused\d+\]")


@dataclass(frozen=True)
class SpecialTokens:
    """The special token strings; BERT's defaults."""

    pad: str = "[PAD]"
    unk: str = "[UNK]"
    cls: str = "[CLS]"
    sep: str = "[SEP]"
    mask: str = "[MASK]"


@dataclass(frozen=True)
class TokenizerSettings:
    """What a model folder says about its tokenizer."""

    do_lower_case: bool
    specials: SpecialTokens
    model_max_length: int


def load_vocab(path: str | Path) -> dict[str, int]:
    """Google's ``load_vocab``: one token per line, each line stripped, id = line number (from 0).

    Raises FileNotFoundError for a missing file and ValueError for an empty file or a repeated token.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"vocab file {path} not found: pass the vocab.txt of a BERT checkpoint "
            "(Google's and transformers' checkpoints ship one beside the weights)"
        )
    vocab: dict[str, int] = {}
    # newline="\n": like Google's tf.gfile readline, split on \n only (strip() removes a \r).
    with path.open(encoding="utf-8", newline="\n") as f:
        for number, line in enumerate(f, start=1):
            token = line.strip()
            if token in vocab:
                raise ValueError(
                    f"{path}:{number}: token {token!r} repeats line {vocab[token] + 1}; "
                    "each token must appear once (after stripping whitespace, as Google's load_vocab does)"
                )
            vocab[token] = number - 1
    if not vocab:
        raise ValueError(f"{path} is empty: a WordPiece vocab has one token per line")
    return vocab


def write_vocab(tokens: list[str], path: Path) -> None:
    """Write tokens one per line, in id order."""
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")


def unused_slots(tokens: list[str]) -> list[int]:
    """Ids of ``[unusedN]`` placeholder tokens, which Google reserves for vocabulary extension."""
    return [i for i, t in enumerate(tokens) if _UNUSED.fullmatch(t)]


def read_settings(folder: Path, do_lower_case: bool | None) -> TokenizerSettings:
    """Casing, special tokens and length limit (else the model's max_position_embeddings) from a model folder.

    Casing comes from ``tokenizer_config.json`` (``do_lower_case``, default True). Without that file
    (a Google checkpoint folder) it is ``do_lower_case`` if given, else the casing Google's
    ``validate_case_matches_checkpoint`` knows for the folder name, else True.
    """
    config_path = folder / CONFIG_FILE
    if config_path.is_file():
        config = read_config(folder)
        stored = bool(config.get("do_lower_case", True))
        if do_lower_case is not None and do_lower_case != stored:
            raise ValueError(
                f"do_lower_case={do_lower_case} contradicts {config_path} (do_lower_case={stored}); "
                "the casing is stored with the vocab: leave do_lower_case unset"
            )
        lower = stored
    else:
        config = {}
        lower = do_lower_case if do_lower_case is not None else _google_casing(folder)
    defaults = SpecialTokens()
    specials = SpecialTokens(
        **{
            name: _token(config.get(f"{name}_token"), getattr(defaults, name))
            for name in ("pad", "unk", "cls", "sep", "mask")
        }
    )
    max_length = config.get("model_max_length")
    if not isinstance(max_length, int) or max_length > 1_000_000:  # transformers writes 1e30 for "no limit"
        max_length = max_positions(folder)
    return TokenizerSettings(do_lower_case=lower, specials=specials, model_max_length=max_length)


def read_config(folder: Path) -> dict:
    """``tokenizer_config.json`` of a folder as a dict; {} when there is none."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        return {}
    return load_json_object(path, "a JSON object of tokenizer settings; restore the file", "tokenizer config")


def write_settings(settings: TokenizerSettings, folder: Path) -> Path:
    """Write ``tokenizer_config.json`` so that transformers' AutoTokenizer loads the folder as BertTokenizer."""
    s = settings.specials
    config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": settings.do_lower_case,
        "tokenize_chinese_chars": True,
        "strip_accents": None,
        "unk_token": s.unk,
        "sep_token": s.sep,
        "pad_token": s.pad,
        "cls_token": s.cls,
        "mask_token": s.mask,
        "model_max_length": settings.model_max_length,
    }
    path = folder / CONFIG_FILE
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def max_positions(folder: Path) -> int:
    """``max_position_embeddings`` from the model's config.json or bert_config.json; else BERT's 512."""
    for name in ("config.json", "bert_config.json"):
        path = folder / name
        if path.is_file():
            value = load_json_object(path, "a JSON object of BERT hyperparameters; restore the file").get(
                "max_position_embeddings"
            )
            if isinstance(value, int):
                return value
    return 512


def _token(value: object, default: str) -> str:
    if isinstance(value, dict):  # transformers may write {"content": "[UNK]", ...}
        value = value.get("content")
    return value if isinstance(value, str) else default


def _google_casing(folder: Path) -> bool:
    name = folder.resolve().name
    if name in _GOOGLE_CASED:
        return False
    if name not in _GOOGLE_LOWER:
        logger.warning(
            "%s has no %s: assuming do_lower_case=True (Google's default); pass do_lower_case=False "
            "for a cased model, and save_pretrained() records it",
            folder,
            CONFIG_FILE,
        )
    return True
