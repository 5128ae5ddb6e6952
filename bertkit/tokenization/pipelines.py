"""Subword pipelines (byte-level BPE, SentencePiece unigram, any ``tokenizer.json``) read from a model folder.

Each is a Rust ``tokenizers.Tokenizer`` built as transformers' fast tokenizer of the same class builds it, so
both give the same ids and offsets:

=========================  ===========================  =============================================
files                      family (tokenizer_class)     template
=========================  ===========================  =============================================
``tokenizer.json``         whatever the file says       from its post-processor
``vocab.json, merges.txt`` RoBERTa (RobertaTokenizer)   ``<s> A </s></s> B </s>``, all type 0
``spiece.model``           ALBERT (AlbertTokenizer)     ``[CLS] A [SEP] B [SEP]``, B type 1
``sentencepiece.bpe.model`` XLM-R (XLMRobertaTokenizer)  ``<s> A </s></s> B </s>``, all type 0
=========================  ===========================  =============================================

``tokenizer_config.json`` supplies the special tokens and flags (``do_lower_case``, ``keep_accents``,
``add_prefix_space``) when the folder has one. WordPiece folders (``vocab.txt``) do not come here:
they keep Google's rules (tokenizer.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import AddedToken, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, Unigram

from bertkit.textfile import load_json_object
from bertkit.tokenization.encoding import Template
from bertkit.tokenization.spm import BYTE, CONTROL, UNIGRAM, USER_DEFINED, read_spm
from bertkit.tokenization.vocab import SpecialTokens

TOKENIZER_JSON = "tokenizer.json"
BPE_FILES = ("vocab.json", "merges.txt")
SPM_FILES = {"spiece.model": "AlbertTokenizer", "sentencepiece.bpe.model": "XLMRobertaTokenizer"}
# Every file a tokenizer may be read from (WordPiece's and the subword kinds'): what a model folder copies along.
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    TOKENIZER_JSON,
    *BPE_FILES,
    *SPM_FILES,
)
_ROBERTA_SPECIALS = SpecialTokens(pad="<pad>", unk="<unk>", cls="<s>", sep="</s>", mask="<mask>")
_ALBERT_SPECIALS = SpecialTokens(pad="<pad>", unk="<unk>", cls="[CLS]", sep="[SEP]", mask="[MASK]")
_SPECIAL_NAMES = ("pad", "unk", "cls", "sep", "mask")


@dataclass(frozen=True)
class Pipeline:
    """A subword tokenizer as read from a folder: the Rust pipeline and what saving it again needs."""

    rust: tokenizers.Tokenizer  # normalizer, pre-tokenizer, model, decoder and post-processor
    template: Template
    specials: SpecialTokens
    config: dict[str, Any]  # tokenizer_config.json to write back (class, flags, special tokens)
    files: dict[str, bytes] = field(default_factory=dict)  # source files saved beside tokenizer.json

    @property
    def do_lower_case(self) -> bool:
        return bool(self.config.get("do_lower_case", False))


def subword_files(folder: Path) -> list[str]:
    """The subword tokenizer files a folder holds, in the order they are preferred."""
    names = [TOKENIZER_JSON] if (folder / TOKENIZER_JSON).is_file() else []
    if all((folder / n).is_file() for n in BPE_FILES):
        names.append(BPE_FILES[0])
    names += [n for n in SPM_FILES if (folder / n).is_file()]
    return names


def read_pipeline(folder: Path, config: dict[str, Any]) -> Pipeline:
    """The pipeline of a folder from ``tokenizer.json``, else ``vocab.json`` + ``merges.txt``, else a ``.model``."""
    found = subword_files(folder)
    if not found:
        raise FileNotFoundError(
            f"{folder} has no tokenizer files: bertkit reads vocab.txt (WordPiece), tokenizer.json, "
            "vocab.json + merges.txt (byte-level BPE) or spiece.model / sentencepiece.bpe.model (SentencePiece)"
        )
    name = found[0]
    if name == TOKENIZER_JSON:
        return _from_tokenizer_json(folder / name, config)
    if name == BPE_FILES[0]:
        return _byte_level_bpe(folder, config)
    return _sentencepiece(folder / name, config)


def wordpiece_in_tokenizer_json(path: Path) -> tuple[dict[str, int], bool] | None:
    """(vocab, lowercase) of a ``tokenizer.json`` whose model is WordPiece, else None."""
    data = _json(path)
    model = data.get("model") or {}
    if model.get("type") != "WordPiece":
        return None
    normalizer = data.get("normalizer") or {}
    return dict(model["vocab"]), bool(normalizer.get("lowercase", True))


# --- builders ------------------------------------------------------------------------------------


def _from_tokenizer_json(path: Path, config: dict[str, Any]) -> Pipeline:
    try:
        rust = tokenizers.Tokenizer.from_file(str(path))
    except Exception as e:  # the Rust error says what is wrong in the file
        raise ValueError(f"{path} could not be read by the tokenizers library: {e}") from e
    post = json.loads(rust.to_str()).get("post_processor")
    template, defaults = _template(post, path)
    specials = _specials(config, defaults)
    if template is None:  # no post-processor: the family's template from its special tokens
        template = _make_template(rust, specials, path, roberta=specials.cls == "<s>")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **config}
    return Pipeline(rust, template, specials, config)


def _byte_level_bpe(folder: Path, config: dict[str, Any]) -> Pipeline:
    """RoBERTa's tokenizer, as transformers' ``RobertaTokenizer`` builds it."""
    vocab_file, merges_file = (folder / n for n in BPE_FILES)
    try:
        vocab, merges = BPE.read_file(str(vocab_file), str(merges_file))
    except Exception as e:
        raise ValueError(
            f"{vocab_file} / {merges_file} are not a byte-level BPE vocab and merges: {e}"
        ) from e
    specials = _specials(config, _ROBERTA_SPECIALS)
    prefix, trim = bool(config.get("add_prefix_space", False)), bool(config.get("trim_offsets", True))
    rust = tokenizers.Tokenizer(
        BPE(vocab, merges, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    )
    rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix)
    rust.decoder = decoders.ByteLevel()
    _add_specials(rust, specials, vocab_file)
    template = _make_template(rust, specials, vocab_file, roberta=True)
    rust.post_processor = processors.RobertaProcessing(
        (template.sep[1], template.sep[0]), (template.cls[1], template.cls[0]), trim, prefix
    )
    files = {n: (folder / n).read_bytes() for n in BPE_FILES}
    config = {
        "tokenizer_class": "RobertaTokenizer",
        "add_prefix_space": prefix,
        "trim_offsets": trim,
        **config,
    }
    return Pipeline(rust, template, specials, config, files)


def _sentencepiece(path: Path, config: dict[str, Any]) -> Pipeline:
    """ALBERT's (``spiece.model``) or XLM-R's (``sentencepiece.bpe.model``) tokenizer, as transformers builds it."""
    spm = read_spm(path)
    if spm.model_type != UNIGRAM:
        raise ValueError(
            f"{path} is a SentencePiece BPE model; bertkit reads SentencePiece unigram models, "
            "or save the tokenizer as tokenizer.json (transformers' save_pretrained writes one)"
        )
    if spm.byte_fallback or any(p.type == BYTE for p in spm.pieces):
        raise ValueError(f"{path} uses byte fallback, which ALBERT and XLM-R tokenizers do not")
    cls_name = config.get("tokenizer_class") or SPM_FILES[path.name]
    xlmr = cls_name.startswith("XLMRoberta")
    specials = _specials(config, _ROBERTA_SPECIALS if xlmr else _ALBERT_SPECIALS)
    steps: list[normalizers.Normalizer] = []
    if xlmr:  # fairseq's layout: <s> <pad> </s> <unk>, the model's pieces shifted by one, <mask> last
        vocab = [(specials.cls, 0.0), (specials.pad, 0.0), (specials.sep, 0.0), (specials.unk, 0.0)]
        vocab += [(p.piece, p.score) for p in spm.pieces[3:]] + [(specials.mask, 0.0)]
        rust = tokenizers.Tokenizer(Unigram(vocab, unk_id=3, byte_fallback=False))
        flags: dict[str, Any] = {}
    else:
        vocab = [(p.piece, p.score) for p in spm.pieces]
        rust = tokenizers.Tokenizer(Unigram(vocab, unk_id=spm.unk_id, byte_fallback=False))
        lower, keep_accents = bool(config.get("do_lower_case", True)), bool(config.get("keep_accents", False))
        steps += [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
        if not keep_accents:
            steps += [normalizers.NFKD(), normalizers.StripAccents()]
        if lower:
            steps.append(normalizers.Lowercase())
        flags = {"do_lower_case": lower, "keep_accents": keep_accents}
    if spm.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spm.precompiled_charsmap))
    if steps:
        rust.normalizer = normalizers.Sequence(steps)
    rust.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    rust.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    _add_specials(rust, specials, path, [p.piece for p in spm.pieces if p.type in (CONTROL, USER_DEFINED)])
    template = _make_template(rust, specials, path, roberta=xlmr)
    (c, cid), (s, sid) = (template.cls[1], template.cls[0]), (template.sep[1], template.sep[0])
    pair = f"{c} $A {s} {s} $B {s}" if xlmr else f"{c}:0 $A:0 {s}:0 $B:1 {s}:1"
    rust.post_processor = processors.TemplateProcessing(
        single=f"{c} $A {s}", pair=pair, special_tokens=[(c, cid), (s, sid)]
    )
    config = {"tokenizer_class": cls_name, **flags, **config}
    return Pipeline(rust, template, specials, config, {path.name: path.read_bytes()})


# --- pieces --------------------------------------------------------------------------------------


def _specials(config: dict[str, Any], defaults: SpecialTokens) -> SpecialTokens:
    """Special token strings from tokenizer_config.json, else the family's defaults."""
    values = {}
    for name in _SPECIAL_NAMES:
        value = config.get(f"{name}_token", getattr(defaults, name))
        if isinstance(value, dict):  # transformers may write {"content": "<s>", ...}
            value = value.get("content")
        values[name] = value if isinstance(value, str) else getattr(defaults, name)
    return SpecialTokens(**values)


