"""Export a model folder to ONNX with dynamic batch and sequence axes, and check it against PyTorch.

What is exported is what `bertkit predict` runs: a fine-tuned folder (bertkit.json) is loaded through its
task, so a tagger keeps its BiLSTM (in the graph) and its CRF (transition scores in the file's metadata,
applied by bertkit.export.runtime.OnnxModel through the task's own Viterbi). Each model class has a view
(bertkit.export.views); a class without one is refused. The check compares the graph's raw outputs with
PyTorch's and then the task's decoded outputs (labels, entities, answers) on real inputs (export.check).

The encoder packs padded batches (index ops: nonzero / index_select / index_copy). `packing_from_mask`
skips packing when a batch has no padding, a Python branch that a trace would freeze; so the trace runs
on a batch that has padding, and the graph always takes the packed path, which is exact for batches
with or without padding (verify_onnx checks both). The TorchScript exporter is used: it traces that path
as it is and needs no extra package (the dynamo exporter needs onnxscript).
Shapes: B batch, C choices, T length, H hidden, L labels.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bertkit import folder as folder_format
from bertkit.engine import Engine
from bertkit.export.check import SAMPLE_INPUTS, DecodedCheck, compare_decoded, usable_inputs
from bertkit.export.views import INPUT_NAMES, view_for
from bertkit.model.bert import BertModel
from bertkit.tokenization import TOKENIZER_FILES, Tokenizer
from bertkit.weights.load import (
    infer_model,
    load_every_head,
    load_pretrained,
    model_folder,
    resolve_model_path,
)

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
# Files of a model folder that the exported folder needs besides the graph: the config, the tokenizer (every
# kind's files), the task, pooling.
COPIED_FILES = (
    folder_format.HF_CONFIG_FILE,
    *TOKENIZER_FILES,
    folder_format.INFO_FILE,
    folder_format.LABELS_FILE,
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)
# Checkpoints whose heads only serve pretraining: export_onnx exports their encoder.
PRETRAINING_HEADS = ("BertForPreTraining", "BertForMaskedLM", "BertForNextSentencePrediction")
# Real sentences for the raw-output check: short and long, English and Chinese, one pair.
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
CRF_METADATA = "bertkit.crf"


def output_names(model: nn.Module) -> tuple[str, ...]:
    """The graph's output names for a model (ValueError for a model class bertkit cannot export whole)."""
    return view_for(model).outputs


@dataclass
class ExportReport:
    """What export_onnx wrote and how closely the graph matches PyTorch, in raw outputs and decoded ones."""

    model_class: str
    onnx_path: Path
    outputs: tuple[str, ...]
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # per output, over the check batches
    int8_path: Path | None = None
    int8_max_abs_diff: dict[str, float] = field(default_factory=dict)
    decoded: DecodedCheck | None = None  # fine-tuned folders: the task's outputs, graph vs PyTorch
    int8_decoded: DecodedCheck | None = None

    def __str__(self) -> str:
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in self.max_abs_diff.items())
        text = f"exported {self.model_class} to {self.onnx_path}; max |onnx - torch|: {diffs}"
        if self.decoded is not None:
            text += f"; {self.decoded}"
        if self.int8_path is not None:
            diffs8 = ", ".join(f"{k} {v:.2e}" for k, v in self.int8_max_abs_diff.items())
            text += f"; int8 graph {self.int8_path} (max |int8 - torch|: {diffs8}"
            text += f"; {self.int8_decoded})" if self.int8_decoded is not None else ")"
        return text


