"""The family seam against transformers: for each family and each of its heads, a tiny random transformers model
(odd sizes: 3 heads of 8, intermediate 37, embedding_size 16 != hidden 24, ALBERT's 2 shared groups of 2 layers)
saved as an HF folder gives the same outputs in bertkit (float32, 1e-5, a padded batch), and the folder bertkit
saves from it loads in transformers' AutoModelFor* class with no missing or unexpected key and the same outputs.
Config dialects: unknown model_type / keys, Google's albert_config.json."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from bertkit.model.config import BertConfig
from bertkit.model.families import family
from bertkit.model.registry import model_for
from bertkit.weights.load import infer_model, load_pretrained

transformers = pytest.importorskip("transformers")

H = dict(hidden_size=24, num_attention_heads=3, intermediate_size=37, num_hidden_layers=2, vocab_size=99)
CONFIGS = {
    "bert": lambda: transformers.BertConfig(**H, max_position_embeddings=40),
    "distilbert": lambda: transformers.DistilBertConfig(
        vocab_size=99, dim=24, n_layers=2, n_heads=3, hidden_dim=37, max_position_embeddings=40
    ),
    "roberta": lambda: transformers.RobertaConfig(**H, max_position_embeddings=42, type_vocab_size=1, pad_token_id=1),
    "xlm-roberta": lambda: transformers.XLMRobertaConfig(
        **H, max_position_embeddings=42, type_vocab_size=1, pad_token_id=1
    ),
    "electra": lambda: transformers.ElectraConfig(**H, embedding_size=16, max_position_embeddings=40),
    "albert": lambda: transformers.AlbertConfig(
        **{**H, "num_hidden_layers": 4}, embedding_size=16, num_hidden_groups=2, inner_group_num=2,
        max_position_embeddings=40,
    ),
    "ernie": lambda: transformers.ErnieConfig(
        **H, max_position_embeddings=40, use_task_id=True, task_type_vocab_size=3
    ),
}
AUTO = {
    "base": "AutoModel",
    "pretraining": "AutoModelForPreTraining",
    "discriminator": "AutoModelForPreTraining",
    "masked_lm": "AutoModelForMaskedLM",
    "sequence_classification": "AutoModelForSequenceClassification",
    "token_classification": "AutoModelForTokenClassification",
    "question_answering": "AutoModelForQuestionAnswering",
    "multiple_choice": "AutoModelForMultipleChoice",
}
# Each family's bare encoder and classifier run in the fast suite; its other heads are marked slow.
CASES = [
    pytest.param(name, kind, marks=() if kind in ("base", "sequence_classification") else pytest.mark.slow)
    for name in CONFIGS
    for kind in family(name).heads
]


def inputs(config, choices: bool) -> dict[str, torch.Tensor]:
    """A padded batch of 2 (or 2 x 3 choices): ids avoid the special low ids and the pad id."""
    g = torch.Generator().manual_seed(0)
    shape = (2, 3, 9) if choices else (2, 9)
    ids = torch.randint(3, 99, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[0, ..., 6:] = 0  # the first row (every choice of it) is padded
    ids = ids.masked_fill(mask == 0, config.pad_token_id)
    out = {"input_ids": ids, "attention_mask": mask}
    if getattr(config, "type_vocab_size", 0) > 1:
        out["token_type_ids"] = (torch.arange(9) >= 4).long().expand(shape).contiguous() * mask
    return out


def outputs(kind: str, out, theirs: bool) -> list[torch.Tensor]:
    """The comparable tensors of a head's output, ours or transformers'."""
    if kind == "base":
        return [out.last_hidden_state] + ([out.pooler_output] if getattr(out, "pooler_output", None) is not None
                                          else []) if theirs else [out.last_hidden_state] + (
            [out.pooled_output] if out.pooled_output is not None else [])  # fmt: skip
    if kind == "pretraining":
        if theirs:
            second = out.seq_relationship_logits if hasattr(out, "seq_relationship_logits") else out.sop_logits
            return [out.prediction_logits, second]
        return [out.mlm_logits, out.nsp_logits]
    if kind == "question_answering":
        return [out.start_logits, out.end_logits] if theirs else [out.start_logits, out.end_logits]
    return [out.logits] if theirs else [out]


def compare(kind: str, a: list[torch.Tensor], b: list[torch.Tensor], mask: torch.Tensor) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        if x.shape[:2] == mask.shape:  # per-token outputs: padded positions are not comparable
            x, y = x[mask.bool()], y[mask.bool()]
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_parity_with_transformers_both_ways(tmp_path, name, kind):
    hf_config = CONFIGS[name]()
    if kind in ("sequence_classification", "token_classification"):
        hf_config.num_labels = 3
    auto = getattr(transformers, AUTO[kind])
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = auto.from_config(hf_config).eval()
    theirs.save_pretrained(tmp_path / "hf")
    batch = inputs(hf_config, kind == "multiple_choice")
    mask = batch["attention_mask"].reshape(-1, 9)[:2] if kind == "multiple_choice" else batch["attention_mask"]

    config = BertConfig.from_json(tmp_path / "hf" / "config.json")
    assert config.model_type == name
    ours, report = load_pretrained(tmp_path / "hf", model_for(config, kind))
    assert report.initialized == () and report.unused == (), report
    assert infer_model(tmp_path / "hf").model_class is type(ours)
    with torch.no_grad():
        expected = outputs(kind, theirs(**batch), theirs=True)
        compare(kind, outputs(kind, ours(**batch), theirs=False), expected, mask)

    ours.save_pretrained(tmp_path / "ours")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again, info = auto.from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert type(again) is type(theirs)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    with torch.no_grad():
        compare(kind, outputs(kind, again.eval()(**batch), theirs=True), expected, mask)


def test_unknown_model_type_names_the_families(tmp_path):
    with pytest.raises(ValueError, match=r"model_type 'gpt2' is not a family bertkit knows \(bert, distilbert"):
        BertConfig.from_dict({"model_type": "gpt2", "hidden_size": 24})


def test_a_key_the_family_does_not_know_is_an_error():
    with pytest.raises(ValueError, match=r"embedding_size 16 != hidden_size 24 .* set model_type to 'albert'"):
        BertConfig.from_dict({"hidden_size": 24, "num_attention_heads": 3, "embedding_size": 16})
    with pytest.raises(ValueError, match=r"unknown config key 'inner_group_num' for the bert family.*albert"):
        BertConfig.from_dict({"hidden_size": 24, "num_attention_heads": 3, "inner_group_num": 1})
    with pytest.raises(ValueError, match=r"unknown config key 'num_hidden_groups' for the electra family"):
        BertConfig.from_dict({"model_type": "electra", "num_hidden_groups": 2})


def test_google_albert_config_reads_as_albert(tmp_path):
    google = {"attention_probs_dropout_prob": 0, "hidden_act": "gelu", "hidden_dropout_prob": 0,
              "embedding_size": 128, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
              "max_position_embeddings": 512, "num_attention_heads": 12, "num_hidden_layers": 12,
              "num_hidden_groups": 1, "net_structure_type": 0, "gap_size": 0, "num_memory_blocks": 0,
              "inner_group_num": 1, "down_scale_factor": 1, "type_vocab_size": 2, "vocab_size": 30000}  # fmt: skip
    (tmp_path / "albert_config.json").write_text(json.dumps(google))
    config = BertConfig.from_json(tmp_path / "albert_config.json")
    assert (config.model_type, config.embedding_size, config.num_hidden_groups) == ("albert", 128, 1)
    written = transformers.AlbertConfig.from_dict(config.to_hf_dict("AlbertModel"))  # what save_pretrained writes
    assert (written.embedding_size, written.inner_group_num, written.classifier_dropout_prob) == (128, 1, 0.1)
    (tmp_path / "bert_config.json").write_text(json.dumps(google))  # the same keys read as BERT: refused
    with pytest.raises(ValueError, match="unknown config key 'num_hidden_groups' for the bert family"):
        BertConfig.from_json(tmp_path / "bert_config.json")


def test_distilbert_sinusoidal_positions_match_transformers():
    hf_config = CONFIGS["distilbert"]()
    hf_config.sinusoidal_pos_embds = True
    theirs = transformers.DistilBertModel(hf_config).embeddings.position_embeddings.weight
    config = BertConfig.from_dict(hf_config.to_dict())
    ours = model_for(config, "base")(config).embeddings.position_embeddings.weight
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    assert not ours.requires_grad


def test_distilbert_folder_cls_features_equal_transformers(tmp_path, fixtures_dir):
    """The seeds' recipe: `encode --pooling cls` on a DistilBERT folder = DistilBertModel's [CLS] rows."""
    from bertkit.inference.features import FeatureExtractor
    from bertkit.tokenization import Tokenizer

    tokenizer = Tokenizer.from_pretrained(fixtures_dir / "tiny-bert-hf")
    hf_config = CONFIGS["distilbert"]()
    hf_config.vocab_size = tokenizer.vocab_size
    torch.manual_seed(0)
    theirs = transformers.DistilBertModel(hf_config).eval()
    theirs.save_pretrained(tmp_path / "d")
    tokenizer.save_pretrained(tmp_path / "d")
    texts = ["hello world", "the quick brown fox jumps over the lazy dog"]
    features = FeatureExtractor.from_pretrained(tmp_path / "d", pooling="cls").encode(texts)
    batch = tokenizer(texts)
    with torch.no_grad():
        cls = theirs(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state[:, 0]
    torch.testing.assert_close(torch.as_tensor(features), cls, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "silu", "swish"])
def test_hidden_act_variants_match_transformers(name):
    from transformers.activations import ACT2FN

    from bertkit.model.bert import activation

    x = torch.linspace(-6, 6, 2001)
    torch.testing.assert_close(activation(name)(x), ACT2FN[name](x), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "kind", [k if k in ("base", "token_classification") else pytest.param(k, marks=pytest.mark.slow)
             for k in family("ernie").heads]  # fmt: skip
)
def test_ernie_task_type_ids_flow_like_transformers(tmp_path, kind):
    """Non-zero task_type_ids reach ERNIE's task-type table through the encoder and every head, as in
    transformers' Ernie* models; task 0 is what both use when none are given."""
    hf_config = CONFIGS["ernie"]()
    if kind in ("sequence_classification", "token_classification"):
        hf_config.num_labels = 3
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(transformers, AUTO[kind]).from_config(hf_config).eval()
    theirs.save_pretrained(tmp_path)
    ours, report = load_pretrained(tmp_path, model_for(BertConfig.from_json(tmp_path / "config.json"), kind))
    assert report.initialized == () and report.unused == ()
    table = getattr(ours, "bert", ours).embeddings.task_type_embeddings.weight
    assert torch.equal(table, theirs.base_model.embeddings.task_type_embeddings.weight)
    batch = inputs(hf_config, kind == "multiple_choice")
    task_types = torch.randint(0, 3, batch["input_ids"].shape, generator=torch.Generator().manual_seed(1))
    assert task_types.unique().tolist() == [0, 1, 2]
    mask = batch["attention_mask"].reshape(-1, 9)[:2] if kind == "multiple_choice" else batch["attention_mask"]
    # ErnieForMultipleChoice documents (B, C, T) task_type_ids but does not flatten them (transformers 5.x):
    # it is given the flattened ones it can add, bertkit the documented shape
    given = task_types.reshape(-1, 9) if kind == "multiple_choice" else task_types
    with torch.no_grad():
        expected = outputs(kind, theirs(**batch, task_type_ids=given), theirs=True)
        got = outputs(kind, ours(**batch, task_type_ids=task_types), theirs=False)
        compare(kind, got, expected, mask)
        zeros = outputs(kind, ours(**batch, task_type_ids=torch.zeros_like(task_types)), theirs=False)
        compare(kind, outputs(kind, ours(**batch), theirs=False), zeros, mask)
        assert not torch.allclose(got[0], zeros[0])  # the task types changed the outputs


