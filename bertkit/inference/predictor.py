"""Predictor: load a fine-tuned model folder once, then predict batches of JSON inputs for any task.

The engine (bertkit.engine.Engine) does featurize -> run -> decode; the Predictor adds the input dicts of
`bertkit predict` and compilation.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bertkit.engine import Engine
from bertkit.prepare import bf16_weights_prepared, prepare_for_inference
from bertkit.runtime import Runtime, compile_encoder
from bertkit.textfile import numbered_lines

logger = logging.getLogger(__name__)


class Predictor(Engine):
    """A fine-tuned model folder, loaded once. predict(list of dicts) -> list of dicts, in input order."""

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        *,
        batch_size: int = 64,
        device: str | None = None,
        max_seq_length: int | None = None,
        compile: bool = False,  # noqa: A002 - torch.compile's own name
        precision: str = "fp32",
    ) -> Predictor:
        """Rebuild the task from model_dir/bertkit.json, load the weights and the tokenizer.

        The model is prepared for inference once (prepare.prepare_for_inference: packed weights; with
        precision bf16, bf16 weights where the CPU computes bf16 natively, else autocast). compile=True
        compiles the encoder instead (runtime.compile_encoder, with its warm-up) before returning.
        """
        predictor = cls.from_folder(
            model_dir, device=device, max_seq_length=max_seq_length, batch_size=batch_size
        )
        if compile:
            compile_encoder(predictor.model)
        else:
            prepare_for_inference(predictor.model, precision)
        if precision != "fp32" and not bf16_weights_prepared(predictor.model):
            predictor.autocast = Runtime(predictor.device, precision).autocast
        return predictor

    def predict(self, inputs: Sequence[Mapping[str, Any]]) -> list[dict]:
        """One prediction per input dict, in input order (batched and length-sorted internally)."""
        return self.predict_examples(self.examples(inputs))


def read_inputs(path: str) -> list[tuple[str, dict]]:
    """Every (source, object) of iter_inputs(path), as a list."""
    return list(iter_inputs(path))


def iter_inputs(path: str) -> Iterator[tuple[str, dict]]:
    """The JSON-lines input of `bertkit predict` (a file, gzipped or not, or "-" for stdin), one line at a time:
    (source, object) per non-blank line; a line that is not a JSON object raises with its line number."""
    if path == "-":
        name, lines = "<stdin>", ((n, line.rstrip("\r\n"), None) for n, line in enumerate(sys.stdin, start=1))
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--input {path} does not exist")
        name, lines = path, numbered_lines(path, "--input file")
    for number, line, problem in lines:
        if problem:
            raise ValueError(f"{name}:{number}: {problem}")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{name}:{number}: not valid JSON ({err.msg}); each line must be one JSON object"
            ) from None
        if isinstance(obj, str):
            obj = {"text": obj}  # a bare JSON string is a text
        if not isinstance(obj, dict):
            raise ValueError(f'{name}:{number}: expected a JSON object like {{"text": ...}}')
        yield f"{name}:{number}", obj
