"""Export a model folder to ONNX with dynamic batch and sequence axes, and check it against PyTorch.

The encoder packs padded batches (index ops: nonzero / index_select / index_copy). `packing_from_mask`
skips packing when a batch has no padding, a Python branch that a trace would freeze; so the trace runs
on a batch that has padding, and the graph always takes the packed path, which is exact for batches
with or without padding (verify_onnx checks both). The TorchScript exporter is used: it traces that path
as it is and needs no extra package (the dynamo exporter needs onnxscript).

Every graph has inputs input_ids, token_type_ids, attention_mask (B, T) int64 and, besides the head's
outputs, last_hidden_state (B, T, H), so one exported classifier also serves embeddings.
Shapes: B batch, T length, H hidden, L labels.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from bertkit.model.bert import BertModel, EncoderOutput, PretrainedBert
from bertkit.model.heads import (
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    SpanLogits,
)
from bertkit.model.registry import MODEL_CLASSES
from bertkit.tokenization import TOKENIZER_FILES, Tokenizer
from bertkit.weights.load import infer_architecture, load_pretrained, model_folder, resolve_model_path

logger = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
# Files of a model folder that the exported folder needs besides the graph (the tokenizer, the task, pooling).
COPIED_FILES = (
    "config.json",
    *TOKENIZER_FILES,
    "bertkit.json",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)
UNSUPPORTED = (BertForPreTraining, BertForNextSentencePrediction, BertForMultipleChoice)
# Checkpoints whose heads only serve pretraining: export_onnx exports their encoder.
PRETRAINING_HEADS = ("BertForPreTraining", "BertForMaskedLM", "BertForNextSentencePrediction")
# Real sentences for the parity check: short and long, English and Chinese, one pair.
CHECK_TEXTS = (
    "hide new secretions from the parental units",
    "the greatest musicians have always been as much about the music as about their own fame .",
    "A man is playing a guitar.",
    "EU rejects German call to boycott British lamb.",
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in France.",
    "it 's a charming and often affecting journey .",
    "选择珠江花园的原因就是方便，有电动扶梯直接到达海边。",
    "Which NFL team represented the AFC at Super Bowl 50?",
)
CHECK_PAIRS = (("A plane is taking off.", "An air plane is taking off."),)


def output_names(model: nn.Module) -> tuple[str, ...]:
    """The graph's output names for a model class."""
    if isinstance(model, BertModel):
        return ("last_hidden_state",) + (("pooled_output",) if model.pooler is not None else ())
    if isinstance(model, UNSUPPORTED):
        raise ValueError(
            f"ONNX export supports the encoder and the sequence, token and span heads, not {type(model).__name__}"
        )
    if isinstance(model, MODEL_CLASSES["BertForQuestionAnswering"]):
        return ("start_logits", "end_logits", "last_hidden_state")
    return ("logits", "last_hidden_state")


class ExportView(nn.Module):
    """The model's outputs as a flat tuple of tensors, plus the encoder's last_hidden_state for heads."""

    def __init__(self, model: PretrainedBert):
        super().__init__()
        self.model = model
        self._hidden: list[Tensor] = []
        if not isinstance(model, BertModel):
            model.bert.register_forward_hook(lambda _m, _i, out: self._hidden.append(out.last_hidden_state))

    def forward(
        self, input_ids: Tensor, token_type_ids: Tensor, attention_mask: Tensor
    ) -> tuple[Tensor, ...]:
        self._hidden.clear()
        out = self.model(input_ids, token_type_ids, attention_mask)
        if isinstance(out, EncoderOutput):
            return (out.last_hidden_state,) + ((out.pooled_output,) if out.pooled_output is not None else ())
        if isinstance(out, SpanLogits):
            return out.start_logits, out.end_logits, self._hidden[-1]
        return out, self._hidden[-1]


@dataclass
class ExportReport:
    """What export_onnx wrote and how closely the graph matches PyTorch."""

    model_class: str
    onnx_path: Path
    outputs: tuple[str, ...]
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # per output, over the check batches
    int8_path: Path | None = None
    int8_max_abs_diff: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs_diff.items())
        text = f"exported {self.model_class} to {self.onnx_path}; max |onnx - torch|: {diffs}"
        if self.int8_path is not None:
            diffs8 = ", ".join(f"{k} {v:.2e}" for k, v in self.int8_max_abs_diff.items())
            text += f"; int8 graph {self.int8_path} (max |int8 - torch|: {diffs8})"
        return text


def check_batches(tokenizer: Tokenizer, max_length: int = 128) -> list[dict[str, Tensor]]:
    """Padded batches of real sentences: mixed lengths, a pair, one sentence, and a batch with no padding."""
    texts = list(CHECK_TEXTS)
    a, b = zip(*CHECK_PAIRS, strict=True)
    same = [texts[0], texts[0]]
    return [
        dict(tokenizer(texts, max_length=max_length)),
        dict(tokenizer(list(a), list(b), max_length=max_length)),
        dict(tokenizer(texts[1:2], max_length=max_length)),
        dict(tokenizer(same, max_length=max_length)),
    ]


