"""`bertkit serve --backend onnx` on an exported folder answers like the PyTorch backend (within 1e-4)."""

from __future__ import annotations

import numpy as np
import pytest

from bertkit.serving.config import ServeConfig

pytest.importorskip("onnxruntime")

TEXTS = ["a good film", "the worst thing ever made , really", "ok"]


def test_onnx_backend_matches_torch_backend(tmp_path, classifier_dir, serve, http):
    from bertkit.export.onnx import export_onnx

    export_onnx(classifier_dir, tmp_path / "onnx", quantize="int8")
    answers = {}
    for name, config in (
        ("torch", ServeConfig(model=str(classifier_dir))),
        ("onnx", ServeConfig(model=str(tmp_path / "onnx"), backend="onnx")),
        ("int8", ServeConfig(model=str(tmp_path / "onnx"), backend="onnx", onnx_file="model.int8.onnx")),
    ):
        with serve(config) as url, http(url) as c:
            info = c.get("/info").json()
            assert info["backend"] == config.backend and info["task"] == "classification"
            answers[name] = (
                c.post("/predict", json={"texts": TEXTS, "text_pairs": ["x", "y", "z"]}).json()[
                    "predictions"
                ],
                np.array(c.post("/encode", json={"texts": TEXTS}).json()["embeddings"]),
            )
    (torch_pred, torch_vec), (onnx_pred, onnx_vec), (int8_pred, int8_vec) = (
        answers["torch"],
        answers["onnx"],
        answers["int8"],
    )
    np.testing.assert_allclose(onnx_vec, torch_vec, atol=1e-4)
    for t, o in zip(torch_pred, onnx_pred, strict=True):
        assert t["label"] == o["label"]
        for label, p in t["probabilities"].items():
            assert o["probabilities"][label] == pytest.approx(p, abs=1e-4)
    assert np.abs(int8_vec - torch_vec).max() < 0.2  # int8 is approximate, yet the same model
    assert all(set(p["probabilities"]) == {"neg", "pos"} for p in int8_pred)


def test_onnx_backend_needs_the_graph(classifier_dir):
    from bertkit.serving.backend import Backend

    with pytest.raises(FileNotFoundError, match="bertkit export"):
        Backend(ServeConfig(model=str(classifier_dir), backend="onnx"))


def test_exported_folder_without_backend_flag_says_how_to_serve_it(tmp_path, classifier_dir):
    from bertkit.export.onnx import export_onnx
    from bertkit.serving.backend import Backend

    export_onnx(classifier_dir, tmp_path / "onnx")
    with pytest.raises(FileNotFoundError, match="--backend onnx"):
        Backend(ServeConfig(model=str(tmp_path / "onnx")))


def test_torch_int8_backend(classifier_dir, serve, http):
    with serve(ServeConfig(model=str(classifier_dir))) as url, http(url) as c:
        fp32 = np.array(c.post("/encode", json={"texts": TEXTS}).json()["embeddings"])
    with serve(ServeConfig(model=str(classifier_dir), quantize="int8")) as url, http(url) as c:
        int8 = np.array(c.post("/encode", json={"texts": TEXTS}).json()["embeddings"])
        predictions = c.post("/predict", json={"texts": TEXTS}).json()["predictions"]
    assert 0 < np.abs(int8 - fp32).max() < 0.2  # quantized, so not identical, but the same model
    assert [set(p["probabilities"]) for p in predictions] == [{"neg", "pos"}] * 3


def test_the_batch_budget_counts_padding_only_where_the_model_runs_it(tmp_path, classifier_dir):
    """The eager torch encoder drops padding before its first layer, so the batcher budgets real tokens; the
    ONNX graph and the compiled encoder run (B, T), so there a batch costs texts x longest text."""
    from types import SimpleNamespace

    from bertkit.export.onnx import export_onnx
    from bertkit.serving.app import Server
    from bertkit.serving.backend import TorchBackend

    export_onnx(classifier_dir, tmp_path / "onnx")
    for config, padded in (
        (ServeConfig(model=str(classifier_dir), max_batch_tokens=64), False),
        (ServeConfig(model=str(tmp_path / "onnx"), backend="onnx", max_batch_tokens=64), True),
    ):
        server = Server(config)
        assert server.backend.padded_batches is padded
        assert all(b.padded is padded for b in server.batchers.values()) and server.batchers
        server.executor.shutdown()
    compiled = SimpleNamespace(config=SimpleNamespace(compile=True))
    assert TorchBackend.padded_batches.fget(compiled) is True  # compiling needs a C++ compiler and a minute
