"""Tests for bertkit/weights/tf_checkpoint.py.

The fixture checkpoints were written by TensorFlow, and `tf_variables.json` was listed by TensorFlow: those
tests are the ground truth. `_write_bundle` below writes small bundles with other dtypes and several shards.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from bertkit.weights.crc32c import crc32c
from bertkit.weights.tf_checkpoint import (
    CheckpointError,
    list_variables,
    read_checkpoint,
    resolve_checkpoint_prefix,
)

CHECKPOINTS = {
    "tiny-bert-tf": "tiny-bert-tf/bert_model.ckpt",
    "tiny-bert-tf-with-optimizer": "tiny-bert-tf-with-optimizer/model.ckpt-3",
    "tiny-bert-tf-with-tf-adam": "tiny-bert-tf-with-tf-adam/model.ckpt-2",
}


@pytest.fixture(scope="module")
def tf_variables(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "tf_variables.json").read_text())


def _copy(src: Path, dst: Path) -> Path:
    """Copy a checkpoint folder without its read-only permissions."""
    dst.mkdir()
    for file in src.iterdir():
        shutil.copyfile(file, dst / file.name)
    return dst


# ---------------------------------------------------------------- a minimal bundle writer
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes, fixed32: bool = False) -> bytes:
    if fixed32:
        return _varint(number << 3 | 5) + value.to_bytes(4, "little")
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _block(entries: list[tuple[bytes, bytes]], kind: int) -> bytes:
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    body += (0).to_bytes(4, "little") + (1).to_bytes(4, "little")  # one restart point, at 0
    return body + bytes([kind]) + _mask(crc32c(body + bytes([kind]))).to_bytes(4, "little")


def _write_bundle(prefix: Path, tensors: dict[str, tuple[int, np.ndarray]], shards: int = 1, kind: int = 0):
    """Write {name: (TF dtype enum, array)} as a tensor bundle, spreading variables over shards in turn."""
    data = [bytearray() for _ in range(shards)]
    entries = [(b"", _field(1, shards) + _field(3, _field(1, 1)))]
    for i, (name, (dtype, array)) in enumerate(sorted(tensors.items())):
        raw = np.ascontiguousarray(array).tobytes()
        shape = b"".join(_field(2, _field(1, d)) for d in array.shape)
        shard = data[i % shards]
        value = _field(1, dtype) + _field(2, shape) + _field(3, i % shards) + _field(4, len(shard))
        entries.append(
            (name.encode(), value + _field(5, len(raw)) + _field(6, _mask(crc32c(raw)), fixed32=True))
        )
        shard += raw
    for k, shard in enumerate(data):
        prefix.with_name(f"{prefix.name}.data-{k:05d}-of-{shards:05d}").write_bytes(shard)
    data_block = _block(entries, kind)
    index_block = _block([(entries[-1][0], _varint(0) + _varint(len(data_block) - 5))], 0)
    meta_block = _block([], 0)
    handles = _varint(len(data_block) + len(index_block)) + _varint(len(meta_block) - 5)
    handles += _varint(len(data_block)) + _varint(len(index_block) - 5)
    footer = handles.ljust(40, b"\0") + (0xDB4775248B80FB57).to_bytes(8, "little")
    prefix.with_name(prefix.name + ".index").write_bytes(data_block + index_block + meta_block + footer)


# ---------------------------------------------------------------- fixtures written by TensorFlow
@pytest.mark.parametrize("folder", CHECKPOINTS)
def test_list_variables_matches_tensorflow(fixtures_dir: Path, tf_variables: dict, folder: str) -> None:
    expected = [
        (e["name"], tuple(e["shape"])) if isinstance(e, dict) else (e[0], tuple(e[1]))
        for e in tf_variables[CHECKPOINTS[folder]]
    ]
    listed = list_variables(fixtures_dir / folder)
    assert [(name, shape) for name, (_, shape) in listed.items()] == expected  # same names, shapes and order
    assert {dtype for name, (dtype, _) in listed.items() if name != "global_step"} == {"float32"}


def test_tensors_equal_hf_safetensors(fixtures_dir: Path, tf_variables: dict) -> None:
    hf = load_file(fixtures_dir / "tiny-bert-hf" / "model.safetensors")
    mapping = tf_variables[CHECKPOINTS["tiny-bert-tf"]]
    tensors = read_checkpoint(fixtures_dir / "tiny-bert-tf")
    assert set(tensors) == {e["name"] for e in mapping}
    for e in mapping:
        tensor = tensors[e["name"]].T if e["transpose"] else tensors[e["name"]]
        assert tensor.dtype == np.float32 and tensor.flags.writeable
        np.testing.assert_array_equal(tensor, hf[e["hf_key"]], err_msg=e["name"])


def test_global_step_and_subset(fixtures_dir: Path) -> None:
    names = ["global_step", "bert/pooler/dense/kernel/adam_m"]
    tensors = read_checkpoint(fixtures_dir / "tiny-bert-tf-with-optimizer", names)
    assert list(tensors) == names
    assert tensors["global_step"].dtype == np.int64 and tensors["global_step"].shape == ()
    assert int(tensors["global_step"]) == 3
    assert (
        int(read_checkpoint(fixtures_dir / "tiny-bert-tf-with-tf-adam", ["global_step"])["global_step"]) == 2
    )


def test_keras_bert_checkpoint(models_dir: Path) -> None:
    folder = models_dir / "keras-bert-test-checkpoint"
    listed = list_variables(folder)
    tensors = read_checkpoint(folder)
    assert set(tensors) == set(listed) and len(listed) > 100
    assert all(tensors[name].shape == shape for name, (_, shape) in listed.items())
    assert tensors["bert/embeddings/word_embeddings"].shape == (15, 4)


def test_unknown_variable_names_close_matches(fixtures_dir: Path) -> None:
    with pytest.raises(
        ValueError, match=r"'bert/pooler/dense/kernal' is not in checkpoint .*bert/pooler/dense/kernel"
    ):
        read_checkpoint(fixtures_dir / "tiny-bert-tf", ["bert/pooler/dense/kernal"])


# ---------------------------------------------------------------- finding the prefix
def test_resolve_prefix_forms(fixtures_dir: Path) -> None:
    prefix = fixtures_dir / "tiny-bert-tf" / "bert_model.ckpt"
    assert resolve_checkpoint_prefix(fixtures_dir / "tiny-bert-tf") == prefix
    assert resolve_checkpoint_prefix(str(prefix)) == prefix
    assert resolve_checkpoint_prefix(prefix.with_name("bert_model.ckpt.index")) == prefix
    assert resolve_checkpoint_prefix(prefix.with_name("bert_model.ckpt.data-00000-of-00001")) == prefix
    folder = fixtures_dir / "tiny-bert-tf-with-optimizer"
    assert resolve_checkpoint_prefix(folder) == folder / "model.ckpt-3"


def test_resolve_checkpoint_file_absolute_paths(fixtures_dir: Path, tmp_path: Path) -> None:
    folder = _copy(fixtures_dir / "tiny-bert-tf-with-optimizer", tmp_path / "moved")
    state = folder / "checkpoint"
    state.write_text('model_checkpoint_path: "/gone/elsewhere/model.ckpt-3"\n')
    assert resolve_checkpoint_prefix(folder) == folder / "model.ckpt-3"  # fell back to the basename
    state.write_text(f'model_checkpoint_path: "{folder / "model.ckpt-3"}"\n')
    assert resolve_checkpoint_prefix(folder) == folder / "model.ckpt-3"
    state.write_text('model_checkpoint_path: "model.ckpt-9"\n')
    with pytest.raises(
        FileNotFoundError, match=r"names checkpoint model.ckpt-9, but neither .*model.ckpt-9.index"
    ):
        resolve_checkpoint_prefix(folder)


def test_resolve_errors(fixtures_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"no TensorFlow checkpoint in .*`checkpoint` file .*`\*.index`"
    ):
        read_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"looked for .*nothing.ckpt.index"):
        list_variables(tmp_path / "nothing.ckpt")
    for name in ("a.ckpt.index", "b.ckpt.index"):
        shutil.copyfile(fixtures_dir / "tiny-bert-tf" / "bert_model.ckpt.index", tmp_path / name)
    with pytest.raises(
        FileNotFoundError, match=r"several checkpoints \(a.ckpt.index, b.ckpt.index\).*pass the prefix"
    ):
        resolve_checkpoint_prefix(tmp_path)


# ---------------------------------------------------------------- damaged checkpoints
@pytest.fixture()
def damaged(fixtures_dir: Path, tmp_path: Path) -> Path:
    return _copy(fixtures_dir / "tiny-bert-tf", tmp_path / "ckpt") / "bert_model.ckpt"


def _data_file(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".data-00000-of-00001")


def test_truncated_data_file(damaged: Path) -> None:
    data = _data_file(damaged)
    data.write_bytes(data.read_bytes()[:50_000])
    pattern = (
        rf"{data} is truncated: variable \S+ needs bytes \d+\.\.\d+ but the file has 50000 bytes; re-download"
    )
    with pytest.raises(CheckpointError, match=pattern):
        read_checkpoint(damaged)


def test_flipped_data_byte_fails_crc(damaged: Path) -> None:
    data = _data_file(damaged)
    raw = bytearray(data.read_bytes())
    raw[1234] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(
        CheckpointError, match=r"variable \S+ in checkpoint data file .* fails its crc32c check"
    ):
        read_checkpoint(damaged)
    assert len(read_checkpoint(damaged, verify=False)) == 46


def test_index_magic_and_block_crc(damaged: Path) -> None:
    index = damaged.with_name("bert_model.ckpt.index")
    good = index.read_bytes()
    index.write_bytes(good[:-1] + bytes([good[-1] ^ 0xFF]))
    with pytest.raises(CheckpointError, match=r"not a TensorFlow checkpoint index: .* magic number"):
        list_variables(damaged)
    index.write_bytes(good[:100] + bytes([good[100] ^ 0x01]) + good[101:])
    with pytest.raises(CheckpointError, match=r"index .* is corrupt: block at byte 0 fails its crc32c check"):
        list_variables(damaged)


def test_missing_data_shard(damaged: Path) -> None:
    _data_file(damaged).unlink()
    assert len(list_variables(damaged)) == 46  # the index alone is enough to list
    with pytest.raises(FileNotFoundError, match=r"data file .*data-00000-of-00001 is missing .*copy all the"):
        read_checkpoint(damaged)


def test_missing_index(damaged: Path) -> None:
    damaged.with_name("bert_model.ckpt.index").unlink()
    with pytest.raises(FileNotFoundError, match=r"no TensorFlow checkpoint in .*looked for"):
        read_checkpoint(damaged.parent)


# ---------------------------------------------------------------- dtypes and shards (our own writer)
def test_dtypes_and_shards(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((3, 5)).astype(np.float32)
    bf16_bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    tensors = {
        "f16": (19, values.astype(np.float16)),
        "f64": (2, values.astype(np.float64)),
        "bf16": (14, bf16_bits),
        "i32": (3, np.arange(7, dtype=np.int32) - 3),
        "i64": (9, np.array(2**40, dtype=np.int64)),
        "flag": (10, np.array([True, False, True])),
        "text": (7, np.zeros(2, dtype=np.uint8)),  # a string: listed, skipped when reading everything
    }
    prefix = tmp_path / "model.ckpt"
    _write_bundle(prefix, tensors, shards=3)
    listed = list_variables(prefix)
    assert listed["bf16"] == ("bfloat16", (3, 5)) and listed["text"] == ("string", (2,))
    got = read_checkpoint(tmp_path)
    assert "text" not in got and "skipping 1 variables we cannot read" in caplog.text
    for name in ("f16", "f64", "i32", "i64", "flag"):
        assert got[name].dtype == tensors[name][1].dtype
        np.testing.assert_array_equal(got[name], tensors[name][1])
    assert got["bf16"].dtype == np.float32
    np.testing.assert_array_equal(got["bf16"], (bf16_bits.astype(np.uint32) << 16).view(np.float32))
    np.testing.assert_allclose(got["bf16"], values, rtol=2**-7)
    with pytest.raises(ValueError, match="'text' .* has dtype string"):
        read_checkpoint(prefix, ["text"])


def test_compressed_block_is_refused(tmp_path: Path) -> None:
    _write_bundle(tmp_path / "model.ckpt", {"x": (1, np.ones(2, np.float32))}, kind=1)
    with pytest.raises(CheckpointError, match="compressed with type 1 .*snappy"):
        list_variables(tmp_path)


# ---------------------------------------------------------------- Google's ALBERT checkpoints
def _google_albert_names(groups: int, inner: int) -> list[str]:
    """The variables of Google's ALBERT pretraining checkpoint (google-research/albert modeling.py scopes)."""
    names = [f"bert/embeddings/{t}_embeddings" for t in ("word", "token_type", "position")]
    names += ["bert/embeddings/LayerNorm/gamma", "bert/embeddings/LayerNorm/beta"]
    names += [f"bert/encoder/embedding_hidden_mapping_in/{k}" for k in ("kernel", "bias")]
    for g in range(groups):
        for j in range(inner):
            layer = f"bert/encoder/transformer/group_{g}/inner_group_{j}/"
            for part in ("attention_1/self/query", "attention_1/self/key", "attention_1/self/value",
                         "attention_1/output/dense", "ffn_1/intermediate/dense", "ffn_1/intermediate/output/dense"):
                names += [layer + part + "/kernel", layer + part + "/bias"]  # fmt: skip
            names += [layer + n + k for n in ("LayerNorm/", "LayerNorm_1/") for k in ("gamma", "beta")]
    names += ["bert/pooler/dense/kernel", "bert/pooler/dense/bias"]
    names += [f"cls/predictions/transform/dense/{k}" for k in ("kernel", "bias")]
    names += [f"cls/predictions/transform/LayerNorm/{k}" for k in ("gamma", "beta")] + ["cls/predictions/output_bias"]
    return names + ["cls/seq_relationship/output_weights", "cls/seq_relationship/output_bias"]


