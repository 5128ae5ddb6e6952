"""Every head: `bertkit export` then `bertkit serve --backend onnx` decodes real inputs exactly as `bertkit predict`.

Issue 10's bug: an lstm_crf tagger exported without its LSTM and CRF, then decoded as softmax by the ONNX
backend, gave other entities on 64 of 64 CoNLL-2003 dev sentences while the export reported success. Here each
head (tests/every_head.py: classifier, regression, multi-label; tagger softmax / crf / lstm_crf; QA; multiple
choice) is exported with `bertkit export --quantize int8 --check-inputs` and served over HTTP. fp32: the same
labels, tags, entities, answers and choices, numbers within 1e-4. int8: the export reports its agreement and the
task's metric on both sides (printed with -s; approximate by design, not asserted).
Slow: about 70 s for the 8 heads on a busy 2-core machine.
"""

from __future__ import annotations

import re

import pytest
import torch

from bertkit.serving.config import ServeConfig

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_export_then_onnx_serve_decodes_like_predict(head, every_head, every_head_base, tmp_path, data_dir, serve, http, capsys):
    from bertkit.cli.main import main

    family, options, kind = every_head.HEADS[head]
    folder = every_head.model_folder(tmp_path, every_head_base, family, options)
    inputs = every_head.real_inputs(kind, data_dir)
    assert len(inputs) >= 12
    path = every_head.write_inputs(tmp_path / "inputs.jsonl", inputs)
    expected = every_head.predict(folder, path, tmp_path / "predict.jsonl")
    every_head.assert_varied(expected)

    onnx_dir = tmp_path / "onnx"
    assert main(["export", "--model", str(folder), "--output-dir", str(onnx_dir), "--quantize", "int8",
                 "--check-inputs", str(path)]) == 0  # fmt: skip
    report = capsys.readouterr().out
    agreement = re.findall(r"decoded outputs agree on (\d+)/(\d+) inputs", report)
    assert agreement[0] == (str(len(inputs)), str(len(inputs)))  # fp32: every input, or export raises
    assert len(agreement) == 2  # the int8 graph's agreement is reported (not asserted: int8 is approximate)
    if head != "multi_label":  # gold labels given: the task's metric, PyTorch vs ONNX, fp32 and int8
        assert len(re.findall(r"\(\w+ -?[\d.]+ torch, -?[\d.]+ onnx\)", report)) == 2, report
    print(f"{head}: {report.strip()}")  # the int8 change, for the record (pytest -s)

    with serve(ServeConfig(model=str(onnx_dir), backend="onnx")) as url, http(url) as client:
        info = client.get("/info").json()
        assert (info["backend"], info["task"]) == ("onnx", family)
        answer = client.post("/predict", json={"inputs": inputs})
        assert answer.status_code == 200, answer.text
    every_head.assert_same_decoded(answer.json()["predictions"], expected)

    if "crf" in options.get("head", ""):  # the CRF is in both graphs, and it decides: without it, no answer
        from bertkit.export.runtime import OnnxModel
        from bertkit.inference.predictor import Predictor

        graph = OnnxModel(onnx_dir / "model.onnx")
        assert graph.crf is not None and OnnxModel(onnx_dir / "model.int8.onnx").crf is not None
        torch_side = Predictor.from_pretrained(folder, device="cpu")
        with torch.no_grad():
            graph.crf.transitions.zero_()
        untrained = Predictor(torch_side.task, graph, torch_side.tokenizer, torch_side.max_seq_length)
        assert untrained.predict(inputs) != expected
        graph.crf = None
        with pytest.raises(ValueError, match="carries no CRF"):
            untrained.predict(inputs)
