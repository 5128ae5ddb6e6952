"""Byte-level BPE and SentencePiece tokenizers against transformers' fast tokenizers (ids, types, offsets).

Tiny tokenizers are trained in the test (conftest ``subword_dirs``); the texts are all 872 SST-2 dev sentences,
300 ChnSentiCorp dev reviews and a few hand-made ones (emoji, combining accents, full-width forms), alone and
as pairs. The fast tests take a sample (~10 s); the slow one every text (~15 s).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import decoders

from bertkit.tokenization import Encoding, Tokenizer
from bertkit.tokenization.spm import read_spm
from bertkit.tokenization.subword import SubwordTokenizer

transformers = pytest.importorskip("transformers")

TRICKY = [
    "Café naïve ☕️ 👩‍👩‍👧 emoji 🤗!",
    "cafe\u0301 nai\u0308ve re\u0301sume\u0301",  # combining accents
    "ＡＢＣ１２３ full\u3000width！（ｈｉ）",
    "  two  spaces, a\ttab and\na newline ",
    "",
    "x" * 300,
    "ﬁne ﬂower ½ ① ™",
    "Ωμέγα 𝒜𝒷𝒸 zero\u200bwidth",
    "lone \ud800 surrogate",
]
HF_CLASSES = {
    "roberta": "RobertaTokenizerFast",
    "albert": "AlbertTokenizerFast",
    "xlmr": "XLMRobertaTokenizerFast",
}


@pytest.fixture(scope="module")
def texts(data_dir: Path) -> list[str]:
    sst = (data_dir / "glue/SST-2/dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    zh = (data_dir / "chnsenticorp/dev.tsv").read_text(encoding="utf-8").splitlines()[1:301]
    assert len(sst) == 872 and len(zh) == 300
    return [line.rsplit("\t", 1)[0] for line in sst] + [line.split("\t", 1)[1] for line in zh] + TRICKY


def _hf(name: str, folder: Path, **kwargs):  # noqa: ANN202
    return getattr(transformers, HF_CLASSES[name]).from_pretrained(folder, **kwargs)


def _same_as_hf(ours: Tokenizer, hf, texts: list[str], pairs: list[str] | None) -> None:  # noqa: ANN001
    def clean(xs: list[str] | None) -> list[str] | None:  # transformers cannot take a lone surrogate
        return None if xs is None else [t.replace("\ud800", "\ufffd") for t in xs]

    ref = hf(clean(texts), clean(pairs), return_offsets_mapping=True, return_token_type_ids=True)
    got = ours.encode_batch(texts, pairs)
    assert [e.ids for e in got] == ref["input_ids"]
    assert [e.type_ids for e in got] == ref["token_type_ids"]
    for i, (enc, hf_enc) in enumerate(zip(got, ref.encodings, strict=True)):
        where = f"text {i}: {texts[i][:60]!r}"
        for (start, end), (hf_start, hf_end), seq in zip(
            enc.offsets, hf_enc.offsets, enc.sequence_ids, strict=True
        ):
            if (start, end) != (hf_start, hf_end):  # only where transformers leaves characters to no token
                text = texts[i] if seq == 0 else pairs[i]  # type: ignore[index]
                assert start <= hf_start <= hf_end <= end, where
                extra = text[start:hf_start] + text[hf_end:end]
                assert extra and not any(c.isspace() for c in extra), where
        assert enc.tokens == hf_enc.tokens, where
        assert enc.sequence_ids == hf_enc.sequence_ids, where
        assert enc.special_tokens_mask == hf_enc.special_tokens_mask, where
        assert enc.word_ids == hf_enc.word_ids, where


@pytest.mark.parametrize("name", ["roberta", "albert", "xlmr"])
def test_same_ids_offsets_and_types_as_transformers(name: str, subword_dirs: dict, texts: list[str]) -> None:
    """Every 10th text (and the hand-made ones), alone and paired; the slow test below takes them all."""
    ours, hf = Tokenizer.from_pretrained(subword_dirs[name]), _hf(name, subword_dirs[name])
    assert isinstance(ours, SubwordTokenizer)
    sample = texts[::10] + TRICKY
    _same_as_hf(ours, hf, sample, None)
    _same_as_hf(ours, hf, sample, sample[1:] + sample[:1])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["roberta", "albert", "xlmr"])
def test_same_as_transformers_on_all_sst2_dev_and_300_chinese(
    name: str, subword_dirs: dict, texts: list[str]
) -> None:
    """All 872 SST-2 dev sentences, 300 ChnSentiCorp reviews and the hand-made texts, alone and paired (~5 s each)."""
    ours, hf = Tokenizer.from_pretrained(subword_dirs[name]), _hf(name, subword_dirs[name])
    _same_as_hf(ours, hf, texts, None)
    _same_as_hf(ours, hf, texts, texts[1:] + texts[:1])
    assert _offsets_slice_the_text(ours, name, texts) > 10_000


@pytest.mark.parametrize("name", ["roberta", "albert", "xlmr"])
def test_every_offset_slices_the_original_text(name: str, subword_dirs: dict, texts: list[str]) -> None:
    """Every 10th text and the hand-made ones; the slow test above checks them all."""
    ours = Tokenizer.from_pretrained(subword_dirs[name])
    assert _offsets_slice_the_text(ours, name, texts[::10] + TRICKY) > 1_000


def _offsets_slice_the_text(ours: Tokenizer, name: str, texts: list[str]) -> int:
    """Each run of tokens sharing characters spells exactly the (normalized) original text it points at,
    and every character that survives normalization is covered by some token; returns the runs checked."""
    rust = ours._pipeline.rust
    unk = ours.convert_ids_to_tokens(ours.unk_token_id)
    if name == "roberta":
        decoder = decoders.ByteLevel()  # a character's bytes may be split over several tokens
        spell, normalize = decoder.decode, lambda s: s
    else:
        spell = lambda ts: "\0" if unk in ts else "".join(ts).replace("▁", "")  # noqa: E731
        normalize = rust.normalizer.normalize_str
    checked = 0
    for text, enc in zip(texts, ours.encode_batch(texts), strict=True):
        runs: list[list] = []
        for token, (start, end), special in zip(
            enc.tokens, enc.offsets, enc.special_tokens_mask, strict=True
        ):
            if special:
                assert (start, end) == (0, 0)
                continue
            assert 0 <= start <= end <= len(text)
            if runs and start < runs[-1][1]:  # one character split into several tokens (bytes, or ﬁ -> f i)
                runs[-1][1], runs[-1][2] = max(end, runs[-1][1]), runs[-1][2] + [token]
            else:
                runs.append([start, end, [token]])
        for start, end, tokens in runs:
            spelled = spell(tokens)
            if "\0" in spelled:  # <unk>: nothing to spell (a lone surrogate is spelled U+FFFD)
                continue
            assert "".join(spelled.split()) == "".join(
                normalize(text[start:end].replace("\ud800", "\ufffd")).split()
            ), (
                text,
                start,
                tokens,
            )
            checked += 1
        covered = set().union(*(range(s, e) for s, e, _ in runs)) if runs else set()
        for i, char in enumerate(text):
            if not char.isspace() and char != "\ud800" and normalize(char).strip():
                assert i in covered, (text, i, char)
    return checked


@pytest.mark.parametrize("name", ["roberta", "albert", "xlmr"])
def test_words_as_transformers_with_a_prefix_space(name: str, subword_dirs: dict, data_dir: Path) -> None:
    """NER input (is_split_into_words): ids and word_ids as transformers' add_prefix_space=True."""
    sentences, words = [], []
    for line in (data_dir / "conll2003/valid.txt").read_text(encoding="utf-8").splitlines()[:2000]:
        if line.strip() and not line.startswith("-DOCSTART-"):
            words.append(line.split()[0])
        elif words:
            sentences.append(words)
            words = []
    ours, hf = (
        Tokenizer.from_pretrained(subword_dirs[name]),
        _hf(name, subword_dirs[name], add_prefix_space=True),
    )
    ref = hf(sentences, is_split_into_words=True, return_offsets_mapping=True)
    for i, enc in enumerate(ours.encode_batch(sentences, is_split_into_words=True)):
        assert enc.ids == ref["input_ids"][i]
        assert enc.word_ids == ref.word_ids(i)
        assert enc.offsets == [tuple(o) for o in ref["offset_mapping"][i]]


