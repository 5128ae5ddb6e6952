"""OnnxModel: an exported graph behind the same call and return types as the PyTorch model it came from.

`OnnxModel(...)(input_ids, token_type_ids, attention_mask)` returns logits (B, L) / (B, T, L) / (B, C),
SpanLogits, or EncoderOutput, so the task code (collate, decode) and the server run unchanged on onnxruntime.
A CRF tagger's graph gives the emissions; its CRF (the saved transition scores, from the file's metadata) is
`OnnxModel.crf`, as on the PyTorch tagger, so the task decodes with the same Viterbi.
Shapes: B batch, C choices, T length, H hidden, L labels.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from bertkit.model.bert import EncoderOutput
from bertkit.model.config import BertConfig
from bertkit.model.crf import CRF
from bertkit.model.heads import SpanLogits

logger = logging.getLogger(__name__)


def _session_options(threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads sleep rather than spin: in a server the event loop shares the cores with them
    # (the same reason as OMP_WAIT_POLICY=PASSIVE for PyTorch).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options


class OnnxModel(nn.Module):
    """An ONNX graph from bertkit export, callable like the bertkit model (CPU, no gradients)."""

    def __init__(self, onnx_path: str | Path, config: BertConfig | None = None, threads: int | None = None):
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError("the ONNX backend needs onnxruntime: pip install 'bertkit[export]'") from err
        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; create it with `bertkit export --format onnx`")
        self.path = path
        self.session = ort.InferenceSession(
            str(path), _session_options(threads), providers=["CPUExecutionProvider"]
        )
        meta = self.session.get_modelmeta().custom_metadata_map
        self.model_class = meta.get("bertkit.model_class", "")
        self.outputs = tuple(o.name for o in self.session.get_outputs())
        inputs = {i.name for i in self.session.get_inputs()}
        if not self.model_class or not {"input_ids", "attention_mask"} <= inputs:
            raise ValueError(
                f"{path} was not written by `bertkit export` (no bertkit.model_class metadata or inputs "
                f"input_ids/attention_mask; found {sorted(inputs)}); export the model folder with bertkit"
            )
        self._inputs = inputs
        if config is None and (path.parent / "config.json").is_file():
            config = BertConfig.from_json(path.parent / "config.json")
        self.config = config
        self.crf = crf_from_metadata(meta.get("bertkit.crf"), path)
        self.register_buffer("_device_marker", torch.zeros(0), persistent=False)  # .device for callers

    @property
    def has_hidden_state(self) -> bool:
        return "last_hidden_state" in self.outputs

    def run(
        self, input_ids: Tensor, token_type_ids: Tensor | None, attention_mask: Tensor | None
    ) -> dict[str, Tensor]:
        """Every graph output as a tensor, by name."""
        ids = input_ids.cpu().numpy().astype(np.int64, copy=False)
        feeds = {"input_ids": ids}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = (
                np.zeros_like(ids)
                if token_type_ids is None
                else token_type_ids.cpu().numpy().astype(np.int64)
            )
        feeds["attention_mask"] = (
            np.ones_like(ids) if attention_mask is None else attention_mask.cpu().numpy().astype(np.int64)
        )
        arrays = self.session.run(list(self.outputs), feeds)
        return {name: torch.from_numpy(a) for name, a in zip(self.outputs, arrays, strict=True)}

    def forward(
        self, input_ids: Tensor, token_type_ids: Tensor | None = None, attention_mask: Tensor | None = None
    ) -> Tensor | SpanLogits | EncoderOutput:
        out = self.run(input_ids, token_type_ids, attention_mask)
        if "start_logits" in out:
            return SpanLogits(out["start_logits"], out["end_logits"])
        if "logits" in out:
            return out["logits"]
        return EncoderOutput(out["last_hidden_state"], out.get("pooled_output"))

    def encode(
        self, input_ids: Tensor, token_type_ids: Tensor | None = None, attention_mask: Tensor | None = None
    ) -> EncoderOutput:
        """The encoder's output (last_hidden_state), whatever head the graph has."""
        if not self.has_hidden_state:
            raise ValueError(f"{self.path} has no last_hidden_state output; re-export it with bertkit export")
        out = self.run(input_ids, token_type_ids, attention_mask)
        return EncoderOutput(out["last_hidden_state"], out.get("pooled_output"))


def crf_from_metadata(text: str | None, path: Path) -> CRF | None:
    """The CRF that export wrote into the graph's metadata (JSON lists), or None when the graph has none."""
    if text is None:
        return None
    try:
        state = json.loads(text)
        crf = CRF(len(state["start_transitions"]), state["allowed_start"], state["allowed_transitions"],
                  state["allowed_end"])  # fmt: skip
        with torch.no_grad():
            for name in ("start_transitions", "transitions", "end_transitions"):
                getattr(crf, name).copy_(torch.tensor(state[name], dtype=torch.float32))
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise ValueError(
            f"{path}: the CRF in its bertkit.crf metadata is unreadable ({err}); export the model again"
        ) from err
    return crf.eval()
