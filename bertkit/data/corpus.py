"""Pretraining data: raw text -> documents -> sentence pairs with masked tokens -> shards on disk.

Input: one sentence per line, a blank line between documents (Google's format). The semantics are those of
Google's create_pretraining_data.py: documents shuffled; for each of dupe_factor passes, every document is
cut into chunks of sentences up to a target length (shorter with short_seq_prob); a chunk is split into A and
B, and half the time (always when the chunk is one sentence) B is taken from a random other document and the
unused sentences are put back; the pair is truncated at random from the front or back to max_seq_length - 3;
then masked (bertkit.data.masking). Instances are shuffled and written to .npz shards with a meta.json.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from bertkit.data.masking import (
    jieba_spans,
    mask_sequence,
    read_word_ref,
    ref_continuation,
    span_continuation,
    wordpiece_continuation,
)
from bertkit.data.shards import META_FILE, write_shards
from bertkit.textfile import text_lines
from bertkit.tokenization import Tokenizer

logger = logging.getLogger(__name__)

SEGMENTERS = ("jieba",)

Token = tuple[int, bool]  # (id, continues the previous token's word)
Document = list[list[Token]]  # sentences


@dataclass(frozen=True)
class PretrainingDataConfig:
    """create_pretraining_data.py's flags, plus whole-word masking options and the shard size."""

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    dupe_factor: int = 10
    short_seq_prob: float = 0.1
    # None: on exactly when word boundaries are given (a segmenter or a word reference file)
    whole_word_mask: bool | None = None
    segmenter: str | None = None  # "jieba": Chinese word boundaries for whole-word masking
    seed: int = 12345
    instances_per_shard: int = 100_000

    def __post_init__(self) -> None:
        if self.max_seq_length < 5:
            raise ValueError(
                f"max_seq_length must be at least 5 ([CLS] A [SEP] B [SEP]), got {self.max_seq_length}"
            )
        if not 0 < self.masked_lm_prob < 1:
            raise ValueError(f"masked_lm_prob must be in (0, 1), got {self.masked_lm_prob}")
        if not 0 <= self.short_seq_prob <= 1:
            raise ValueError(f"short_seq_prob must be in [0, 1], got {self.short_seq_prob}")
        for name in ("max_predictions_per_seq", "dupe_factor", "instances_per_shard"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.segmenter is not None and self.segmenter not in SEGMENTERS:
            raise ValueError(f"segmenter must be one of {SEGMENTERS} or unset, got {self.segmenter!r}")


@dataclass(frozen=True)
class Instance:
    """One pretraining example, before padding."""

    input_ids: list[int]  # [CLS] A [SEP] B [SEP], masked
    a_length: int  # len([CLS] A [SEP]): token type 0 up to here, 1 after
    masked_positions: list[int]
    masked_ids: list[int]  # original ids at masked_positions
    is_random_next: bool  # Google's next_sentence_label 1
    forced_random: bool  # the chunk was one sentence, so B had to be random (Google's rule, not the coin)
    document_a: int  # index of A's document (after shuffling)
    document_b: int  # index of B's document
    continuation: list[bool]  # the word-continuation flags whole-word masking used


# --- reading and tokenizing ------------------------------------------------------------------------


def read_documents(paths: Iterable[str | Path]) -> list[list[tuple[str, str]]]:
    """Documents as lists of (line, "file:line"); blank lines separate documents; lines are stripped. Files may
    be gzipped; a line that is not UTF-8 stops the run with its place."""
    documents: list[list[tuple[str, str]]] = [[]]
    for path in map(Path, paths):
        for number, text in text_lines(path, "corpus file"):
            if line := text.strip():
                documents[-1].append((line, f"{path}:{number}"))
            elif documents[-1]:
                documents.append([])
        if documents[-1]:
            documents.append([])  # a new file starts a new document
    return [d for d in documents if d]


def tokenize_documents(
    documents: Sequence[Sequence[tuple[str, str]]],
    tokenizer: Tokenizer,
    segmenter: str | None = None,
    word_ref: str | Path | None = None,
    show_progress: bool = False,
) -> list[Document]:
    """Each line -> [(id, continuation)]; lines that give no tokens are dropped, then empty documents.

    Continuation is `##` (WordPiece), or also "inside a jieba word" (segmenter='jieba'), or also the
    positions of a word reference file (one list per non-blank line, in corpus order).
    """
    if segmenter is not None and word_ref is not None:
        raise ValueError("give either a segmenter or a word reference file, not both")
    refs = read_word_ref(word_ref) if word_ref is not None else None
    out: list[Document] = []
    lines_total = sum(len(d) for d in documents)
    with tqdm(total=lines_total, unit="line", disable=not show_progress, desc="tokenize") as bar:
        for doc in documents:
            encodings = tokenizer.encode_batch([line for line, _ in doc])
            sentences = []
            for (line, source), enc in zip(doc, encodings, strict=True):
                ids, tokens, offsets = enc.ids[1:-1], enc.tokens[1:-1], enc.offsets[1:-1]
                cont = wordpiece_continuation(tokens)
                if segmenter == "jieba":
                    cont = [
                        a or b
                        for a, b in zip(cont, span_continuation(offsets, *jieba_spans(line)), strict=True)
                    ]
                elif refs is not None:
                    ref = next(refs, None)
                    if ref is None:
                        raise ValueError(
                            f"{word_ref} ends before the corpus does (at {source}); one line per corpus line"
                        )
                    flags = ref_continuation(ref, len(ids), f"{word_ref} for {source}")
                    cont = [a or b for a, b in zip(cont, flags, strict=True)]
                if ids:
                    sentences.append(list(zip(ids, cont, strict=True)))
            bar.update(len(doc))
            if sentences:
                out.append(sentences)
    if refs is not None and next(refs, None) is not None:
        raise ValueError(
            f"{word_ref} has more lines than the corpus has non-blank lines; it belongs to another corpus"
        )
    return out


# --- instances -------------------------------------------------------------------------------------


def truncate_pair(a: list[Token], b: list[Token], max_tokens: int, rng: random.Random) -> None:
    """Google's truncate_seq_pair: drop from the longer side (B on a tie), front or back at random."""
    while len(a) + len(b) > max_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def _make_instance(
    a: list[Token], b: list[Token], is_random: bool, forced: bool, docs: tuple[int, int], config: PretrainingDataConfig,
    specials: tuple[int, int, int], vocab_size: int, rng: random.Random,
) -> Instance:  # fmt: skip
    cls_id, sep_id, mask_id = specials
    ids = [cls_id, *(t for t, _ in a), sep_id, *(t for t, _ in b), sep_id]
    cont = [False, *(c for _, c in a), False, *(c for _, c in b), False]
    special = [False] * len(ids)
    special[0] = special[len(a) + 1] = special[-1] = True
    masked = mask_sequence(
        ids, special, cont, masked_lm_prob=config.masked_lm_prob, max_predictions=config.max_predictions_per_seq,
        whole_word=config.whole_word_mask, mask_id=mask_id, vocab_size=vocab_size, rng=rng,
    )  # fmt: skip
    return Instance(
        masked.input_ids,
        len(a) + 2,
        masked.positions,
        masked.labels,
        is_random,
        forced,
        docs[0],
        docs[1],
        cont,
    )


def instances_from_document(
    documents: Sequence[Document], index: int, config: PretrainingDataConfig, specials: tuple[int, int, int],
    vocab_size: int, rng: random.Random,
) -> list[Instance]:  # fmt: skip
    """Google's create_instances_from_document, drawing from rng in the same order."""
    document = documents[index]
    max_tokens = config.max_seq_length - 3
    target = max_tokens
    if rng.random() < config.short_seq_prob:
        target = rng.randint(2, max_tokens)
    instances: list[Instance] = []
    chunk: list[list[Token]] = []
    length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            a = [t for sentence in chunk[:a_end] for t in sentence]
            b: list[Token] = []
            if len(chunk) == 1 or rng.random() < 0.5:
                is_random = True
                for _ in range(10):  # Google's ten tries to find another document
                    other = rng.randint(0, len(documents) - 1)
                    if other != index:
                        break
                random_doc = documents[other]
                for sentence in random_doc[rng.randint(0, len(random_doc) - 1) :]:
                    b.extend(sentence)
                    if len(b) >= target - len(a):
                        break
                i -= len(chunk) - a_end  # put the unused sentences back
            else:
                is_random, other = False, index
                b = [t for sentence in chunk[a_end:] for t in sentence]
            truncate_pair(a, b, max_tokens, rng)
            instances.append(
                _make_instance(
                    a, b, is_random, len(chunk) == 1, (index, other), config, specials, vocab_size, rng
                )
            )
            chunk, length = [], 0
        i += 1
    return instances


def create_instances(
    documents: list[Document],
    config: PretrainingDataConfig,
    tokenizer: Tokenizer,
    show_progress: bool = False,
) -> list[Instance]:
    """Google's create_training_instances after tokenization: shuffle documents, dupe_factor passes, shuffle."""
    if tokenizer.mask_token_id is None:
        raise ValueError("the vocab has no [MASK] token, which masked-LM data needs")
    if len(documents) < 2:
        logger.warning(
            "the corpus has %d document(s): random next sentences come from the same document", len(documents)
        )
    rng = random.Random(config.seed)
    documents = list(documents)
    rng.shuffle(documents)
    specials = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id)
    instances: list[Instance] = []
    with tqdm(
        total=config.dupe_factor * len(documents), unit="doc", disable=not show_progress, desc="instances"
    ) as bar:
        for _ in range(config.dupe_factor):
            for index in range(len(documents)):
                instances.extend(
                    instances_from_document(documents, index, config, specials, tokenizer.vocab_size, rng)
                )
                bar.update(1)
    rng.shuffle(instances)
    return instances


