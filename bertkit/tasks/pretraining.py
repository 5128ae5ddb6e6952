"""Masked-LM (+ optional next-sentence) pretraining as a Task, over instances from bertkit.data.corpus shards.

Shapes: B batch, T length, P masked positions per row (padded), V vocab.
The MLM loss is the mean cross-entropy over the real masked positions of the batch (Google's
numerator / denominator); the NSP loss, when on, is added. Metrics: MLM accuracy, MLM loss and its
perplexity exp(loss) over every masked token, and NSP accuracy.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertkit.data.collate import encoder_inputs, pad_sequences
from bertkit.data.shards import Shards
from bertkit.model.config import BertConfig
from bertkit.model.families import family_of
from bertkit.model.heads import PretrainingLogits
from bertkit.model.registry import model_for
from bertkit.tasks.base import Batch, Feature, TaskBase
from bertkit.tokenization import Tokenizer
from bertkit.weights.load import load_pretrained, read_model_config

logger = logging.getLogger(__name__)

_FIELDS = ("input_ids", "token_type_ids", "masked_positions", "masked_ids", "next_sentence_label")


def shard_examples(shards: Shards, indices: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Instances of loaded shards as example dicts (all of them, or the given rows)."""
    rows = range(len(shards)) if indices is None else indices
    return [shards.instance(i) for i in rows]


def split_by_document(shards: Shards, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train rows, held-out rows): a random `fraction` of documents is held out.

    A row is held out when both its A and B documents are, and used for training when neither is; rows that
    mix the two are dropped, so no held-out sentence is ever trained on (dupe_factor repeats every text).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
    a, b = shards.arrays["document_a"], shards.arrays["document_b"]
    docs = sorted(set(a.tolist()) | set(b.tolist()))
    held = set(random.Random(seed).sample(docs, max(1, round(fraction * len(docs)))))
    train, dev = [], []
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        if x in held and y in held:
            dev.append(i)
        elif x not in held and y not in held:
            train.append(i)
    if not dev or not train:
        raise ValueError(
            f"holding out {fraction:.0%} of {len(docs)} documents leaves {len(train)} training and {len(dev)} "
            "held-out instances; use more documents or give held-out shards (--dev-data)"
        )
    return train, dev


