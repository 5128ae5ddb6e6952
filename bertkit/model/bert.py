"""The BERT encoder, top to bottom: Embeddings -> SelfAttention -> Layer -> Encoder -> Pooler -> BertModel.

Shapes: B batch, T padded length, N real (unpadded) tokens, H hidden, I intermediate, nh heads, hs head size.
Inside the encoder a padded batch travels packed as (N, H): the dense layers never see padding rows, and
attention (model/attention.py) runs on each sequence's rows without re-padding. A batch without padding
stays (B, T, H); under torch.compile a padded batch stays (B, T, H) with a key mask (model/padding.py).
The whole BERT family runs through this one encoder: a family (bertkit.model.families, chosen by
config.model_type) supplies its parts (its embeddings, pooler or not, its weight table); the config carries
the numbers some families use (embedding_size E, ALBERT's shared layer groups).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from bertkit.model.attention import attend, attend_first
from bertkit.model.config import BertConfig
from bertkit.model.dropout import Dropout, dropout_rows
from bertkit.model.families import family_of
from bertkit.model.io import checkpoint_io
from bertkit.model.padding import Packing, first_rows, packing_from_mask, pad, unpad
from bertkit.model.rows import Row, check_rows, under

M = TypeVar("M", bound="PretrainedBert")


def activation(name: str):
    """hidden_act -> function. 'gelu' is the exact erf GELU (transformers); the tanh one is Google's."""
    if name == "gelu":
        return F.gelu
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_google", "gelu_fast"):  # one formula, spelled 4 ways
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu
    if name in ("silu", "swish"):
        return F.silu
    if name == "tanh":  # classifier heads only (RoBERTa's)
        return torch.tanh
    raise ValueError(f"unsupported hidden_act {name!r}")


@dataclass(frozen=True)
class EncoderOutput:
    last_hidden_state: Tensor  # (B, T, H); zeros at padded positions
    pooled_output: Tensor | None  # (B, H): tanh(dense([CLS])); None for models built without the pooler
    hidden_states: tuple[Tensor, ...] | None = None  # embeddings output, then each layer: (L+1) x (B, T, H)


class Embeddings(nn.Module):
    """word + position (+ token type) (+ ERNIE's task type) -> LayerNorm -> dropout (-> projection E -> H).

    Width E is config.input_size (embedding_size for ALBERT / ELECTRA, else H). A family without token types
    (DistilBERT) has type_vocab_size 0; one that places positions differently (RoBERTa) overrides position_ids.
    """

    def __init__(self, config: BertConfig, project: bool = False):
        super().__init__()
        e = config.input_size
        self.word_embeddings = nn.Embedding(config.vocab_size, e)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, e)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, e) if config.type_vocab_size else None
        self.task_type_embeddings = (
            nn.Embedding(config.task_type_vocab_size, e) if config.task_type_vocab_size else None
        )
        self.norm = nn.LayerNorm(e, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.project = nn.Linear(e, config.hidden_size) if project else None
        self.max_length = config.max_position_embeddings

    def position_ids(self, input_ids: Tensor) -> Tensor:
        """(B, T) ids -> (B, T) positions: 0..T-1."""
        b, t = input_ids.shape
        return torch.arange(t, device=input_ids.device).expand(b, t)

    def forward(
        self, input_ids: Tensor, token_type_ids: Tensor, position_ids: Tensor, task_type_ids: Tensor | None = None
    ) -> Tensor:
        """Ids of any shape (...,) -> (..., H). task_type_ids: ERNIE's, task 0 everywhere when None."""
        x = self.word_embeddings(input_ids) + self.position_embeddings(position_ids)
        if self.token_type_embeddings is not None:
            x = x + self.token_type_embeddings(token_type_ids)
        if self.task_type_embeddings is not None:  # ERNIE: task 0 unless told otherwise, as in transformers
            x = x + (
                self.task_type_embeddings.weight[0]
                if task_type_ids is None
                else self.task_type_embeddings(task_type_ids)
            )
        x = self.dropout(self.norm(x))
        return self.project(x) if self.project is not None else x


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection (weights/names.py splits it for HF/TF)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x: Tensor, packing: Packing | None) -> Tensor:
        """(B, T, H) or packed (N, H) -> same shape."""
        ctx = attend(
            self.qkv(x), self.num_heads, self.head_size, packing, self.dropout_p if self.training else 0.0
        )
        return self.out(ctx)

    def first(self, x: Tensor, packing: Packing | None) -> Tensor:
        """forward() at each sequence's first position only: (B, T, H) or packed (N, H) -> (B, H)."""
        ctx = attend_first(
            self.qkv(x), self.num_heads, self.head_size, packing, self.dropout_p if self.training else 0.0
        )
        return self.out(ctx)