def _torch_outputs(view: ExportView, batch: dict[str, Tensor]) -> list[np.ndarray]:
    with torch.inference_mode():
        outs = view(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    return [o.numpy() for o in outs]


def verify_onnx(
    onnx_path: str | Path, model: PretrainedBert, batches: list[dict[str, Tensor]]
) -> dict[str, float]:
    """Max |onnx - torch| per output over the batches (real tokens only for token-level outputs)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    view = ExportView(model).eval()
    worst = dict.fromkeys(names, 0.0)
    for batch in batches:
        feeds = {k: batch[k].numpy() for k in INPUT_NAMES}
        got = session.run(names, feeds)
        mask = batch["attention_mask"].numpy().astype(bool)
        for name, ref, out in zip(names, _torch_outputs(view, batch), got, strict=True):
            if ref.shape != out.shape:
                raise ValueError(
                    f"{onnx_path}: output {name} has shape {out.shape}, PyTorch gives {ref.shape}"
                )
            diff = np.abs(ref - out)
            if diff.ndim >= 2 and diff.shape[:2] == mask.shape:
                diff = diff[mask]  # padded positions are not outputs anyone reads
            worst[name] = max(worst[name], float(diff.max()))
    return worst


def export_model(
    model: PretrainedBert, onnx_path: str | Path, example: dict[str, Tensor], opset: int = 17
) -> None:
    """Trace `model` on `example` (a padded batch) into an ONNX file with dynamic batch and sequence axes."""
    mask = example["attention_mask"]
    if bool(mask.bool().all()):
        raise ValueError("the example batch for tracing must contain padding, so the packed path is traced")
    names = output_names(model)
    view = ExportView(model).eval()
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    for name in names:
        axes[name] = {0: "batch"} if name in ("logits", "pooled_output") else {0: "batch", 1: "sequence"}
    if "logits" in names and isinstance(model, MODEL_CLASSES["BertForTokenClassification"]):
        axes["logits"] = {0: "batch", 1: "sequence"}
    args = tuple(example[k] for k in INPUT_NAMES)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The tracer warns about the Python branches (length check, the no-padding shortcut); both are
        # intended: the length check guards eager callers, and the shortcut is bypassed as explained above.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            view,
            args,
            str(onnx_path),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=list(names),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
        )
    _write_metadata(Path(onnx_path), type(model).__name__, names)


def _write_metadata(path: Path, model_class: str, names: tuple[str, ...]) -> None:
    import onnx

    graph = onnx.load(str(path))
    for key, value in (("bertkit.model_class", model_class), ("bertkit.outputs", ",".join(names))):
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))


def copy_model_files(source: Path, output_dir: Path) -> list[str]:
    """Copy the tokenizer, config, task and pooling files (not the weights) next to the graph."""
    copied = []
    for name in COPIED_FILES:
        if (source / name).is_file():
            (output_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, output_dir / name)
            copied.append(name)
    return copied


def export_onnx(
    model: str | Path,
    output_dir: str | Path,
    *,
    quantize: str | None = None,
    opset: int = 17,
    atol: float = 1e-4,
) -> ExportReport:
    """Export a model folder (or alias) to OUTPUT_DIR/model.onnx, check it, optionally add model.int8.onnx.

    Fine-tuned sequence / token / span models keep their head; pretraining checkpoints export their encoder.

    Raises ValueError when the graph differs from PyTorch by more than `atol` on any output.
    The output folder also gets config.json, the tokenizer files and bertkit.json, so `bertkit serve
    --backend onnx` runs from it alone.
    """
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ImportError("ONNX export needs onnx and onnxruntime: pip install 'bertkit[export]'") from err
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be 'int8' or None, not {quantize!r}")
    source = model_folder(resolve_model_path(model))
    architecture, _ = infer_architecture(source)
    if architecture in PRETRAINING_HEADS:
        logger.info("%s is a %s checkpoint: exporting its encoder (BertModel)", source, architecture)
        architecture = "BertModel"
    torch_model, _ = load_pretrained(source, MODEL_CLASSES[architecture])
    torch_model.eval()
    output_names(torch_model)  # raises early for unsupported heads
    tokenizer = Tokenizer.from_pretrained(source)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ONNX_FILE
    batches = check_batches(tokenizer, min(128, torch_model.config.max_position_embeddings))
    export_model(torch_model, onnx_path, batches[0], opset)
    copy_model_files(source, out)
    (out / "export.json").write_text(
        json.dumps({"source": str(source), "model_class": architecture, "opset": opset}, indent=2) + "\n"
    )
    report = ExportReport(
        architecture, onnx_path, output_names(torch_model), verify_onnx(onnx_path, torch_model, batches)
    )
    logger.info("%s", report)
    bad = {k: v for k, v in report.max_abs_diff.items() if v > atol}
    if bad:
        raise ValueError(
            f"{onnx_path} differs from PyTorch by more than {atol} on {bad}; the file is left for inspection. "
            "Try another --opset, and report the model's config if it persists"
        )
    if quantize == "int8":
        from bertkit.export.quantize import quantize_onnx

        report.int8_path = quantize_onnx(onnx_path, out / INT8_FILE)
        report.int8_max_abs_diff = verify_onnx(report.int8_path, torch_model, batches)
    return report
