"""Heads own their weights: every head's rows go through the one save/load path, convert and vocab extend keep
a crf / lstm_crf tagger's weights and predictions, a head defined here saves and loads with no other change,
legacy tagging_head.safetensors folders still load, and missing / undeclared head weights are clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from bertkit.cli.main import main
from bertkit.inference.predictor import Predictor
from bertkit.model.bert import BertModel, PretrainedBert
from bertkit.model.config import BertConfig
from bertkit.model.heads import BertForTokenClassification
from bertkit.model.rows import Row, linear, own_rows
from bertkit.model.tagger import BertForTagging
from bertkit.tasks import build_task
from bertkit.tasks.tagging import TaggingTask
from bertkit.tokenization import Tokenizer
from bertkit.training.checkpoint import save_model_folder
from bertkit.training.config import TrainConfig
from bertkit.weights.load import infer_model, load_every_head, load_pretrained

TEXTS = [{"text": "Peter Blackburn lives in Johannesburg."}, {"tokens": ["EU", "rejects", "German", "call"]}]
ROWS = [
    (["Peter", "Blackburn", "lives", "in", "Johannesburg", "."], ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
    (["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base(tmp_path_factory, models_dir) -> Path:
    folder = tmp_path_factory.mktemp("tiny-en")
    tok = Tokenizer.from_vocab(models_dir / "vocab" / "bert-base-uncased-vocab.txt", do_lower_case=True)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tagger_folder(base: Path, out: Path, head: str) -> Path:
    """A fine-tuned-looking tagger folder; the CRF / LSTM get random (not initial) values so a lost weight shows."""
    task = TaggingTask(head=head).prepare(
        [TaggingTask().example_from_dict({"tokens": w, "tags": t}) for w, t in ROWS]
    )
    model, _ = task.build_model(str(base))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("bert."):
                p.copy_(torch.randn_like(p))
    save_model_folder(out, model.eval(), Tokenizer.from_pretrained(base), task, TrainConfig(max_seq_length=24))
    return out


def state(folder: Path) -> dict[str, Tensor]:
    info = json.loads((folder / "bertkit.json").read_text())
    model, _ = build_task(info["task"], info["options"]).build_model(str(folder), from_finetuned=True)
    return model.state_dict()


@pytest.mark.parametrize("head", ["crf", "lstm_crf"])
def test_convert_and_vocab_extend_keep_the_tagger(base, tmp_path, head):
    src = tagger_folder(base, tmp_path / "src", head)
    spec = infer_model(src)
    assert (spec.model_class, spec.options) == (BertForTagging, {"head": head})
    before = Predictor.from_pretrained(src, device="cpu").predict(TEXTS)
    assert len({t for r in before for t in r["tags"]}) > 1  # random heads: a dropped CRF would change these

    assert main(["convert", str(src), str(tmp_path / "conv")]) == 0
    assert Predictor.from_pretrained(tmp_path / "conv", device="cpu").predict(TEXTS) == before
    ours, theirs = state(src), state(tmp_path / "conv")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)

    assert main(["vocab", "extend", "--model", str(src), "--output-dir", str(tmp_path / "ext"),
                 "--word", "bertkit", "--word", "johannesburgish"]) == 0  # fmt: skip
    assert Predictor.from_pretrained(tmp_path / "ext", device="cpu").predict(TEXTS) == before
    extended = state(tmp_path / "ext")
    for key, value in ours.items():
        if key != "bert.embeddings.word_embeddings.weight":  # unused slots took the new words
            assert torch.equal(extended[key], value), key
    head_keys = [k for k in ours if k.startswith(("crf.", "lstm."))]
    assert head_keys and (head == "lstm_crf") == any(k.startswith("lstm.") for k in head_keys)


def test_legacy_side_file_still_loads(base, tmp_path):
    src = tagger_folder(base, tmp_path / "src", "lstm_crf")
    before = Predictor.from_pretrained(src, device="cpu").predict(TEXTS)
    tensors = load_file(str(src / "model.safetensors"))
    side = {k: v for k, v in tensors.items() if k.startswith(("crf.", "lstm."))}
    save_file({k: v for k, v in tensors.items() if k not in side}, str(src / "model.safetensors"))
    save_file(side, str(src / "tagging_head.safetensors"), metadata={"head": "lstm_crf"})  # the old layout
    assert infer_model(src).options == {"head": "lstm_crf"}
    assert Predictor.from_pretrained(src, device="cpu").predict(TEXTS) == before
    model, _ = load_every_head(src)
    model.save_pretrained(tmp_path / "resaved")  # one file from now on
    assert not (tmp_path / "resaved" / "tagging_head.safetensors").exists()
    assert set(side) <= set(load_file(str(tmp_path / "resaved" / "model.safetensors")))


def test_fine_tuned_folder_without_its_head_weights_is_an_error(base, tmp_path):
    src = tagger_folder(base, tmp_path / "src", "crf")
    tensors = load_file(str(src / "model.safetensors"))
    save_file({k: v for k, v in tensors.items() if not k.startswith("crf.")}, str(src / "model.safetensors"))
    info = json.loads((src / "bertkit.json").read_text())
    with pytest.raises(ValueError, match=r"no tensor 'crf.start_transitions'.*BertForTagging head \(head='crf'"):
        build_task("tagging", info["options"]).build_model(str(src), from_finetuned=True)
    with pytest.raises(ValueError, match="saved with another head"):
        Predictor.from_pretrained(src, device="cpu")
    # Not fine-tuned (a base model for training): the same CRF is reported as new, not an error.
    _, report = build_task("tagging", info["options"]).build_model(str(src))
    assert "crf.transitions" in report.initialized


def test_mismatched_head_weights_are_an_error(base, tmp_path):
    src = tagger_folder(base, tmp_path / "src", "crf")
    tensors = load_file(str(src / "model.safetensors"))
    tensors["crf.transitions"] = torch.zeros(3, 3)
    save_file(tensors, str(src / "model.safetensors"))
    with pytest.raises(ValueError, match=r"crf.transitions has shape \(3, 3\) but crf.transitions needs \(9, 9\)"):
        Predictor.from_pretrained(src, device="cpu")


# ---- a head defined here, with its own rows, needs nothing else ------------------------------------------------
class SpanPointer(PretrainedBert):
    """A toy span head: start / end pointers plus a bilinear scorer that transformers does not know."""

    hf_architecture = "BertForSpanPointer"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.pointer = nn.Linear(config.hidden_size, 2)
        self.scorer = nn.Bilinear(config.hidden_size, config.hidden_size, 1)
        self.init_weights()

    def head_rows(self) -> list[Row]:
        return linear("pointer", "span_pointer", None) + own_rows("scorer", self.scorer)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None,
                attention_mask: Tensor | None = None) -> Tensor:  # fmt: skip
        hidden = self.bert(input_ids, token_type_ids, attention_mask).last_hidden_state
        return self.pointer(hidden) + self.scorer(hidden, hidden)


def test_a_new_head_saves_and_loads_with_no_other_change(fixtures_dir, tmp_path):
    model, report = load_pretrained(fixtures_dir / "tiny-bert-hf", SpanPointer)
    assert set(report.initialized) == {"pointer.weight", "pointer.bias", "scorer.weight", "scorer.bias"}
    model.save_pretrained(tmp_path / "out")
    saved = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert {"span_pointer.weight", "span_pointer.bias", "scorer.weight", "scorer.bias"} <= set(saved)
    again = SpanPointer.from_pretrained(tmp_path / "out")
    ids = torch.tensor([[6, 30, 40, 7, 0], [6, 31, 7, 41, 7]])
    mask = (ids > 0).long()
    with torch.no_grad():
        assert torch.equal(model(ids, attention_mask=mask), again(ids, attention_mask=mask))


def test_a_parameter_without_a_row_is_never_dropped(fixtures_dir, tmp_path):
    class Forgetful(SpanPointer):
        def head_rows(self) -> list[Row]:
            return linear("pointer", "span_pointer", None)  # forgets the scorer

    model = Forgetful(BertConfig.from_json(fixtures_dir / "tiny-bert-hf" / "config.json"))
    with pytest.raises(ValueError, match=r"Forgetful's weight rows.*no row for \['scorer.weight', 'scorer.bias'\]"):
        model.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out" / "model.safetensors").exists()
    with pytest.raises(ValueError, match="no row for"):
        load_pretrained(fixtures_dir / "tiny-bert-hf", Forgetful)


def test_infer_model_keeps_every_head(fixtures_dir, tmp_path):
    shutil.copytree(fixtures_dir / "tiny-bert-hf", tmp_path / "m")
    assert infer_model(tmp_path / "m").model_class.__name__ == "BertForPreTraining"
    model, _ = load_pretrained(tmp_path / "m", BertForTokenClassification, labels=["O", "B-X", "I-X"])
    model.save_pretrained(tmp_path / "tok")
    assert infer_model(tmp_path / "tok").model_class is BertForTokenClassification  # transformers' class first