class Layer(nn.Module):
    """Post-LayerNorm transformer block, as in the original BERT."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.act = activation(config.hidden_act)
        self.dropout = Dropout(config.hidden_dropout_prob)
        # prepare.prepare_for_inference may fold the activation into ffn_in's GEMM (exact GELU only)
        self.fusable_activation = ("ffn_in", "gelu") if config.hidden_act == "gelu" else None

    def forward(self, x: Tensor, packing: Packing | None, first_only: bool = False) -> Tensor:
        """(B, T, H) or packed (N, H) -> the same; first_only: (B, H), each sequence's position 0 alone (zeros
        where it is padding, as the padded output holds), computed from all keys but on B rows after attention.
        Its dropout drops what the whole layer's would at those rows (dropout_rows)."""
        if first_only:
            rows, real = first_rows(x, packing)
            total = x.numel() // x.shape[-1]

            def drop(y: Tensor) -> Tensor:
                return dropout_rows(y, self.dropout.p, self.training, rows, total)

            attended = self.attention.first(x, packing)
            x = x.reshape(total, -1)[rows]
        else:
            drop, attended = self.dropout, self.attention(x, packing)
        x = self.attention_norm(x + drop(attended))
        h = self.ffn_in(x)
        if getattr(self.ffn_in, "activation", "none") == "none":  # a prepared ffn_in applies it itself
            h = self.act(h)
        x = self.ffn_norm(x + drop(self.ffn_out(h)))
        return x if not first_only or real is None else torch.where(real[:, None], x, 0.0)


class Encoder(nn.Module):
    """num_hidden_layers steps. Without sharing each step has its own Layer; ALBERT's num_hidden_groups groups of
    inner_group_num layers are shared: step i runs group i * groups // num_hidden_layers."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.groups = config.num_hidden_groups or config.num_hidden_layers
        self.inner = config.inner_group_num if config.num_hidden_groups else 1
        self.steps = config.num_hidden_layers
        self.layers = nn.ModuleList(Layer(config) for _ in range(self.groups * self.inner))
        self.gradient_checkpointing = False

    def keep_layers(self, indices: Sequence[int]) -> None:
        """Keep only these layers, in this order, as steps of their own (a distillation student cut from its
        teacher). Only an encoder without shared layers can drop some."""
        if self.inner != 1 or self.groups != self.steps:
            raise ValueError("this encoder shares layers across steps (ALBERT): it cannot keep a subset of them")
        self.layers = nn.ModuleList(self.layers[i] for i in indices)
        self.groups = self.steps = len(self.layers)

    def forward(
        self, x: Tensor, packing: Packing | None, keep_all: bool, first_only: bool = False
    ) -> list[Tensor]:
        """Returns the outputs of every step when keep_all, else only the last one; first_only: the last layer
        computes each sequence's position 0 alone, (B, H) (Layer.forward)."""
        outputs = [x] if keep_all else []
        for i in range(self.steps):
            first = i * self.groups // self.steps * self.inner
            for j in range(first, first + self.inner):  # not layers[a:b]: a slice builds a new ModuleList
                layer = self.layers[j]
                only = first_only and i == self.steps - 1 and j == first + self.inner - 1
                if self.gradient_checkpointing and self.training:
                    x = checkpoint(layer, x, packing, only, use_reentrant=False)
                else:
                    x = layer(x, packing, only)
            if keep_all:
                outputs.append(x)
        return outputs if keep_all else [x]


_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("bertkit_deferred_init", default=False)