def check_batches(
    tokenizer: Tokenizer, max_length: int = 128, choices: bool = False
) -> list[dict[str, Tensor]]:
    """Padded batches of real sentences: mixed lengths, a pair, one sentence, and a batch with no padding.

    choices=True: the same as (B, C, T) batches of choices (two for the first, one for the rest)."""
    texts = list(CHECK_TEXTS)
    a, b = zip(*CHECK_PAIRS, strict=True)
    same = [texts[0], texts[0]]
    batches = [
        dict(tokenizer(texts, max_length=max_length)),
        dict(tokenizer(list(a), list(b), max_length=max_length)),
        dict(tokenizer(texts[1:2], max_length=max_length)),
        dict(tokenizer(same, max_length=max_length)),
    ]
    if choices:
        first, *rest = batches
        batches = [{k: v.view(-1, 2, v.shape[-1]) for k, v in first.items()}]
        batches += [{k: v.unsqueeze(1) for k, v in batch.items()} for batch in rest]
    return [{k: batch[k] for k in INPUT_NAMES} for batch in batches]


def verify_onnx(
    onnx_path: str | Path, model: nn.Module, batches: list[dict[str, Tensor]]
) -> dict[str, float]:
    """Max |onnx - torch| per output over the batches (real tokens only for token-level outputs)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    view = view_for(model)
    worst = dict.fromkeys(names, 0.0)
    inputs = {i.name for i in session.get_inputs()}  # DistilBERT's graph has no token_type_ids (unused, dropped)
    for batch in batches:
        feeds = {k: batch[k].numpy() for k in INPUT_NAMES if k in inputs}
        got = session.run(names, feeds)
        with torch.inference_mode():
            refs = [o.numpy() for o in view(*(batch[k] for k in INPUT_NAMES))]
        mask = batch["attention_mask"].numpy().astype(bool)
        for name, ref, out in zip(names, refs, got, strict=True):
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
    model: nn.Module, onnx_path: str | Path, example: dict[str, Tensor], opset: int = 17
) -> None:
    """Trace `model` on `example` (a padded batch) into an ONNX file with dynamic batch and sequence axes."""
    mask = example["attention_mask"]
    if bool(mask.bool().all()):
        raise ValueError("the example batch for tracing must contain padding, so the packed path is traced")
    view = view_for(model)
    args = tuple(example[k] for k in INPUT_NAMES)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # The tracer warns about the Python branches (length check, the no-padding shortcut); both are
        # intended: the length check guards eager callers, and the shortcut is bypassed as explained above.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*LSTM.*batch_first.*", category=UserWarning)
        torch.onnx.export(
            view,
            args,
            str(onnx_path),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=list(view.outputs),
            dynamic_axes=view.axes,
            opset_version=opset,
            do_constant_folding=True,
        )
    metadata = {"bertkit.model_class": type(model).__name__, "bertkit.outputs": ",".join(view.outputs)}
    crf = getattr(model, "crf", None)
    if crf is not None:
        metadata[CRF_METADATA] = json.dumps(crf_state(crf))
    write_metadata(Path(onnx_path), metadata)


def crf_state(crf: nn.Module) -> dict[str, list]:
    """A CRF's learned scores and its allowed-move masks as JSON lists (float32 -> float64 -> JSON is exact)."""
    names = ("start_transitions", "transitions", "end_transitions", "allowed_start", "allowed_transitions",
             "allowed_end")  # fmt: skip
    return {name: getattr(crf, name).detach().cpu().tolist() for name in names}


def write_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Set the graph file's metadata_props (replacing entries of the same key)."""
    import onnx

    graph = onnx.load(str(path))
    kept = [(p.key, p.value) for p in graph.metadata_props if p.key not in metadata]
    del graph.metadata_props[:]
    for key, value in [*kept, *metadata.items()]:
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))


def copy_model_files(source: Path, output_dir: Path) -> list[str]:
    """Copy the config, tokenizer, task and pooling files (not the weights) next to the graph."""
    copied = []
    for name in COPIED_FILES:
        if (source / name).is_file():
            (output_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, output_dir / name)
            copied.append(name)
    return copied


def load_for_export(source: Path) -> tuple[nn.Module, Engine | None]:
    """The model `bertkit predict` (task folder) or `bertkit encode` (anything else) would run."""
    if folder_format.has_info(source):
        engine = Engine.from_folder(source, device="cpu")
        return engine.model.eval(), engine
    spec = infer_model(source)
    if spec.model_class.__name__ in PRETRAINING_HEADS:
        logger.info(
            "%s is a %s checkpoint: exporting its encoder (BertModel)", source, spec.model_class.__name__
        )
        return load_pretrained(source, BertModel)[0].eval(), None
    return load_every_head(source)[0].eval(), None


