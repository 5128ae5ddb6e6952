"""The real all-MiniLM-L6-v2: the stored reference outputs, and transformers on 200 SST-2 dev sentences."""

from __future__ import annotations

import json

import pytest
import torch

from bertkit.model.bert import BertModel
from bertkit.weights.load import load_pretrained


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    model, report = load_pretrained(minilm_dir, BertModel)
    assert report.initialized == () and report.unused == ()
    return model


def test_reference_outputs(minilm, fixtures_dir):
    ref = json.loads((fixtures_dir / "expected_minilm.json").read_text())
    ids, types, mask = (torch.tensor(ref[k]) for k in ("input_ids", "token_type_ids", "attention_mask"))
    with torch.no_grad():
        out = minilm(ids, types, mask)
    valid = mask.bool()
    first8 = torch.tensor(ref["last_hidden_state_first8"], dtype=torch.float64)
    assert (out.last_hidden_state[..., :8].double() - first8)[valid].abs().max() < 1e-5
    assert (
        out.pooled_output.double() - torch.tensor(ref["pooled_output"], dtype=torch.float64)
    ).abs().max() < 1e-5
    summed = (out.last_hidden_state * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    emb = torch.nn.functional.normalize(summed, dim=-1).double()
    assert (emb - torch.tensor(ref["sentence_embedding"], dtype=torch.float64)).abs().max() < 1e-5


def test_matches_transformers_on_sst2_dev(minilm, minilm_dir, data_dir):
    transformers = pytest.importorskip("transformers")
    lines = (data_dir / "glue" / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:201]
    sentences = [line.rsplit("\t", 1)[0] for line in lines]
    tok = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    theirs = transformers.AutoModel.from_pretrained(minilm_dir).eval()
    worst = 0.0
    for start in range(0, len(sentences), 32):
        enc = tok(sentences[start : start + 32], padding=True, return_tensors="pt")
        with torch.no_grad():
            a = minilm(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"])
            b = theirs(**enc)
        valid = enc["attention_mask"].bool()
        worst = max(
            worst,
            (a.last_hidden_state - b.last_hidden_state)[valid].abs().max().item(),
            (a.pooled_output - b.pooler_output).abs().max().item(),
        )
    assert worst < 1e-4, worst