def test_templates_truncation_windows_and_padded_batches(subword_dirs: dict, texts: list[str]) -> None:
    roberta = Tokenizer.from_pretrained(subword_dirs["roberta"])
    enc = roberta.encode("a good film", "a bad one")
    assert enc.tokens[0] == "<s>" and enc.tokens.count("</s>") == 3
    first_b = enc.sequence_ids.index(1)
    assert enc.tokens[first_b - 2 : first_b] == ["</s>", "</s>"] and set(enc.type_ids) == {0}
    albert = Tokenizer.from_pretrained(subword_dirs["albert"])
    enc = albert.encode("a good film", "a bad one")
    assert (enc.tokens[0], enc.tokens[-1], enc.tokens.count("[SEP]")) == ("[CLS]", "[SEP]", 2)
    assert enc.type_ids[enc.sequence_ids.index(1)] == 1 and enc.type_ids[-1] == 1
    # with_specials (tasks that assemble windows themselves) follows the same templates
    for tok, n_pair in ((roberta, 4), (albert, 3)):
        a, b = tok.encode("a good film"), tok.encode("a bad one")
        enc = tok.encode("a good film", "a bad one")
        assert tok.with_specials(a.ids[1:-1], b.ids[1:-1]) == (enc.ids, enc.type_ids)
        assert tok.with_specials(a.ids[1:-1]) == (a.ids, a.type_ids)
        assert tok.num_special_tokens(pair=True) == n_pair and tok.num_special_tokens() == 2
    # the padded batch is the encodings' ids, with the same pair truncation (4 specials for RoBERTa)
    for tok in (roberta, albert):
        a, b = texts[:64], texts[64:128]
        encs = tok.encode_batch(a, b, max_length=24)
        batch = tok(a, b, max_length=24, padding="max_length")
        for row, types, enc in zip(
            batch["input_ids"].tolist(), batch["token_type_ids"].tolist(), encs, strict=True
        ):
            assert len(enc) <= 24 and row[: len(enc)] == enc.ids and types[: len(enc)] == enc.type_ids
            assert row[len(enc) :] == [tok.pad_token_id] * (24 - len(enc))
    # windows over the second text: every token of it is in some window, between the template's specials
    question, context = "who is it?", " ".join(texts[:20])
    windows = roberta.encode(question, context, max_length=48, stride=8).windows
    assert len(windows) > 3
    seen = {o for w in windows for o, s in zip(w.offsets, w.sequence_ids, strict=True) if s == 1}
    assert seen == {o for o in roberta.encode(context).offsets[1:-1]}
    assert all(len(w) <= 48 and w.tokens[-1] == "</s>" for w in windows)


