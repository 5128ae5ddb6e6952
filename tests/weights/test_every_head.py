"""Every head: `bertkit convert` and `bertkit vocab extend` keep a fine-tuned folder's predictions.

Issue 10: both paths saved the folder through the name table only, so a crf / lstm_crf tagger lost its CRF and
LSTM (tagging_head.safetensors was neither carried nor copied) and nothing warned. Here each head of
tests/every_head.py is converted and vocab-extended with the CLI, and `bertkit predict` on the result must give
exactly the predictions of the source folder on real dev inputs (the added words are not in them, so no input
changes its tokens). Slow: about 40 s for the 8 heads on a busy 2-core machine.
"""

from __future__ import annotations

import pytest

WORDS = ["nanobody", "cryoablation", "bertkit"]  # not in any of the inputs


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_convert_and_vocab_extend_keep_the_predictions(head, every_head, every_head_base, tmp_path, data_dir):
    from bertkit.cli.main import main
    from bertkit.tokenization import Tokenizer

    family, options, kind = every_head.HEADS[head]
    folder = every_head.model_folder(tmp_path, every_head_base, family, options)
    inputs = every_head.real_inputs(kind, data_dir)
    text = " ".join(str(v) for r in inputs for v in r.values())
    assert not any(w in text for w in WORDS)
    path = every_head.write_inputs(tmp_path / "inputs.jsonl", inputs)
    expected = every_head.predict(folder, path, tmp_path / "source.jsonl")
    every_head.assert_varied(expected)

    assert main(["convert", str(folder), str(tmp_path / "converted")]) == 0
    assert every_head.predict(tmp_path / "converted", path, tmp_path / "converted.jsonl") == expected

    extended = tmp_path / "extended"
    assert main(["vocab", "extend", "--model", str(folder), "--output-dir", str(extended)]
                + [f"--word={w}" for w in WORDS]) == 0  # fmt: skip
    tokenizer = Tokenizer.from_pretrained(extended)
    assert all(len(tokenizer.encode_batch([w])[0].ids) == 3 for w in WORDS)  # [CLS] word [SEP]: one token now
    assert every_head.predict(extended, path, tmp_path / "extended.jsonl") == expected