def create_pretraining_data(
    inputs: Sequence[str | Path], output_dir: str | Path, tokenizer: Tokenizer, config: PretrainingDataConfig,
    word_ref: str | Path | None = None, show_progress: bool = False,
) -> dict:  # fmt: skip
    """The whole pipeline (bertkit pretrain-data): text files -> shards. Returns the meta it wrote."""
    if config.segmenter is not None and config.whole_word_mask is False:
        raise ValueError(f"segmenter {config.segmenter!r} only matters with whole_word_mask=True")
    wwm = word_ref is not None or config.segmenter is not None or bool(config.whole_word_mask)
    config = PretrainingDataConfig(**{**asdict(config), "whole_word_mask": wwm})
    raw = read_documents(inputs)
    docs = tokenize_documents(raw, tokenizer, config.segmenter, word_ref, show_progress)
    if not docs:
        raise ValueError(
            f"{', '.join(map(str, inputs))}: no text found (one sentence per line, blank line between documents)"
        )
    instances = create_instances(docs, config, tokenizer, show_progress)
    extra = {
        "inputs": [str(p) for p in inputs],
        "num_documents": len(docs),
        "word_ref": str(word_ref) if word_ref else None,
    }
    write_shards(instances, output_dir, config, tokenizer, extra)
    return json.loads((Path(output_dir) / META_FILE).read_text(encoding="utf-8"))
