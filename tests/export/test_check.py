"""bertkit.export.check: decoded outputs compared field by field; a head dropped by export is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bertkit.export.check import (
    SAMPLE_INPUTS,
    compare_decoded,
    decisions,
    differences,
    number_gap,
    usable_inputs,
)
from bertkit.inference.predictor import Predictor


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_differences_name_every_changed_decision_and_tolerate_small_numbers():
    ref = {"label": "pos", "probabilities": {"pos": 0.75, "neg": 0.25}}
    assert differences({"label": "pos", "probabilities": {"pos": 0.75004, "neg": 0.24996}}, ref, 1e-4) == []
    assert differences({"label": "neg", "probabilities": {"pos": 0.75, "neg": 0.25}}, ref, 1e-4) == [
        "label: 'neg' != 'pos'"
    ]
    assert differences({"label": "pos", "probabilities": {"pos": 0.8, "neg": 0.2}}, ref, 1e-4) == [
        "probabilities.pos: 0.8 != 0.75",
        "probabilities.neg: 0.2 != 0.25",
    ]
    entities = {"entities": [{"text": "LONDON", "type": "LOC", "start": 0, "end": 6}]}
    assert differences({"entities": []}, entities, 1e-4) == ["entities: 0 items != 1"]
    assert differences(
        {"entities": [{"text": "LONDON", "type": "ORG", "start": 0, "end": 6}]}, entities, 1e-4
    ) == ["entities[0].type: 'ORG' != 'LOC'"]


def test_decisions_keep_labels_entities_answers_and_drop_scores():
    qa = {"answer": "Denver Broncos", "start": 177, "score": 3.2, "nbest": [{"text": "Denver", "score": 1.0}]}
    assert decisions(qa) == {"answer": "Denver Broncos", "start": 177}
    tags = {"tags": ["B-LOC", "O"], "entities": [{"text": "LONDON", "type": "LOC", "start": 0, "end": 6}]}
    assert decisions(tags) == tags
    assert decisions({"label": 2, "choice": "x", "probabilities": [0.1, 0.2, 0.7]}) == {
        "label": 2,
        "choice": "x",
    }
    assert number_gap({"score": 1.5, "p": [0.25, 0.5]}, {"score": 1.0, "p": [0.25, 0.75]}) == 0.5


@pytest.fixture(scope="module")
def crf_tagger(tmp_path_factory, fixtures_dir: Path) -> Path:
    from bertkit.tasks import build_task
    from bertkit.tokenization import Tokenizer
    from bertkit.training.checkpoint import save_model_folder
    from bertkit.training.config import TrainConfig

    tiny = fixtures_dir / "tiny-bert-hf"
    task = build_task("tagging", {"labels": ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"], "head": "crf"})
    model, _ = task.build_model(str(tiny))
    torch.manual_seed(0)
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    with torch.no_grad():  # strong transitions, so the CRF decides differently from a per-token argmax
        model.crf.transitions.copy_(3 * torch.randn_like(model.crf.transitions))
    out = tmp_path_factory.mktemp("tagger") / "crf"
    save_model_folder(out, model, Tokenizer.from_pretrained(tiny), task, TrainConfig(max_seq_length=48))
    return out


def test_compare_decoded_catches_a_tagger_that_lost_its_crf(crf_tagger):
    """The export bug of issue 10: the same emissions decoded without the trained CRF. The check must see it,
    and the tagging task refuses a CRF head's model that carries no CRF at all."""
    reference = Predictor.from_pretrained(crf_tagger, device="cpu")
    examples = usable_inputs(reference, SAMPLE_INPUTS)
    assert len(examples) >= 8 and {type(e).__name__ for e in examples} == {"TaggedExample"}
    same = Predictor.from_pretrained(crf_tagger, device="cpu")
    check = compare_decoded(reference, same, examples, 1e-4)
    assert (check.agree, check.total, check.mismatches) == (len(examples), len(examples), [])
    untrained = Predictor.from_pretrained(crf_tagger, device="cpu")
    with torch.no_grad():  # the transitions a side file that was not carried would have left: none
        untrained.model.crf.transitions.zero_()
    check = compare_decoded(reference, untrained, examples, 1e-4)
    assert check.agree < check.total and check.mismatches
    assert all(m.startswith("input") or "[" in m for m in check.mismatches)
    untrained.model.crf = None
    with pytest.raises(ValueError, match="head is crf but BertForTagging carries no CRF"):
        untrained.predict_examples(examples)


def test_usable_inputs_are_the_ones_the_task_reads(crf_tagger, fixtures_dir):
    from bertkit.data.examples import ChoiceExample, QAExample
    from bertkit.tasks import build_task

    predictor = Predictor.from_pretrained(crf_tagger, device="cpu")
    predictor.task = build_task("qa", {})
    assert {type(e) for e in usable_inputs(predictor, SAMPLE_INPUTS)} == {QAExample}
    predictor.task = build_task("multiple_choice", {})
    assert {type(e) for e in usable_inputs(predictor, SAMPLE_INPUTS)} == {ChoiceExample}
