"""Every head: `bertkit convert` and `bertkit vocab extend` keep a fine-tuned folder's predictions.

Issue 10: both paths saved the folder through the name table only, so a crf / lstm_crf tagger lost its CRF and
LSTM (tagging_head.safetensors was neither carried nor copied) and nothing warned. Here each head of
tests/every_head.py is converted and vocab-extended with the CLI, and `bertkit predict` on the result must give
exactly the predictions of the source folder on real dev inputs (the added words are not in them, so no input
changes its tokens). Slow: about 40 s for the 8 heads on a busy 2-core machine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

WORDS = ["nanobody", "cryoablation", "bertkit"]  # not in any of the inputs


def _load_helpers():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(
        "bertkit_tests_every_head", Path(__file__).parents[1] / "every_head.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


heads = _load_helpers()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and a shared 2-core machine makes two threads spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, models_dir: Path) -> Path:
    return heads.make_base(tmp_path_factory.mktemp("base"), models_dir)


@pytest.mark.slow
@pytest.mark.parametrize("head", list(heads.HEADS))
def test_convert_and_vocab_extend_keep_the_predictions(head, tmp_path, base_dir, data_dir):
    from bertkit.cli.main import main
    from bertkit.tokenization import Tokenizer

    family, options, kind = heads.HEADS[head]
    folder = heads.model_folder(tmp_path, base_dir, family, options)
    inputs = heads.real_inputs(kind, data_dir)
    text = " ".join(str(v) for r in inputs for v in r.values())
    assert not any(w in text for w in WORDS)
    path = heads.write_inputs(tmp_path / "inputs.jsonl", inputs)
    expected = heads.predict(folder, path, tmp_path / "source.jsonl")
    heads.assert_varied(expected)

    assert main(["convert", str(folder), str(tmp_path / "converted")]) == 0
    assert heads.predict(tmp_path / "converted", path, tmp_path / "converted.jsonl") == expected

    extended = tmp_path / "extended"
    assert main(["vocab", "extend", "--model", str(folder), "--output-dir", str(extended)]
                + [f"--word={w}" for w in WORDS]) == 0  # fmt: skip
    tokenizer = Tokenizer.from_pretrained(extended)
    assert all(len(tokenizer.encode_batch([w])[0].ids) == 3 for w in WORDS)  # [CLS] word [SEP]: one token now
    assert heads.predict(extended, path, tmp_path / "extended.jsonl") == expected
