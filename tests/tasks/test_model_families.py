"""Every task builds its model through the family registry: from a tiny transformers base model of each family,
each task gets that family's head class (RoBERTa's classifier, DistilBERT's pre_classifier...), and the
fine-tuned folder it saves reloads exactly (from_finetuned=True), the CRF tagger included."""

from __future__ import annotations

import warnings

import pytest
import torch

from bertkit.model.families import family
from bertkit.model.tagger import BertForTagging
from bertkit.tasks import build_task

transformers = pytest.importorskip("transformers")

H = dict(hidden_size=24, num_attention_heads=3, intermediate_size=37, num_hidden_layers=2, vocab_size=99)
CONFIGS = {
    "bert": lambda: transformers.BertConfig(**H, max_position_embeddings=40),
    "distilbert": lambda: transformers.DistilBertConfig(
        vocab_size=99, dim=24, n_layers=2, n_heads=3, hidden_dim=37, max_position_embeddings=40
    ),
    "roberta": lambda: transformers.RobertaConfig(**H, max_position_embeddings=42, type_vocab_size=1, pad_token_id=1),
    "electra": lambda: transformers.ElectraConfig(**H, embedding_size=16, max_position_embeddings=40),
    "albert": lambda: transformers.AlbertConfig(**H, embedding_size=16, num_hidden_groups=2, max_position_embeddings=40),
    "ernie": lambda: transformers.ErnieConfig(**H, max_position_embeddings=40, use_task_id=True),
}
TASKS = [
    ("classification", {"labels": ["neg", "pos", "mixed"]}, "sequence_classification"),
    ("qa", {}, "question_answering"),
    ("multiple_choice", {}, "multiple_choice"),
    ("tagging", {"labels": ["O", "B-PER", "I-PER"], "head": "crf"}, None),
    ("pretraining", {"next_sentence": False}, None),
]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_task_builds_the_family_head_and_reloads(tmp_path, name):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformers.AutoModel.from_config(CONFIGS[name]()).save_pretrained(tmp_path / "base")
    fam = family(name)
    for task_name, options, kind in TASKS:
        task = build_task(task_name, options)
        model, _ = task.build_model(str(tmp_path / "base"))
        if kind is not None:
            assert type(model) is fam.heads[kind], (task_name, type(model))
        elif task_name == "tagging":
            assert isinstance(model, BertForTagging) and model.crf is not None
        else:  # MLM + NSP / SOP where the family has them, else its MLM model
            assert type(model) is fam.heads.get("pretraining", fam.heads["masked_lm"])
        assert model.bert.config.model_type == name
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.01)  # nothing left at its initial value
        out = tmp_path / task_name
        model.save_pretrained(out)
        again, report = task.build_model(str(out), from_finetuned=True)
        assert report is None or report.initialized == ()
        ours, theirs = model.state_dict(), again.state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), task_name