class PretrainingTask(TaskBase):
    """MLM (+ NSP) on pre-masked instances. model_config builds a fresh model (training from scratch)."""

    name = "pretraining"
    main_metric = "mlm_accuracy"

    def __init__(self, next_sentence: bool = True, model_config: Mapping[str, Any] | None = None):
        self.next_sentence = next_sentence
        self.model_config = dict(model_config) if model_config is not None else None

    def to_json(self) -> dict[str, Any]:
        return {"next_sentence": self.next_sentence, "model_config": self.model_config}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PretrainingTask) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"PretrainingTask(next_sentence={self.next_sentence})"

    @staticmethod
    def _kind(config: BertConfig) -> str:
        """MLM + NSP (BERT, ERNIE) or MLM + SOP (ALBERT) where the family has it, else its MLM model alone."""
        return "pretraining" if "pretraining" in family_of(config).heads else "masked_lm"

    def build_model(self, model: str, *, from_finetuned: bool = False) -> tuple[nn.Module, Any]:
        """The family's pretraining model (BertForPreTraining for BERT), fresh from model_config or from a
        checkpoint (new heads are reported); its MLM model for families without NSP / SOP.

        Without next_sentence the pooler and NSP head are frozen: they stay exactly as loaded and are saved
        with the model (so the folder still loads as BertModel), and every trained parameter gets a gradient
        (as DistributedDataParallel requires).
        """
        if self.model_config is not None and not from_finetuned:
            config = BertConfig.from_dict(self.model_config, source="model_config")
            logger.info("pretraining from scratch: %s", config)
            net, report = model_for(config, self._kind(config))(config), None
        else:
            config = read_model_config(model)
            net, report = load_pretrained(model, model_for(config, self._kind(config)), require_heads=from_finetuned)
        if not self.next_sentence:
            for name, param in net.named_parameters():
                if name.startswith(("bert.pooler.", "nsp.")):
                    param.requires_grad = False
        return net, report

    # ---- examples and features -----------------------------------------------------------------------
    def example_from_dict(self, record: Mapping[str, Any], source: str = "") -> dict[str, Any]:
        """A pre-masked instance: input_ids, token_type_ids, masked_positions, masked_ids (+ next_sentence_label)."""
        where = source or "input"
        if not isinstance(record, Mapping):
            raise ValueError(f"{where}: expected a JSON object with input_ids and masked_positions")
        out: dict[str, Any] = {}
        for key in _FIELDS:
            value = record.get(key)
            if key == "next_sentence_label":
                out[key] = int(value or 0)
            elif key == "token_type_ids" and value is None:
                out[key] = [0] * len(out["input_ids"])
            elif not isinstance(value, list) or not all(isinstance(v, int) for v in value):
                raise ValueError(f"{where}: field {key!r} must be a list of integers")
            else:
                out[key] = value
        return out

    def check(self, example: Mapping[str, Any], labelled: bool = True) -> str | None:
        n = len(example["input_ids"])
        if not example["masked_positions"]:
            return "no masked positions"
        if len(example["masked_positions"]) != len(example["masked_ids"]):
            return "masked_positions and masked_ids differ in length"
        if max(example["masked_positions"]) >= n or min(example["masked_positions"]) < 0:
            return f"a masked position is outside the {n} tokens"
        return None

    def features(
        self, example: Mapping[str, Any], tokenizer: Tokenizer, max_seq_length: int
    ) -> list[Feature]:
        n = len(example["input_ids"])
        if n > max_seq_length:
            raise ValueError(
                f"a pretraining instance has {n} tokens but max_seq_length is {max_seq_length}; train with "
                "--max-seq-length at least the shards' max_seq_length"
            )
        if max(example["input_ids"]) >= tokenizer.vocab_size:
            raise ValueError(
                "an instance has a token id outside the vocabulary; the shards belong to another vocab"
            )
        return [{key: example[key] for key in _FIELDS}]

    def collate(self, features: Sequence[Feature]) -> Batch:
        batch = encoder_inputs(features)
        counts = torch.tensor([len(f["masked_positions"]) for f in features])
        batch["masked_positions"] = pad_sequences([f["masked_positions"] for f in features], 0)
        batch["masked_ids"] = pad_sequences([f["masked_ids"] for f in features], 0)
        batch["masked_weights"] = (torch.arange(int(counts.max())) < counts[:, None]).float()
        batch["next_sentence_labels"] = torch.tensor([f["next_sentence_label"] for f in features])
        return batch

    # ---- model ---------------------------------------------------------------------------------------
    def forward(self, model: nn.Module, batch: Batch) -> PretrainingLogits:
        out = model(
            batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
            masked_positions=batch["masked_positions"],
        )  # fmt: skip
        if isinstance(out, Tensor):  # a BertForMaskedLM passed in by the caller
            return PretrainingLogits(out, None)  # type: ignore[arg-type]
        return out

    def loss(self, outputs: PretrainingLogits, batch: Batch) -> Tensor:
        """Mean masked-token cross-entropy (+ NSP cross-entropy)."""
        ce = F.cross_entropy(
            outputs.mlm_logits.flatten(0, 1).float(), batch["masked_ids"].flatten(), reduction="none"
        )
        weights = batch["masked_weights"].flatten()
        loss = (ce * weights).sum() / weights.sum().clamp(min=1.0)
        if self.next_sentence:
            if outputs.nsp_logits is None:
                raise ValueError("next_sentence=True needs a model with an NSP head (BertForPreTraining)")
            loss = loss + F.cross_entropy(outputs.nsp_logits.float(), batch["next_sentence_labels"])
        return loss

    # ---- evaluation ----------------------------------------------------------------------------------
    def decode(
        self, outputs: Sequence[PretrainingLogits], features: Sequence[Feature], examples: Sequence[Any]
    ) -> list[dict]:
        """Per example: summed MLM loss, correct and total masked tokens, predicted ids, NSP correctness."""
        predictions: list[dict | None] = [None] * len(examples)
        row = 0
        for out in outputs:
            logp = torch.log_softmax(out.mlm_logits.float(), -1)  # (B, P, V)
            for b in range(logp.shape[0]):
                f = features[row]
                row += 1
                m = len(f["masked_ids"])
                target = torch.tensor(f["masked_ids"])
                lp = logp[b, :m]
                predicted = lp.argmax(-1)
                pred = {
                    "mlm_loss": float(-lp.gather(1, target[:, None]).sum()),
                    "mlm_correct": int((predicted == target).sum()),
                    "mlm_count": m,
                    "predicted_ids": predicted.tolist(),
                }
                if self.next_sentence and out.nsp_logits is not None:
                    pred["nsp_correct"] = int(out.nsp_logits[b].argmax()) == f["next_sentence_label"]
                predictions[f["example_index"]] = pred
        return predictions  # type: ignore[return-value]

    def metrics(self, predictions: Sequence[dict], examples: Sequence[Any]) -> dict[str, float]:
        count = sum(p["mlm_count"] for p in predictions)
        if count == 0:
            return {"mlm_accuracy": 0.0, "mlm_loss": float("nan"), "perplexity": float("nan")}
        loss = sum(p["mlm_loss"] for p in predictions) / count
        out = {
            "mlm_accuracy": sum(p["mlm_correct"] for p in predictions) / count,
            "mlm_loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
        }
        if self.next_sentence and predictions and "nsp_correct" in predictions[0]:
            out["nsp_accuracy"] = sum(p["nsp_correct"] for p in predictions) / len(predictions)
        return out
