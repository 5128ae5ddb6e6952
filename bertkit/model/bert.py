"""The BERT encoder, top to bottom: Embeddings -> SelfAttention -> Layer -> Encoder -> Pooler -> BertModel.

Shapes: B batch, T padded length, N real (unpadded) tokens, H hidden, I intermediate, nh heads, hs head size.
Inside the encoder a padded batch travels packed as (N, H): the dense layers never see padding rows,
and attention re-pads to (B, nh, T, hs) with a boolean key mask. A batch without padding stays (B, T, H).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from bertkit.model.attention import attend
from bertkit.model.config import BertConfig
from bertkit.model.padding import Packing, packing_from_mask, pad, unpad

M = TypeVar("M", bound="PretrainedBert")


def activation(name: str):
    """hidden_act -> function. 'gelu' is the exact erf GELU (transformers); the tanh one is Google's."""
    if name == "gelu":
        return F.gelu
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_google"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu
    raise ValueError(f"unsupported hidden_act {name!r}")


@dataclass(frozen=True)
class EncoderOutput:
    last_hidden_state: Tensor  # (B, T, H); zeros at padded positions
    pooled_output: Tensor | None  # (B, H): tanh(dense([CLS])); None for models built without the pooler
    hidden_states: tuple[Tensor, ...] | None = None  # embeddings output, then each layer: (L+1) x (B, T, H)


class Embeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor, position_ids: Tensor) -> Tensor:
        """Ids of any shape (...,) -> (..., H)."""
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(position_ids)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.dropout(self.norm(x))


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
        qkv = self.qkv(x)
        if packing is not None:
            qkv = pad(qkv, packing)  # (B, T, 3H)
        b, t, _ = qkv.shape
        q, k, v = qkv.view(b, t, 3, self.num_heads, self.head_size).permute(2, 0, 3, 1, 4).unbind(0)
        ctx = attend(
            q, k, v, None if packing is None else packing.key_mask, self.dropout_p if self.training else 0.0
        )  # (B, nh, T, hs)
        ctx = ctx.transpose(1, 2).reshape(b, t, self.num_heads * self.head_size)
        if packing is not None:
            ctx = unpad(ctx, packing)
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
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor, packing: Packing | None) -> Tensor:
        x = self.attention_norm(x + self.dropout(self.attention(x, packing)))
        return self.ffn_norm(x + self.dropout(self.ffn_out(self.act(self.ffn_in(x)))))


class Encoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))
        self.gradient_checkpointing = False

    def forward(self, x: Tensor, packing: Packing | None, keep_all: bool) -> list[Tensor]:
        """Returns the outputs of every layer when keep_all, else only the last one."""
        outputs = [x] if keep_all else []
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, packing, use_reentrant=False)
            else:
                x = layer(x, packing)
            if keep_all:
                outputs.append(x)
        return outputs if keep_all else [x]


class Pooler(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, last_hidden_state: Tensor) -> Tensor:
        """(B, T, H) -> (B, H) from the first ([CLS]) token."""
        return torch.tanh(self.dense(last_hidden_state[:, 0]))


class PretrainedBert(nn.Module):
    """Base of every bertkit model: weight init, and from_pretrained / save_pretrained.

    The two I/O methods import bertkit.weights lazily: model/ stays free of file formats, and
    `Model.from_pretrained(path)` still reads the way users expect.
    """

    hf_architecture: ClassVar[str] = "BertModel"
    config: BertConfig

    def init_weights(self) -> None:
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @classmethod
    def from_pretrained(cls: type[M], path: str | Path, **head_options: Any) -> M:
        """Load a Google TF folder, a Hugging Face folder, the alias 'minilm' or a hub id into this class."""
        from bertkit.weights.load import load_pretrained

        model, _ = load_pretrained(path, cls, **head_options)
        return model

    def save_pretrained(self, directory: str | Path) -> None:
        """Write a Hugging Face folder (config.json + model.safetensors) that transformers loads unchanged."""
        from bertkit.weights.hf import save_hf

        save_hf(self, directory)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        for module in self.modules():
            if isinstance(module, Encoder):
                module.gradient_checkpointing = enabled


class BertModel(PretrainedBert):
    """The encoder: ids in, hidden states and pooled output out."""

    hf_architecture = "BertModel"

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config) if add_pooling_layer else None
        self.init_weights()

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> EncoderOutput:
        """input_ids, token_type_ids, attention_mask: (B, T) -> EncoderOutput."""
        b, t = input_ids.shape
        if t > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {t} exceeds max_position_embeddings "
                f"{self.config.max_position_embeddings}; truncate the input or use windows"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if position_ids is None:
            position_ids = torch.arange(t, device=input_ids.device).expand(b, t)
        packing = None if attention_mask is None else packing_from_mask(attention_mask)
        if packing is None:
            x = self.embeddings(input_ids, token_type_ids, position_ids)
        else:
            flat = packing.indices
            x = self.embeddings(
                input_ids.reshape(-1)[flat], token_type_ids.reshape(-1)[flat], position_ids.reshape(-1)[flat]
            )
        outputs = self.encoder(x, packing, keep_all=output_hidden_states)
        if packing is not None:
            outputs = [pad(h, packing) for h in outputs]
        last = outputs[-1]
        pooled = self.pooler(last) if self.pooler is not None else None
        return EncoderOutput(last, pooled, tuple(outputs) if output_hidden_states else None)
