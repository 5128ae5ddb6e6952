"""bertkit.folder: bertkit.json is the truth (with a format version); a copy that disagrees is an error naming it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bertkit import folder
from bertkit.engine import Engine, load_task
from bertkit.tasks import build_task
from bertkit.tokenization import Tokenizer
from bertkit.training.checkpoint import save_model_folder
from bertkit.training.config import TrainConfig

SENTENCES = [{"text": "a good film"}, {"text": "the plot was dull and the actor was awful"}]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    tiny = fixtures_dir / "tiny-bert-hf"
    task = build_task("classification", {"labels": ["neg", "pos", "mixed"]})
    model, _ = task.build_model(str(tiny))
    out = tmp_path_factory.mktemp("folder") / "model"
    save_model_folder(out, model, Tokenizer.from_pretrained(tiny), task, TrainConfig(max_seq_length=48))
    return out


@pytest.fixture
def copy(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "copy"))


def test_bertkit_json_is_versioned_and_read_back(saved):
    data = json.loads((saved / folder.INFO_FILE).read_text())
    assert data["format_version"] == folder.FORMAT_VERSION
    info = folder.read_info(saved)
    assert (info.task, info.labels, info.max_seq_length) == ("classification", ("neg", "pos", "mixed"), 48)
    assert (saved / folder.LABELS_FILE).read_text().split() == ["neg", "pos", "mixed"]
    task, _ = load_task(saved)
    assert task == build_task("classification", {"labels": ["neg", "pos", "mixed"]})


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("name", "tamper"),
    [
        ("labels.txt", lambda p: (p / "labels.txt").write_text("pos\nneg\nmixed\n")),
        (
            "config.json",
            lambda p: _edit_json(p / "config.json", id2label={"0": "pos", "1": "neg", "2": "mixed"}),
        ),
        ("train_config.json", lambda p: _edit_json(p / "train_config.json", max_seq_length=64)),
    ],
)
def test_a_copy_that_disagrees_is_an_error_naming_the_file(copy, name, tamper):
    tamper(copy)
    with pytest.raises(ValueError, match=rf"{copy / name}.*bertkit.json \(the truth"):
        Engine.from_folder(copy, device="cpu")


def test_a_newer_format_is_refused(copy):
    _edit_json(copy / folder.INFO_FILE, format_version=folder.FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match="format_version 2; this bertkit reads up to 1: upgrade bertkit"):
        folder.read_info(copy)


def test_a_folder_written_before_the_version_still_loads(saved, copy):
    data = json.loads((copy / folder.INFO_FILE).read_text())
    del data["format_version"]
    (copy / folder.INFO_FILE).write_text(json.dumps(data))
    (copy / folder.LABELS_FILE).unlink()  # optional copy: nothing to compare
    assert folder.read_info(copy).format_version == 1
    before = Engine.from_folder(saved, device="cpu")
    after = Engine.from_folder(copy, device="cpu")
    assert after.predict_examples(after.examples(SENTENCES)) == before.predict_examples(
        before.examples(SENTENCES)
    )


def test_a_broken_bertkit_json_names_the_file(copy):
    (copy / folder.INFO_FILE).write_text('{"options": {}}')
    with pytest.raises(ValueError, match=r"bertkit.json: not a valid bertkit.json \('task'\)"):
        folder.read_info(copy)
    (copy / folder.INFO_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="bertkit.json not found"):
        Engine.from_folder(copy)


@pytest.mark.parametrize("name", ["config.json", "train_config.json"])
def test_a_copy_that_is_not_a_json_object_names_the_file(copy, name):
    """A copy that cannot be read is an error, not a check skipped: its facts could disagree unseen."""
    (copy / name).write_text('["max_seq_length", 64]')
    with pytest.raises(ValueError, match=rf"{copy / name}: holds a JSON list, not an object"):
        folder.read_info(copy)
