"""Google's BasicTokenizer rules, and the one place where we make the Rust engine follow them.

Google's ``tokenization.py`` (google-research/bert) is the specification. Its BasicTokenizer, per text:

1. deletes NUL, U+FFFD and every Cc/Cf character except tab, newline and carriage return;
2. puts spaces around CJK ideographs (U+4E00-9FFF, U+3400-4DBF, U+20000-2A6DF, U+2A700-2B73F,
   U+2B740-2B81F, U+2B820-2CEAF, U+F900-FAFF, U+2F800-2FA1F);
3. splits on whitespace (tab, newline, CR, Zs, and whatever else ``str.split()`` splits on);
4. when lowercasing: ``word.lower()`` on each whole word, then NFD, then deletes Mn characters;
5. splits off every punctuation character (ASCII 33-47, 58-64, 91-96, 123-126, and category P*).

WordPiece is greedy longest-match-first with ``##`` pieces, and a word over 200 characters is ``[UNK]``.

The Rust ``BertNormalizer``/``BertPreTokenizer`` differ (fixtures/README.md, "Where the implementations
disagree"), so the engine is built here from plain parts whose character classes come from Python's
``unicodedata``, the tables Google's code consults:

===============================  ===================================  ====================================
Google                           Rust Bert* components (0.23.3)       here
===============================  ===================================  ====================================
deletes only Cc, Cf (Co, Cn      deletes Co (private use) too         ``Replace`` with the Cc/Cf class
stay and make the word [UNK])
CJK ranges from U+2B820          from U+2B920                         ``Split`` on Google's ranges
strips Mn after NFD              its own mark table: 260 newer Mn     ``Replace`` with the Mn class
                                 kept, some Mc/Me stripped
P* from Python's tables          older tables: ~70 P* not split       ``Split`` on the P* class
``[CLS]`` in text is plain text  kept whole (an added token)          no added tokens in the engine
200 characters per word          100 (transformers)                   ``max_input_chars_per_word=200``
no NFC when cased                the same                             nothing to do
===============================  ===================================  ====================================

Three things no Rust component can do; texts that contain them take the Python path
(:func:`basic_tokenize`, then Rust WordPiece on its words), and :func:`needs_python` says which:

- ``str.lower()`` on a whole word: Greek capital sigma becomes final sigma at the end of a word;
- characters on which Rust's lowercase/NFD tables (newer Unicode) disagree with Python's; found by
  comparing the two once per process (:func:`_divergent_chars`);
- lone surrogates, which Rust cannot take at all (Google keeps them, so the word becomes ``[UNK]``).

Plain ASCII never takes the Python path.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from typing import NamedTuple

from tokenizers import Regex, normalizers, pre_tokenizers

MAX_INPUT_CHARS_PER_WORD = 200
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
_ASCII_PUNCT = (
    frozenset(range(33, 48))
    | frozenset(range(58, 65))
    | frozenset(range(91, 97))
    | frozenset(range(123, 127))
)
_CAPITAL_SIGMA = "\u03a3"
_SURROGATES = "\ud800-\udfff"


class Word(NamedTuple):
    """A word from the basic tokenizer; char i of ``text`` came from ``source[starts[i]:ends[i]]``."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]


# --- Google's character predicates (tokenization.py), verbatim in meaning -------------------------


def is_control(char: str) -> bool:
    """Google's ``_is_control``: Cc or Cf, but not tab/newline/CR. Example: ``is_control("\\u200b") -> True``."""
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def is_punctuation(char: str) -> bool:
    """Google's ``_is_punctuation``: the ASCII symbol ranges or category P*. Example: ``is_punctuation("$") -> True``."""
    return ord(char) in _ASCII_PUNCT or unicodedata.category(char).startswith("P")


def is_chinese_char(cp: int) -> bool:
    """Google's ``_is_chinese_char`` on a code point. Example: ``is_chinese_char(0x2B820) -> True``."""
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


# --- The Rust engine, configured to Google's rules ------------------------------------------------


def _onig_class(code_points: list[int]) -> str:
    """An Oniguruma character class for a sorted list of code points. Example: ``[1, 2, 5] -> '[\\x{1}-\\x{2}\\x{5}]'``."""
    parts, start, prev = [], None, None
    for cp in [*code_points, -2]:
        if start is not None and cp == prev + 1:
            prev = cp
            continue
        if start is not None:
            parts.append(f"\\x{{{start:X}}}" + (f"-\\x{{{prev:X}}}" if prev > start else ""))
        start = prev = cp
    return "[" + "".join(parts) + "]"


@functools.lru_cache(maxsize=1)
def _classes() -> dict[str, str]:
    """Google's character classes from Python's unicodedata, as Oniguruma classes (computed once, ~0.2 s)."""
    found: dict[str, list[int]] = {"control": [0, 0xFFFD], "space": [], "punct": [], "mn": []}
    for cp in range(sys.maxunicode + 1):
        char = chr(cp)
        cat = unicodedata.category(char)
        if cat in ("Cc", "Cf") and char not in "\t\n\r":
            found["control"].append(cp)
        elif char.isspace():  # Google maps Zs/\t\n\r to " "; str.split() also splits on U+2028/2029
            found["space"].append(cp)
        elif cat[0] == "P" or cp in _ASCII_PUNCT:
            found["punct"].append(cp)
        elif cat == "Mn":
            found["mn"].append(cp)
    classes = {name: _onig_class(sorted(set(cps))) for name, cps in found.items()}
    classes["cjk"] = "[" + "".join(f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in CJK_RANGES) + "]"
    return classes


def _case_fold_steps() -> list[normalizers.Normalizer]:
    return [normalizers.Lowercase(), normalizers.NFD()]