def _add_specials(rust: tokenizers.Tokenizer, specials: SpecialTokens, source: Path, extra=()) -> None:
    """Register the special tokens as transformers does: matched whole in text, skipped when decoding."""
    tokens = [getattr(specials, n) for n in _SPECIAL_NAMES]
    missing = [t for t in tokens[:4] if rust.token_to_id(t) is None]
    if missing:
        raise ValueError(
            f"{source} lacks the special tokens {missing}; set pad_token/unk_token/cls_token/sep_token in "
            "tokenizer_config.json to the ones the vocab has"
        )
    present = [t for t in dict.fromkeys([*tokens, *extra]) if rust.token_to_id(t) is not None]
    rust.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in present])


def _make_template(
    rust: tokenizers.Tokenizer, specials: SpecialTokens, source: Path, roberta: bool
) -> Template:
    ids = [rust.token_to_id(t) for t in (specials.cls, specials.sep)]
    if None in ids:
        raise ValueError(f"{source}: the vocab lacks {specials.cls!r} or {specials.sep!r}")
    cls, sep = (ids[0], specials.cls), (ids[1], specials.sep)
    return Template(cls, sep, pair_seps=2, type_b=0) if roberta else Template(cls, sep)


def _template(post: dict[str, Any] | None, source: Path) -> tuple[Template | None, SpecialTokens]:
    """The pair template a tokenizer.json's post-processor applies, and the special tokens it implies."""
    if post is None:
        return None, _ALBERT_SPECIALS
    if post["type"] == "Sequence":
        found = [_template(p, source) for p in post["processors"]]
        return next((f for f in found if f[0] is not None), (None, _ALBERT_SPECIALS))
    if post["type"] in ("RobertaProcessing", "BertProcessing"):
        roberta = post["type"] == "RobertaProcessing"
        cls, sep = tuple(post["cls"])[::-1], tuple(post["sep"])[::-1]
        template = Template(cls, sep, pair_seps=2, type_b=0) if roberta else Template(cls, sep)
        defaults = _ROBERTA_SPECIALS if roberta else SpecialTokens()
        return template, SpecialTokens(**{**defaults.__dict__, "cls": cls[1], "sep": sep[1]})
    if post["type"] != "TemplateProcessing":
        return None, _ALBERT_SPECIALS
    pair, known = post["pair"], post["special_tokens"]
    kinds = [
        "A" if "Sequence" in p and p["Sequence"]["id"] == "A" else "B" if "Sequence" in p else "S"
        for p in pair
    ]
    shape = "".join(kinds)
    if shape not in ("SASBS", "SASSBS"):
        raise ValueError(
            f"{source}: the pair template {shape} is not one bertkit knows; it reads "
            "cls A sep B sep (BERT, ALBERT) and cls A sep sep B sep (RoBERTa, XLM-R)"
        )
    names = [p["SpecialToken"]["id"] for p in pair if "SpecialToken" in p]
    if len(set(names[1:])) != 1:
        raise ValueError(f"{source}: the pair template uses different separators {names[1:]}")
    cls = (known[names[0]]["ids"][0], names[0])
    sep = (known[names[1]]["ids"][0], names[1])
    type_b = pair[kinds.index("B")]["Sequence"]["type_id"]
    template = Template(cls, sep, pair_seps=shape.count("S") - 2, type_b=type_b)
    defaults = _ROBERTA_SPECIALS if cls[1] == "<s>" else _ALBERT_SPECIALS
    return template, SpecialTokens(**{**defaults.__dict__, "cls": cls[1], "sep": sep[1]})


def _json(path: Path) -> dict[str, Any]:
    return load_json_object(path, "a tokenizer file; restore it from the original model", "tokenizer file")