def test_task_type_ids_are_refused_by_a_model_without_task_types():
    config = BertConfig.from_dict(CONFIGS["bert"]().to_dict())
    model = model_for(config, "base")(config)
    with pytest.raises(ValueError, match="no task-type embeddings"):
        model(torch.ones(1, 4, dtype=torch.long), task_type_ids=torch.zeros(1, 4, dtype=torch.long))


def test_distilbert_head_dropouts_read_the_config_fields_transformers_reads():
    """Train-mode outputs are random, so parity cannot show it: each DistilBERT head drops out with the p of the
    field transformers' class reads (token classifier: `dropout`, not `seq_classif_dropout`; QA: `qa_dropout`;
    sequence classifier and multiple choice: `seq_classif_dropout`), given three different values."""
    from bertkit.model.tagger import BertForTagging

    hf_config = CONFIGS["distilbert"]()
    hf_config.dropout, hf_config.seq_classif_dropout, hf_config.qa_dropout = 0.11, 0.22, 0.33
    config = BertConfig.from_dict(hf_config.to_dict())
    for kind in ("token_classification", "question_answering", "sequence_classification", "multiple_choice"):
        theirs = getattr(transformers, AUTO[kind]).from_config(hf_config).dropout.p
        ours = model_for(config, kind)(config).dropout.p
        assert ours == theirs, kind
    assert BertForTagging(config, head="crf").dropout.p == 0.11  # the tagging task's model: the token classifier's
    bert = BertConfig.from_dict(CONFIGS["bert"]().to_dict())
    assert isinstance(model_for(bert, "question_answering")(bert).dropout, torch.nn.Identity)  # as BertForQA