def google_normalizer(lower: bool) -> normalizers.Normalizer:
    """Steps 1 and 4 of Google's BasicTokenizer as a Rust normalizer (offsets stay aligned)."""
    classes = _classes()
    steps = [normalizers.Replace(Regex(classes["control"]), "")]
    if lower:
        steps += [*_case_fold_steps(), normalizers.Replace(Regex(classes["mn"]), "")]
    return normalizers.Sequence(steps)


def google_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """Steps 2, 3 and 5 as a Rust pre-tokenizer: drop whitespace, isolate punctuation and CJK ideographs.

    Splitting CJK after lowercasing/NFD gives Google's words: NFD maps CJK compatibility ideographs to
    unified ones, both inside Google's ranges (tests check this over every code point).
    """
    classes = _classes()
    isolated = "[" + classes["punct"][1:-1] + classes["cjk"][1:-1] + "]"
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(classes["space"]), behavior="removed"),
            pre_tokenizers.Split(Regex(isolated), behavior="isolated"),
        ]
    )


# --- Which texts need the Python path ------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _divergent_chars() -> frozenset[str]:
    """Characters whose lowercase+NFD differs between the Rust engine and Python (once per process).

    Each character is checked after U+0345 (canonical combining class 240), which also exposes a
    combining class that differs between the two Unicode versions.
    """
    planes = [*range(0x0000, 0x40000), *range(0xE0000, 0xF0000)]  # planes 4-13 unassigned, 15-16 private
    chars = [chr(cp) for cp in planes if not (0xD800 <= cp <= 0xDFFF) and cp != 0x0A]
    probe = "\n".join("\u0345" + c for c in chars)
    rust = normalizers.Sequence(_case_fold_steps()).normalize_str(probe)
    python = unicodedata.normalize("NFD", probe.lower())
    if rust == python:
        return frozenset()
    pairs = zip(chars, rust.split("\n"), python.split("\n"), strict=True)
    return frozenset(c for c, r, p in pairs if r != p)


@functools.lru_cache(maxsize=2)
def _python_only(lower: bool) -> re.Pattern[str]:
    chars = {_CAPITAL_SIGMA, *_divergent_chars()} if lower else set()
    return re.compile("[" + _SURROGATES + "".join(re.escape(c) for c in sorted(chars)) + "]")


def needs_python(text: str, lower: bool) -> bool:
    """True when the Rust engine cannot reproduce Google on ``text``. Example: ``needs_python("ΟΔΟΣ", True) -> True``."""
    return not text.isascii() and _python_only(lower).search(text) is not None


# --- Google's BasicTokenizer in Python, with character alignment ----------------------------------


def basic_tokenize(text: str, lower: bool) -> list[Word]:
    """Google's ``BasicTokenizer.tokenize``, keeping where each output character came from.

    Example: ``[w.text for w in basic_tokenize("ΟΔΟΣ, İs", True)] -> ['οδος', ',', 'is']``
    """
    words: list[Word] = []
    chars: list[str] = []
    index: list[int] = []
    for i, char in enumerate(text):
        cp = ord(char)
        if cp == 0 or cp == 0xFFFD or is_control(char):
            continue
        boundary = char.isspace() or is_chinese_char(cp)
        if boundary and chars:
            words += _split_word("".join(chars), index, lower)
            chars, index = [], []
        if not char.isspace():
            chars.append(char)
            index.append(i)
        if is_chinese_char(cp):
            words += _split_word("".join(chars), index, lower)
            chars, index = [], []
    if chars:
        words += _split_word("".join(chars), index, lower)
    return words


def _split_word(word: str, index: list[int], lower: bool) -> list[Word]:
    """Lowercase/strip accents (when ``lower``) and split on punctuation, one whitespace-free word."""
    aligned = [(c, i, i + 1) for c, i in zip(word, index, strict=True)]
    if lower:
        aligned = _strip_accents(_lower(word, aligned))
    out: list[Word] = []
    run: list[tuple[str, int, int]] = []
    for item in aligned:
        if is_punctuation(item[0]):
            out += [_word(run), _word([item])] if run else [_word([item])]
            run = []
        else:
            run.append(item)
    if run:
        out.append(_word(run))
    return out


def _word(items: list[tuple[str, int, int]]) -> Word:
    text, starts, ends = zip(*items, strict=True)
    return Word("".join(text), starts, ends)


def _lower(word: str, aligned: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """``word.lower()`` (context-sensitive: final sigma) with each output char aligned to its source."""
    lowered = word.lower()
    if len(lowered) == len(aligned):
        return [(c, s, e) for c, (_, s, e) in zip(lowered, aligned, strict=True)]
    out, pos = [], 0
    for char, start, end in aligned:
        n = len(char.lower())  # the length of a lowercase mapping does not depend on context
        out += [(c, start, end) for c in lowered[pos : pos + n]]
        pos += n
    return out


def _strip_accents(aligned: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """NFD, then delete Mn (Google's ``_run_strip_accents``), keeping the alignment."""
    out = [(d, s, e) for c, s, e in aligned for d in unicodedata.normalize("NFD", c)]
    text = "".join(c for c, _, _ in aligned)
    if "".join(c for c, _, _ in out) != unicodedata.normalize("NFD", text):
        out = _canonical_order(out)
    return [item for item in out if unicodedata.category(item[0]) != "Mn"]


def _canonical_order(items: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Unicode canonical ordering: stable sort of each run of non-starters by combining class."""
    out, run = [], []
    for item in [*items, ("\0", 0, 0)]:
        if unicodedata.combining(item[0]):
            run.append(item)
            continue
        out += sorted(run, key=lambda x: unicodedata.combining(x[0]))
        out.append(item)
        run = []
    return out[:-1]
