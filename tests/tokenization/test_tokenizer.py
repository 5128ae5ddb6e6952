"""Tokenizer against Google's recorded answers (fixtures/tokenization.json), and its API."""

from __future__ import annotations

import hashlib
import json
import random
import unicodedata
from pathlib import Path

import pytest
import torch

from bertkit.tokenization import Tokenizer, rules

MODES = [f"{v}/{m}" for v in ("tiny", "en-uncased", "zh", "en-cased") for m in ("lower", "cased")]
VOCAB_FILES = {
    "tiny": "tiny-bert-tf/vocab.txt",  # under fixtures/
    "en-uncased": "vocab/bert-base-uncased-vocab.txt",  # under models/
    "zh": "vocab/bert-base-chinese-vocab.txt",
    "en-cased": "vocab/bert-base-cased-vocab.txt",
}


@pytest.fixture(scope="module")
def spec(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "tokenization.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def vocab_paths(fixtures_dir: Path, models_dir: Path, spec: dict) -> dict[str, Path]:
    paths = {
        name: (fixtures_dir if name == "tiny" else models_dir) / rel for name, rel in VOCAB_FILES.items()
    }
    for name, path in paths.items():  # the files the fixture was made from
        assert hashlib.sha256(path.read_bytes()).hexdigest() == spec["vocabs"][name]["sha256"], name
    return paths


@pytest.fixture(scope="module")
def tokenizers_by_mode(vocab_paths: dict[str, Path]) -> dict[str, Tokenizer]:
    out = {}
    for mode in MODES:
        vocab, casing = mode.split("/")
        out[mode] = Tokenizer.from_vocab(vocab_paths[vocab], do_lower_case=casing == "lower")
    return out


def google(result: dict) -> dict:
    """Google's answer: a `google` entry overrides the slow reference."""
    return result.get("google", result)


def normalise(text: str, lower: bool) -> str:
    """Google's per-character normalisation, with both sigmas as one letter."""
    text = "".join(c for c in text if ord(c) not in (0, 0xFFFD) and not rules.is_control(c))
    if lower:
        text = "".join(
            c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn"
        )
    return text.replace("ς", "σ")


def body(token: str) -> str:
    return (token[2:] if token.startswith("##") else token).replace("ς", "σ")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", ["routed", "python"])
def test_every_case_gives_googles_tokens_and_ids(spec, tokenizers_by_mode, mode, path, monkeypatch):
    if path == "python":  # Google's BasicTokenizer in Python for every text, then Rust WordPiece
        monkeypatch.setattr(rules, "needs_python", lambda text, lower: True)
    tok = tokenizers_by_mode[mode]
    wrong = []
    for case in spec["cases"]:
        expected = google(case["results"][mode])
        tokens = tok.tokenize(case["text"])
        enc = tok.encode(case["text"])
        if tokens != expected["tokens"] or enc.ids[1:-1] != expected["ids"] or enc.tokens[1:-1] != tokens:
            wrong.append((case["id"], tokens, expected["tokens"]))
    assert not wrong


@pytest.mark.parametrize("mode", MODES)
def test_rust_engine_alone_differs_only_where_needs_python_says(spec, tokenizers_by_mode, mode, monkeypatch):
    tok = tokenizers_by_mode[mode]
    lower = tok.do_lower_case
    routed = {c["id"] for c in spec["cases"] if rules.needs_python(c["text"], lower)}
    monkeypatch.setattr(rules, "needs_python", lambda text, lower: False)
    wrong = {
        c["id"] for c in spec["cases"] if tok.tokenize(c["text"]) != google(c["results"][mode])["tokens"]
    }
    assert wrong <= routed
    if lower:
        assert "greek_final_sigma" in wrong  # the reason the Python path exists


@pytest.mark.parametrize("mode", MODES)
def test_offsets_point_into_the_original_text(spec, tokenizers_by_mode, mode):
    tok = tokenizers_by_mode[mode]
    for case in spec["cases"]:
        text, enc = case["text"], tok.encode(case["text"])
        words: dict[int, list[tuple[str, int, int]]] = {}
        for token, (start, end), word in zip(enc.tokens, enc.offsets, enc.word_ids, strict=True):
            if word is None:
                assert (start, end) == (0, 0)
                continue
            assert 0 <= start < end <= len(text), case["id"]
            words.setdefault(word, []).append((token, start, end))
        for items in words.values():
            if any(t == "[UNK]" for t, _, _ in items):
                continue
            for token, start, end in items:
                assert body(token) in normalise(text[start:end], tok.do_lower_case), (case["id"], token)
            whole = normalise(text[items[0][1] : items[-1][2]], tok.do_lower_case)
            assert "".join(body(t) for t, _, _ in items) == whole, case["id"]


@pytest.mark.parametrize("mode", ["en-uncased/lower", "en-cased/cased", "zh/lower"])
def test_python_path_gives_the_same_encoding_as_the_engine(spec, tokenizers_by_mode, mode, monkeypatch):
    tok = tokenizers_by_mode[mode]
    texts = [c["text"] for c in spec["cases"] if not rules.needs_python(c["text"], tok.do_lower_case)]
    engine = tok.encode_batch(texts)
    monkeypatch.setattr(rules, "needs_python", lambda text, lower: True)
    assert tok.encode_batch(texts) == engine


def test_truncation_follows_googles_pair_rule(spec, vocab_paths):
    for pair in spec["truncation"]["pairs"]:
        tok = Tokenizer.from_vocab(vocab_paths[pair["vocab"]], do_lower_case=True)
        n = pair["max_seq_length"]
        batch = tok([pair["text_a"]], [pair["text_b"]], max_length=n, padding="max_length")
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert batch[key][0].tolist() == pair[key], (pair["id"], key)
        enc = tok.encode(pair["text_a"], pair["text_b"], max_length=n)
        assert enc.tokens == pair["tokens"][: len(enc)], pair["id"]
        assert enc.sequence_ids.count(0) == pair["len_a"] and enc.sequence_ids.count(1) == pair["len_b"]


def test_minilm_folder_gives_expected_ids(minilm_dir, fixtures_dir):
    expected = json.loads((fixtures_dir / "expected_minilm.json").read_text(encoding="utf-8"))
    tok = Tokenizer.from_pretrained(minilm_dir)
    assert tok.do_lower_case and tok.vocab_size == 30522
    batch = tok(expected["sentences"])
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert batch[key].tolist() == expected[key]
        assert batch[key].dtype == torch.long


@pytest.mark.parametrize("mode", ["en-uncased/lower", "en-cased/cased", "zh/lower"])
def test_save_pretrained_loads_in_transformers(tokenizers_by_mode, tmp_path, mode):
    auto = pytest.importorskip("transformers").AutoTokenizer
    tok = tokenizers_by_mode[mode]
    tok.save_pretrained(tmp_path)
    theirs = auto.from_pretrained(tmp_path)
    texts = ["Hello, World! The café is naïve.", "Unaffable HUGGING 2024年发布了！", "a b"]
    pairs = ["Second sentence here.", "x", "中文 and English"]
    assert theirs(texts, pairs, padding=True)["input_ids"] == tok(texts, pairs)["input_ids"].tolist()
    reloaded = Tokenizer.from_pretrained(tmp_path)
    assert reloaded.do_lower_case == tok.do_lower_case and reloaded.vocab == tok.vocab


def test_special_ids_come_from_the_vocab(tokenizers_by_mode):
    tiny = tokenizers_by_mode["tiny/lower"]
    ids = (tiny.pad_token_id, tiny.unk_token_id, tiny.cls_token_id, tiny.sep_token_id, tiny.mask_token_id)
    assert ids == (0, 5, 6, 7, 8)
    enc = tiny.encode("hello [MASK]")
    assert enc.ids[0] == 6 and enc.ids[-1] == 7 and 8 not in enc.ids  # a literal [MASK] is text
    assert tiny.convert_ids_to_tokens(tiny.convert_tokens_to_ids(["[MASK]", "hello"])) == ["[MASK]", "hello"]
    assert tiny.convert_tokens_to_ids("no-such-token") == 5
    pair = tiny.encode("hello", "hello there")
    assert tiny.with_specials(pair.ids[1:2], pair.ids[3:-1]) == (pair.ids, pair.type_ids)
    assert tiny.with_specials([9, 10]) == ([6, 9, 10, 7], [0, 0, 0, 0])
    assert (tiny.num_special_tokens(), tiny.num_special_tokens(pair=True)) == (2, 3)


def test_encoding_fields_for_a_pair(tokenizers_by_mode):
    tok = tokenizers_by_mode["en-uncased/lower"]
    enc = tok.encode("Unaffable day", "Hi!")
    assert enc.tokens == ["[CLS]", "una", "##ffa", "##ble", "day", "[SEP]", "hi", "!", "[SEP]"]
    assert enc.type_ids == [0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert enc.sequence_ids == [None, 0, 0, 0, 0, None, 1, 1, None]
    assert enc.special_tokens_mask == [1, 0, 0, 0, 0, 1, 0, 0, 1]
    assert enc.word_ids == [None, 0, 0, 0, 1, None, 0, 1, None]
    assert enc.offsets == [(0, 0), (0, 3), (3, 6), (6, 9), (10, 13), (0, 0), (0, 2), (2, 3), (0, 0)]
    assert enc.attention_mask == [1] * 9 and len(enc) == 9
    assert enc.char_to_token(11) == 4 and enc.char_to_token(2, sequence_index=1) == 7
    assert tok.decode(enc.ids) == "unaffable day hi !"


def test_windows_over_the_context_of_a_question(tokenizers_by_mode):
    tok = tokenizers_by_mode["en-uncased/lower"]
    context = " ".join(f"word{i}" for i in range(40))
    full = tok.encode(context)
    enc = tok.encode("what is it?", context, max_length=24, stride=5)
    question = ["[CLS]", "what", "is", "it", "?", "[SEP]"]
    spans = []
    for window in enc.windows:
        assert window.tokens[:6] == question and len(window) <= 24 and window.tokens[-1] == "[SEP]"
        ctx = [i for i, s in enumerate(window.sequence_ids) if s == 1]
        first = full.offsets.index(window.offsets[ctx[0]])  # offsets into the context, as without windows
        assert [window.offsets[i] for i in ctx] == full.offsets[first : first + len(ctx)]
        assert [window.ids[i] for i in ctx] == full.ids[first : first + len(ctx)]
        spans.append((first, first + len(ctx)))
    assert spans[0][0] == 1 and spans[-1][1] == len(full) - 1  # every context token is covered
    assert all(b[0] == a[1] - 5 for a, b in zip(spans, spans[1:], strict=False))  # windows share 5 tokens
    assert len(enc.windows) > 1 and not enc.windows[1].overflowing


def test_windows_over_a_single_text_and_bad_strides(tokenizers_by_mode):
    tok = tokenizers_by_mode["tiny/lower"]
    enc = tok.encode("a b c d e f g h i j", max_length=6, stride=1)  # 4 tokens per window
    assert [w.tokens[1:-1] for w in enc.windows] == [
        ["a", "b", "c", "d"],
        ["d", "e", "f", "g"],
        ["g", "h", "i", "j"],
    ]
    with pytest.raises(ValueError, match="stride"):
        tok.encode("a b c", max_length=6, stride=4)
    with pytest.raises(ValueError, match="max_length"):
        tok.encode("a b c", stride=1)
    with pytest.raises(ValueError, match="no room"):
        tok.encode("a b c d e", "f g", max_length=7, stride=1)


def test_split_into_words_gives_word_indices_and_offsets_within_words(tokenizers_by_mode):
    tok = tokenizers_by_mode["en-uncased/lower"]
    words = ["Unaffable", "ΟΔΟΣ", "don't", "", "北京"]
    enc = tok.encode(words, is_split_into_words=True)
    per_word = [tok.tokenize(w) for w in words]  # Google-style NER: tokenize each word
    assert enc.tokens[1:-1] == [t for ts in per_word for t in ts]
    assert enc.word_ids[1:-1] == [i for i, ts in enumerate(per_word) for _ in ts]
    for token, (start, end), w in zip(enc.tokens[1:-1], enc.offsets[1:-1], enc.word_ids[1:-1], strict=True):
        assert body(token) in normalise(words[w][start:end], True)
    batch = tok([words, ["x"]], is_split_into_words=True)
    assert batch["input_ids"][0].tolist() == enc.ids
    with pytest.raises(TypeError, match="list of str"):
        tok.encode_batch(["not split"], is_split_into_words=True)


def test_call_pads_and_accepts_one_text(tokenizers_by_mode):
    tok = tokenizers_by_mode["tiny/lower"]
    one = tok("hello world")
    assert one["input_ids"].shape == (1, 4)
    batch = tok(["hello", "hello world"], ["world", "hello"])
    assert batch["input_ids"].tolist() == [[6, 173, 7, 174, 7, 0], [6, 173, 174, 7, 173, 7]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 0], [1] * 6]
    lists = tok(["hello", "hello world"], return_tensors=None, padding=False)
    assert lists["input_ids"] == [[6, 173, 7], [6, 173, 174, 7]]
    with pytest.raises(ValueError, match="padding"):
        tok(["hello", "hello world"], padding=False)
    assert tok(["a b c d e"], max_length=4)["input_ids"].tolist() == [[6, 88, 89, 7]]


def test_lone_surrogate_is_unk_as_in_google(tokenizers_by_mode):
    tok = tokenizers_by_mode["en-uncased/lower"]
    enc = tok.encode("a\ud800b c")
    assert enc.tokens == ["[CLS]", "[UNK]", "c", "[SEP]"]
    assert enc.offsets[1:3] == [(0, 3), (4, 5)]


def test_add_tokens_fills_unused_slots_then_appends(vocab_paths, tmp_path):
    tok = Tokenizer.from_vocab(vocab_paths["tiny"], do_lower_case=True)
    size = tok.vocab_size
    assert tok.add_tokens(["covid", "hello", "covid"]) == 1  # "hello" is already there
    assert tok.convert_tokens_to_ids("covid") == 1 and tok.tokenize("Covid hello") == ["covid", "hello"]
    assert tok.vocab_size == size
    with pytest.raises(ValueError, match="one token"):
        tok.add_tokens(["Covid"])  # an uncased vocab holds lowercase words
    with pytest.raises(ValueError, match="one token"):
        tok.add_tokens(["two words"])
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")[1] == "covid"
    full = Tokenizer.from_pretrained(tmp_path)
    full.add_tokens([f"w{i}" for i in range(400)])
    assert full.vocab_size > size and full.tokenize("w399") == ["w399"]


def test_from_pretrained_reads_casing_from_the_folder(fixtures_dir, tmp_path, caplog):
    google_folder = fixtures_dir / "tiny-bert-tf"  # bert_config.json, no tokenizer_config.json
    assert Tokenizer.from_pretrained(google_folder).do_lower_case
    assert not Tokenizer.from_pretrained(google_folder, do_lower_case=False).do_lower_case
    assert "do_lower_case" in caplog.text
    hf_folder = fixtures_dir / "tiny-bert-hf"
    hf = Tokenizer.from_pretrained(hf_folder)
    assert hf.do_lower_case and hf.model_max_length == 64  # config.json's max_position_embeddings
    with pytest.raises(ValueError, match="contradicts"):
        Tokenizer.from_pretrained(hf_folder, do_lower_case=False)
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        Tokenizer.from_pretrained(tmp_path / "missing")


TRICKY = list("abcXYZ éÉ ΣσςΟΔ İıßẞǅﬁ,.!?'-—…·¿《》“”（）$^`~①²Ｈ１안ガ😀") + [
    *"\u0301\u0323\u0345\u200b\u200d\ufeff\xad\x00\x07\x0b\x0c\x1c\x85\u2028\u2029\xa0\u3000\t\n\r",
    *"\ue000\U000f0000\u0378\U0002b820\U0002b81d\U0002ceb0\U00030000\u4e2d\uf900\u2f00\u3007\u093e\u094d",
    *"\U00011938\U00010f46\ua7dc\u1fef\u037e\U0001f3fd",
    "[CLS]",
    "[MASK]",
    "hello",
    "unaffable",
]


@pytest.mark.parametrize("mode", ["en-uncased/lower", "en-cased/cased", "zh/lower"])
def test_engine_equals_googles_python_path_on_random_text(tokenizers_by_mode, mode, monkeypatch):
    """The Rust engine and Google's BasicTokenizer (the Python path) agree, offsets included."""
    rng = random.Random(0)
    texts = [
        "".join(rng.choice(TRICKY) if rng.random() < 0.8 else chr(rng.randrange(0xD800)) for _ in range(20))
        for _ in range(300)
    ]
    tok = tokenizers_by_mode[mode]
    routed = tok.encode_batch(texts)
    monkeypatch.setattr(rules, "needs_python", lambda text, lower: True)
    assert tok.encode_batch(texts) == routed