@contextlib.contextmanager
def deferred_init() -> Iterator[None]:
    """Models built inside skip BERT's random init (for MiniLM 3 of its 3.3 s at one thread, drawn twice by a
    head model and then overwritten by the checkpoint); init_weights(only=...) draws what the checkpoint lacks."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


class Pooler(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, last_hidden_state: Tensor) -> Tensor:
        """(B, T, H) -> (B, H) from the first ([CLS]) token."""
        return torch.tanh(self.dense(last_hidden_state[:, 0]))


class PretrainedBert(nn.Module):
    """Base of every bertkit model: weight init, its weight rows, and from_pretrained / save_pretrained.

    weight_rows() names every parameter in the checkpoint formats (bertkit.model.rows): the encoder's table
    under `bert.`, then head_rows(), which each head class declares beside its modules. The two I/O methods go
    through bertkit.model.io, where bertkit.weights plugs in the formats: model/ stays free of files.
    """

    hf_architecture: ClassVar[str] = "BertModel"
    # Constructor options a checkpoint may have been saved with (e.g. a tagger's head); infer_architecture tries each.
    variants: ClassVar[tuple[dict[str, Any], ...]] = ({},)
    config: BertConfig

    def init_weights(self, only: Collection[str] | None = None) -> None:
        """BERT's init: truncated normal weights (std initializer_range), zero biases, unit LayerNorms.

        only: the parameter names (as in state_dict) to draw; load_pretrained draws those its checkpoint lacks.
        Inside deferred_init() a constructor's call draws nothing: the checkpoint loaded next replaces them.
        """
        if only is None and _DEFERRED.get():
            self._fixed_tables()
            return
        std = self.config.initializer_range
        for name, module in self.named_modules():
            if not isinstance(module, (nn.Linear, nn.Embedding, nn.LayerNorm)):
                continue
            for key, param in module.named_parameters(recurse=False):
                if only is not None and (f"{name}.{key}" if name else key) not in only:
                    continue
                if isinstance(module, nn.LayerNorm) and key == "weight":
                    nn.init.ones_(param)
                elif key == "bias":
                    nn.init.zeros_(param)
                else:
                    nn.init.trunc_normal_(param, std=std, a=-2 * std, b=2 * std)
        if only is None:
            self._fixed_tables()

    def _fixed_tables(self) -> None:
        if self.config.sinusoidal_pos_embds:  # DistilBERT's option: a fixed table, as transformers builds it
            for module in self.modules():
                if isinstance(module, Embeddings):
                    table = module.position_embeddings.weight
                    with torch.no_grad():
                        table.copy_(sinusoids(table.shape[0], table.shape[1]).to(table))
                    table.requires_grad_(False)

    def encoder_rows(self) -> list[Row]:
        """Rows of the encoder, which a head model keeps in `.bert` (the pooler aside)."""
        return under(self.bert.encoder_rows(), "bert.")

    def pooler_rows(self) -> list[Row]:
        """Rows of the pooler: like a head's, reported as new when a checkpoint lacks them (roberta-base does)."""
        return under(self.bert.pooler_rows(), "bert.")

    def head_rows(self) -> list[Row]:
        """Rows of the head's parameters: every head class declares its own (none for the bare encoder)."""
        return []

    def weight_rows(self) -> list[Row]:
        """Every parameter of model.state_dict(), each exactly once (checked on save and load)."""
        rows = self.encoder_rows() + self.pooler_rows() + self.head_rows()
        check_rows(rows, list(self.state_dict()), type(self).__name__)
        return rows

    @classmethod
    def from_pretrained(cls: type[M], path: str | Path, **options: Any) -> M:
        """Load a Google TF folder, a Hugging Face folder, the alias 'minilm' or a hub id into this class."""
        return checkpoint_io().load(cls, path, **options)  # type: ignore[return-value]

    def save_pretrained(self, directory: str | Path) -> None:
        """Write a Hugging Face folder (config.json + model.safetensors) that transformers loads unchanged."""
        checkpoint_io().save(self, directory)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        for module in self.modules():
            if isinstance(module, Encoder):
                module.gradient_checkpointing = enabled