# transformers 4.x load_tf_weights_in_albert (removed in 5.x): its renames, in its order, then its pointer walk
_TRANSFORMERS_ALBERT_RENAMES = [
    ("module/", ""), ("ffn_1", "ffn"), ("bert/", "albert/"), ("attention_1", "attention"), ("transform/", ""),
    ("LayerNorm_1", "full_layer_layer_norm"), ("LayerNorm", "attention/LayerNorm"), ("transformer/", ""),
    ("intermediate/dense/", ""), ("ffn/intermediate/output/dense/", "ffn_output/"), ("/output/", "/"),
    ("/self/", "/"), ("pooler/dense", "pooler"), ("cls/predictions", "predictions"),
    ("predictions/attention", "predictions"), ("embeddings/attention", "embeddings"),
    ("inner_group_", "albert_layers/"), ("group_", "albert_layer_groups/"),
]  # fmt: skip


def _transformers_albert_key(name: str) -> tuple[str, bool]:
    """A Google ALBERT variable -> (transformers' AlbertForPreTraining key, transposed) as transformers mapped it."""
    for old, new in _TRANSFORMERS_ALBERT_RENAMES:
        name = name.replace(old, new)
    if "seq_relationship" in name:
        name = name.replace("seq_relationship/output_", "sop_classifier/classifier/").replace("weights", "weight")
        # transformers' pointer walk then found no `cls` module and skipped the SOP weights; Google's
        # run_pretraining.py writes them as BERT's NSP layer ([2, H] output_weights, used transposed_b)
        name = name.removeprefix("cls/")
    *path, last = name.split("/")
    if last.endswith("_embeddings"):
        return ".".join([*path, last, "weight"]), False
    leaf = {"kernel": "weight", "gamma": "weight", "beta": "bias", "output_bias": "bias", "output_weights": "weight"}
    return ".".join([*path, leaf.get(last, last)]), last == "kernel"