@pytest.mark.parametrize("name", ["roberta", "albert", "xlmr"])
def test_save_pretrained_reads_back_in_transformers(
    name: str, subword_dirs: dict, texts: list[str], tmp_path: Path
) -> None:
    ours = Tokenizer.from_pretrained(subword_dirs[name])
    ours.save_pretrained(tmp_path)
    sample, pairs = texts[::40], texts[1::40]
    expected = _hf(name, subword_dirs[name])(sample, pairs)["input_ids"]
    back = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert type(back).__name__ == HF_CLASSES[name].removesuffix("Fast")
    assert back(sample, pairs)["input_ids"] == expected
    again = Tokenizer.from_pretrained(tmp_path)  # now from its tokenizer.json
    assert [e.ids for e in again.encode_batch(sample, pairs)] == expected
    assert again.model_max_length == 512
    assert ours.decode(ours.encode(texts[0]).ids) == back.decode(
        expected[0][: len(ours.encode(texts[0]))], True
    )


def test_tokenizer_json_alone(subword_dirs: dict, texts: list[str], tmp_path: Path) -> None:
    """A folder with only transformers' tokenizer.json (and its config) gives the same encodings."""
    hf = _hf("roberta", subword_dirs["roberta"])
    hf.save_pretrained(tmp_path)
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).unlink(missing_ok=True)
    ours = Tokenizer.from_pretrained(tmp_path)
    sample = texts[::5]
    _same_as_hf(ours, hf, sample, sample[1:] + sample[:1])


def test_wordpiece_folders_keep_googles_rules(tmp_path: Path, fixtures_dir: Path) -> None:
    """A tokenizer.json holding WordPiece runs on Google's rules (as vocab.txt does), not on Rust's."""
    vocab = fixtures_dir / "tiny-bert-tf/vocab.txt"
    google = Tokenizer.from_vocab(vocab, do_lower_case=True)
    hf = transformers.BertTokenizerFast(str(vocab), do_lower_case=True)
    hf.save_pretrained(tmp_path)
    assert not (tmp_path / "vocab.txt").exists() and (tmp_path / "tokenizer.json").is_file()
    from_json = Tokenizer.from_pretrained(tmp_path)
    assert type(from_json) is Tokenizer and from_json.do_lower_case
    text = "Ἀθῆναι ΣΊΣΥΦΟΣ [CLS] naïve"  # where Google's rules and the Rust BertNormalizer differ
    assert from_json.encode(text).ids == google.encode(text).ids


def test_bad_folders_say_what_is_wrong(subword_dirs: dict, tmp_path: Path) -> None:
    (tmp_path / "spiece.model").write_bytes(b"\x0a\x05hello")  # not a ModelProto
    with pytest.raises(ValueError, match="spiece.model"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "spiece.model").unlink()
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"cls_token": "<cls>"}))
    (tmp_path / "vocab.json").write_bytes((subword_dirs["roberta"] / "vocab.json").read_bytes())
    (tmp_path / "merges.txt").write_bytes((subword_dirs["roberta"] / "merges.txt").read_bytes())
    with pytest.raises(ValueError, match="<cls>"):
        Tokenizer.from_pretrained(tmp_path)
    ours = Tokenizer.from_pretrained(subword_dirs["roberta"])
    with pytest.raises(ValueError, match="WordPiece"):
        ours.add_tokens(["newword"])
    assert read_spm(subword_dirs["albert"] / "spiece.model").unk_id == 1


def test_encoding_fields_are_plain(subword_dirs: dict) -> None:
    enc = Tokenizer.from_pretrained(subword_dirs["xlmr"]).encode("hello world")
    assert isinstance(enc, Encoding) and enc.attention_mask == [1] * len(enc)
    assert enc.char_to_token(7) == next(i for i, (s, e) in enumerate(enc.offsets) if s <= 7 < e)