def export_onnx(
    model: str | Path,
    output_dir: str | Path,
    *,
    quantize: str | None = None,
    opset: int = 17,
    atol: float = 1e-4,
    check_inputs: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] | None = None,
) -> ExportReport:
    """Export a model folder (or alias) to OUTPUT_DIR/model.onnx, check it, optionally add model.int8.onnx.

    A fine-tuned folder is exported with its whole head, as `bertkit predict` loads it; a pretraining
    checkpoint exports its encoder; any other head class is refused (ValueError naming it).
    check_inputs: task inputs (as `bertkit predict` reads them; a dict keys them by their source, e.g.
    "dev.jsonl:3", for error messages) for the decoded-output check; default: the real sentences,
    paragraphs and questions of export.check.SAMPLE_INPUTS that the task can read.

    Raises ValueError when the graph differs from PyTorch by more than `atol` on any output, or decodes
    any input differently (the file is left for inspection). The int8 graph is reported, not checked.
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
    torch_model, engine = load_for_export(source)
    view_for(torch_model)  # raises early for a model bertkit cannot export whole
    tokenizer = engine.tokenizer if engine is not None else Tokenizer.from_pretrained(source)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / ONNX_FILE
    choices = type(torch_model).__name__ == "BertForMultipleChoice"
    batches = check_batches(tokenizer, min(128, torch_model.config.max_position_embeddings), choices)
    export_model(torch_model, onnx_path, batches[0], opset)
    copy_model_files(source, out)
    model_class = type(torch_model).__name__
    (out / "export.json").write_text(
        json.dumps({"source": str(source), "model_class": model_class, "opset": opset}, indent=2) + "\n"
    )
    report = ExportReport(
        model_class, onnx_path, output_names(torch_model), verify_onnx(onnx_path, torch_model, batches)
    )
    bad = {k: v for k, v in report.max_abs_diff.items() if v > atol}
    if bad:
        raise ValueError(
            f"{onnx_path} differs from PyTorch by more than {atol} on {bad}; the file is left for inspection. "
            "Try another --opset, and report the model's config if it persists"
        )
    examples = []
    if engine is not None:
        if isinstance(check_inputs, Mapping):
            examples = [engine.examples([record], where)[0] for where, record in check_inputs.items()]
        elif check_inputs:
            examples = engine.examples(check_inputs, "check_inputs")
        else:
            examples = usable_inputs(engine, SAMPLE_INPUTS)
        report.decoded = _decoded_check(engine, onnx_path, examples, atol)
        if report.decoded.mismatches:
            raise ValueError(
                f"{onnx_path} decodes {len(report.decoded.mismatches)} of {report.decoded.total} inputs "
                f"differently from PyTorch; the file is left for inspection. First: {report.decoded.mismatches[0]}"
            )
    logger.info("%s", report)
    if quantize == "int8":
        from bertkit.export.quantize import quantize_onnx

        report.int8_path = quantize_onnx(onnx_path, out / INT8_FILE)
        report.int8_max_abs_diff = verify_onnx(report.int8_path, torch_model, batches)
        if engine is not None:
            report.int8_decoded = _decoded_check(engine, report.int8_path, examples, atol)
    return report


def _decoded_check(engine: Engine, onnx_path: Path, examples: list, atol: float) -> DecodedCheck:
    from bertkit.export.runtime import OnnxModel

    if not examples:
        raise ValueError(
            f"none of the check inputs suit the {engine.task.name} task; pass check_inputs "
            "(bertkit export --check-inputs FILE.jsonl) with inputs as `bertkit predict` reads them"
        )
    graph = Engine(engine.task, OnnxModel(onnx_path), engine.tokenizer, engine.max_seq_length)
    return compare_decoded(engine, graph, examples, atol)