def test_google_albert_checkpoint_loads_and_matches_transformers(tmp_path: Path) -> None:
    """A Google-named ALBERT checkpoint (2 groups of 2 shared layers, embedding 16 != hidden 24), made from a
    random transformers AlbertForPreTraining through transformers' own TF -> PT name mapping, loads in bertkit
    from albert_config.json with every variable used, its names equal bertkit's TF table, and gives transformers'
    outputs; bertkit's HF folder from it loads back in transformers unchanged."""
    import torch

    transformers = pytest.importorskip("transformers")
    from bertkit.model.families.albert import AlbertForPreTraining
    from bertkit.weights.load import load_pretrained

    google = {"attention_probs_dropout_prob": 0.0, "hidden_act": "gelu_new", "hidden_dropout_prob": 0.0,
              "embedding_size": 16, "hidden_size": 24, "initializer_range": 0.02, "intermediate_size": 37,
              "max_position_embeddings": 40, "num_attention_heads": 3, "num_hidden_layers": 4,
              "num_hidden_groups": 2, "net_structure_type": 0, "gap_size": 0, "num_memory_blocks": 0,
              "inner_group_num": 2, "down_scale_factor": 1, "type_vocab_size": 2, "vocab_size": 99}  # fmt: skip
    torch.manual_seed(0)
    theirs = transformers.AlbertForPreTraining(transformers.AlbertConfig(**google)).eval()
    state = {k: v + 0.05 * torch.randn_like(v) for k, v in theirs.state_dict().items()}  # no zero bias, no unit LN
    theirs.load_state_dict(state)
    state = theirs.state_dict()  # the tied decoder follows the word embeddings

    names = _google_albert_names(groups=2, inner=2)
    tensors = {"global_step": (9, np.array(1000, dtype=np.int64))}
    for name in names:
        key, transposed = _transformers_albert_key(name)
        value = state[key].numpy()
        tensors[name] = (1, np.ascontiguousarray(value.T if transposed else value))
    used = {_transformers_albert_key(n)[0] for n in names}
    assert used == {k for k in state if not k.startswith("predictions.decoder.")}  # every weight, once

    folder = tmp_path / "albert_base"
    folder.mkdir()
    (folder / "albert_config.json").write_text(json.dumps(google))
    _write_bundle(folder / "model.ckpt-best", tensors)
    ours, report = load_pretrained(folder, AlbertForPreTraining)
    assert report.initialized == () and report.unused == (), report
    assert {n for r in ours.weight_rows() for n in r.tf} == set(names)  # bertkit's table is Google's names

    ids = torch.randint(3, 99, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    types = (torch.arange(9) >= 4).long().expand(2, 9) * mask
    with torch.no_grad():
        want = theirs(input_ids=ids, attention_mask=mask, token_type_ids=types)
        got = ours(ids, types, mask)
        real = mask.bool()
        torch.testing.assert_close(got.mlm_logits[real], want.prediction_logits[real], atol=1e-5, rtol=0)
        torch.testing.assert_close(got.nsp_logits, want.sop_logits, atol=1e-5, rtol=0)
    ours.save_pretrained(tmp_path / "hf")
    again = transformers.AlbertForPreTraining.from_pretrained(tmp_path / "hf").eval()
    for key, value in again.state_dict().items():
        torch.testing.assert_close(value, state[key], atol=0, rtol=0)