class BertModel(PretrainedBert):
    """The encoder: ids in, hidden states and pooled output out."""

    hf_architecture = "BertModel"

    def __init__(self, config: BertConfig, add_pooling_layer: bool | None = None):
        """add_pooling_layer: None takes the family's default (DistilBERT and ELECTRA have no pooler)."""
        super().__init__()
        self.config = config
        self.family = family_of(config)
        self.embeddings = self.family.embeddings(config)
        self.encoder = Encoder(config)
        pooler = self.family.pooler if add_pooling_layer is None else add_pooling_layer
        self.pooler = Pooler(config) if pooler else None
        self.every_position = False  # every_position(): first_token_only is ignored while set
        self.init_weights()

    def encoder_rows(self) -> list[Row]:
        """The family's table, HF names with its prefix (transformers' bare model saves them without it)."""
        rows = self.family.encoder_rows(self.config, self.pooler is not None)
        return [r for r in rows if not r.ours.startswith("pooler.")]

    def pooler_rows(self) -> list[Row]:
        rows = self.family.encoder_rows(self.config, self.pooler is not None)
        return [r for r in rows if r.ours.startswith("pooler.")]

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        output_hidden_states: bool = False,
        task_type_ids: Tensor | None = None,
        first_token_only: bool = False,
    ) -> EncoderOutput:
        """input_ids, token_type_ids, attention_mask, task_type_ids: (B, T) -> EncoderOutput.

        first_token_only: for a head that reads nothing but position 0 ([CLS], the pooler): last_hidden_state is
        (B, 1, H), and the last layer runs its out projection, FFN and norms on those B rows only (keys and values
        still come from every token). The same values as the full output's position 0 (float rounding aside), the
        same dropout in training; a 6-layer MiniLM classifier trains 1.13-1.16x and predicts 1.06-1.18x faster
        (bench/bench_first_token.py). Ignored with output_hidden_states and inside every_position().
        task_type_ids: ERNIE's task types (task 0 when None, as transformers' ErnieModel); a model without a
        task-type table refuses them rather than ignore them.
        """
        b, t = input_ids.shape
        if task_type_ids is not None and self.embeddings.task_type_embeddings is None:
            raise ValueError(
                "task_type_ids given, but this model has no task-type embeddings (only ERNIE with use_task_id "
                "has them)"
            )
        if t > self.embeddings.max_length:
            raise ValueError(
                f"sequence length {t} exceeds the {self.embeddings.max_length} positions of the model "
                f"(max_position_embeddings {self.config.max_position_embeddings}); truncate the input or use windows"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if position_ids is None:
            position_ids = self.embeddings.position_ids(input_ids)
        packing = None if attention_mask is None else packing_from_mask(attention_mask)
        if packing is None:
            x = self.embeddings(input_ids, token_type_ids, position_ids, task_type_ids)
        else:
            x = self.embeddings(
                unpad(input_ids, packing),
                unpad(token_type_ids, packing),
                unpad(position_ids, packing),
                None if task_type_ids is None else unpad(task_type_ids, packing),
            )
        first_only = first_token_only and not output_hidden_states and not self.every_position
        outputs = self.encoder(x, packing, keep_all=output_hidden_states, first_only=first_only)
        if first_only:
            outputs = [outputs[-1][:, None]]  # (B, 1, H)
        elif packing is not None:
            outputs = [pad(h, packing) for h in outputs]
        last = outputs[-1]
        pooled = self.pooler(last) if self.pooler is not None else None
        return EncoderOutput(last, pooled, tuple(outputs) if output_hidden_states else None)


@contextlib.contextmanager
def every_position(model: nn.Module) -> Iterator[None]:
    """Inside, every BertModel in model computes its last layer at every position, even for a head that asks for
    the first one only (BertModel.forward's first_token_only): for code that watches the encoder's layers or
    its last_hidden_state (the ONNX export views, distillation's Capture)."""
    encoders = [m for m in model.modules() if isinstance(m, BertModel)]
    saved = [m.every_position for m in encoders]
    for m in encoders:
        m.every_position = True
    try:
        yield
    finally:
        for m, was in zip(encoders, saved, strict=True):
            m.every_position = was


def sinusoids(n: int, dim: int) -> Tensor:
    """(n, dim) fixed position table: sin on even, cos on odd columns (DistilBERT's sinusoidal_pos_embds)."""
    position = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = position / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    return torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle)).float()
