"""Distillation beyond SST-2: a CRF tagger on CoNLL-2003, QA on SQuAD, and a documented synthetic multi-label set.
Each part trains its teacher (unless --teacher names one), distils a student, and prints teacher vs student.

    python bench/bench_distill_tasks.py conll        # all-MiniLM-L6-v2 + CRF teacher -> its 3-layer student
    python bench/bench_distill_tasks.py squad        # all-MiniLM-L6-v2 QA teacher -> its 3-layer student
    python bench/bench_distill_tasks.py multilabel   # tiny random teacher -> smaller random student, vs alone

conll: the first --examples (2,000) sentences of CoNLL-2003 train.txt, dev = the first --dev (500) sentences of
    valid.txt; teacher: head crf, --epochs (2), batch 16, lr 1e-4, max length 128, bf16, seed 1. Student: the teacher's
    layers 0, 2, 4 (its CRF transitions copied, then learned), the same labelled sentences plus the next --unlabeled
    (2,000) training sentences without their tags (the teacher tags them), same hyperparameters, temperature 2.
squad: the split of tests/tasks/test_qa.py: SQuAD v1.1 dev minus its 10 articles with the fewest questions (1,063
    questions held out as dev); training = --examples (5,000) questions drawn with seed 0 from the other 38 articles.
    Teacher: 1 epoch, batch 16, lr 3e-4, max length 256, max query 48, bf16, seed 0; student: layers 0, 2, 4,
    --student-epochs (2) on the same questions, lr 3e-4, temperature 2.
multilabel: the synthetic set of multilabel_rows() below (4 topics, each row 1-3 topic keywords among 3-10 filler
    words; labels = the topics). Teacher: a random 4-layer BERT (hidden 32, vocab of the set's 35 words) trained on
    600 labelled rows; student: a random 2-layer one with only 60 labelled rows, alone (hard loss) vs
    distilled with 600 unlabelled rows the teacher labels. Dev: 200 rows. 20 epochs, batch 16, lr 2e-3, max length 32, seed 1, T 2.

Speed: teacher and student alternate in one process on the dev set (bertkit.training.distill_report); shared machine.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from bertkit.data.readers.squad import read_squad
from bertkit.training.config import TrainConfig
from bertkit.training.distill import DistillConfig, distill
from bertkit.training.experiment import DataSpec
from bertkit.training.experiment import run as train_teacher

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared/data"
# tests/tasks/test_qa.py: the 10 articles of SQuAD v1.1 dev with the fewest questions
HELD_OUT = ("Jacksonville,_Florida", "Construction", "Intergovernmental_Panel_on_Climate_Change", "1973_oil_crisis",
            "Packet_switching", "Black_Death", "Sky_(United_Kingdom)", "Harvard_University", "Normans",
            "Private_school")  # fmt: skip
TOPICS = {
    "sports": ["goal", "match", "team", "coach"],
    "music": ["song", "band", "guitar", "album"],
    "food": ["bread", "soup", "cheese", "salad"],
    "travel": ["train", "hotel", "beach", "flight"],
}
FILLER = ["the", "a", "we", "saw", "and", "then", "it", "was", "with", "our", "new", "old", "big", "day"]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["conll", "squad", "multilabel"])
    p.add_argument("--teacher", help="an already trained teacher folder (default: train it here)")
    p.add_argument("--examples", type=int, help="labelled training examples (conll 2000, squad 5000)")
    p.add_argument("--dev", type=int, help="dev examples (conll: first 500 sentences; squad: all 1,063 questions)")
    p.add_argument("--unlabeled", type=int, default=2000, help="conll: further training sentences, tags dropped")
    p.add_argument("--epochs", type=float, default=None, help="teacher epochs (conll 2, squad 1)")
    p.add_argument("--student-epochs", type=float, default=None, help="student epochs (conll 2, squad 2)")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--baseline", action="store_true", help="conll, squad: also the 3-layer student alone")
    p.add_argument("--out", default=None, help="folder for the runs (default: a temporary one)")
    return p.parse_args()


def row(name: str, metrics: dict, main: str) -> dict:
    report = metrics["distillation"]
    out = {"run": name, main: metrics[main], "teacher": report["teacher"][main], "retained": report["retained"],
           "student_params": report["parameters"]["student"], "teacher_params": report["parameters"]["teacher"],
           "train_seconds": metrics.get("train_seconds")}  # fmt: skip
    if "speed" in report:
        speed = report["speed"]
        out.update(speedup=speed["speedup"], latency_speedup=speed.get("latency_speedup"),
                   teacher_eps=speed["teacher"]["examples_per_second"],
                   student_eps=speed["student"]["examples_per_second"])  # fmt: skip
    print(json.dumps(out), flush=True)
    return out


def table(rows: list[dict], main: str) -> None:
    print(f"\n| run | student {main} | teacher {main} | retained | speed-up (dev, batch) | batch-1 speed-up | "
          "student / teacher params |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        speed = f"{r['speedup']:.2f}x | {r['latency_speedup']:.2f}x" if "speedup" in r else "— | —"
        print(f"| {r['run']} | {r[main]:.4f} | {r['teacher']:.4f} | {r['retained']:.1%} | {speed} | "
              f"{r['student_params'] / 1e6:.2f}M / {r['teacher_params'] / 1e6:.2f}M |")  # fmt: skip
    print("(shared machine: teacher and student timed in pairs per batch in one process, order alternating)")


# ---- CoNLL-2003 ----------------------------------------------------------------------------------------------
def conll_sentences(path: Path) -> list[list[tuple[str, str]]]:
    """CoNLL-2003 (word POS chunk tag per line, blank between sentences, -DOCSTART- skipped) -> sentences."""
    out, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if current:
                out.append(current)
            current = []
        else:
            current.append((parts[0], parts[-1]))
    return out


def conll(args: argparse.Namespace, out: Path) -> None:
    n, epochs = args.examples or 2000, args.epochs or 2.0
    config = TrainConfig(epochs=epochs, batch_size=16, lr=1e-4, max_seq_length=128, precision="bf16",
                         warmup_ratio=0.1, seed=1, progress=False)  # fmt: skip
    spec = DataSpec(task="conll2003", data_dir=str(DATA / "conll2003"), max_train_examples=n,
                    max_eval_examples=args.dev or 500)  # fmt: skip
    teacher = args.teacher or str(out / "teacher")
    if not args.teacher:
        train_teacher(dataclass_replace(spec, task_options={"head": "crf"}), "minilm", config, teacher)
    sentences = conll_sentences(DATA / "conll2003/train.txt")[n : n + args.unlabeled]
    extra = out / "unlabeled.jsonl"
    extra.write_text("".join(json.dumps({"tokens": [w for w, _ in s]}) + "\n" for s in sentences), encoding="utf-8")
    student_config = config.replace(epochs=args.student_epochs or 2.0)
    rows = [_distill("distill-L3", spec, teacher, 3, student_config, out, args, unlabeled=extra, main="f1")]
    if args.baseline:
        rows.append(_distill("alone-L3", spec, teacher, 3, student_config, out, args, alone=True, main="f1"))
    table(rows, "f1")


# ---- SQuAD ---------------------------------------------------------------------------------------------------
def squad_files(out: Path, n: int) -> tuple[Path, Path]:
    """train.json (n questions drawn with seed 0 outside HELD_OUT) and dev.json (the HELD_OUT articles' 1,063)."""
    examples = list(read_squad(DATA / "squad/dev-v1.1.json"))
    held = [e for e in examples if e.title in HELD_OUT]
    pool = [e for e in examples if e.title not in HELD_OUT]
    random.Random(0).shuffle(pool)
    paths = []
    for name, chosen in (("train.json", pool[:n]), ("dev.json", held)):
        articles = [{"title": e.title, "paragraphs": [{"context": e.context, "qas": [
            {"id": e.qid, "question": e.question,
             "answers": [{"text": a.text, "answer_start": a.start} for a in e.answers]}]}]} for e in chosen]  # fmt: skip
        path = out / name
        path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def squad(args: argparse.Namespace, out: Path) -> None:
    train_file, dev_file = squad_files(out, args.examples or 5000)
    config = TrainConfig(epochs=args.epochs or 1.0, batch_size=16, eval_batch_size=64, lr=3e-4, warmup_ratio=0.1,
                         max_seq_length=256, precision="bf16", seed=0, progress=False)  # fmt: skip
    spec = DataSpec(task="squad", train_file=str(train_file), dev_file=str(dev_file),
                    task_options={"max_query_length": 48}, max_eval_examples=args.dev)  # fmt: skip
    teacher = args.teacher or str(out / "teacher")
    if not args.teacher:
        train_teacher(spec, "minilm", config, teacher)
    student_config = config.replace(epochs=args.student_epochs or 2.0)
    rows = [_distill("distill-L3", spec, teacher, 3, student_config, out, args, main="f1")]
    if args.baseline:
        rows.append(_distill("alone-L3", spec, teacher, 3, student_config, out, args, alone=True, main="f1"))
    table(rows, "f1")


# ---- synthetic multi-label -----------------------------------------------------------------------------------
def multilabel_rows(n: int, seed: int) -> list[dict]:
    """3-10 filler words plus one keyword of each of 1-3 topics drawn at random; the labels are those topics.
    A model must find which of 16 keywords occur among 14 fillers."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        topics = rng.sample(sorted(TOPICS), rng.randint(1, 3))
        words = rng.choices(FILLER, k=rng.randint(3, 10))
        for t in topics:
            words.insert(rng.randint(0, len(words)), rng.choice(TOPICS[t]))
        rows.append({"text": " ".join(words), "label": sorted(topics)})
    return rows


def multilabel_setup(folder: Path) -> dict[str, Path]:
    """The synthetic set's files and models in folder: base/ (a random 4-layer tiny BERT with the set's vocab),
    student/config.json (its 2-layer config), train.jsonl (600), few.jsonl (60), dev.jsonl (200), unlabeled.jsonl (600)."""
    import torch

    from bertkit.model.config import BertConfig
    from bertkit.model.heads import BertForPreTraining
    from bertkit.tokenization import Tokenizer

    base = folder / "base"
    base.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *FILLER, *(w for ws in TOPICS.values() for w in ws)]
    (base / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    Tokenizer.from_vocab(base / "vocab.txt", do_lower_case=True).save_pretrained(base)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32)  # fmt: skip
    torch.manual_seed(0)
    BertForPreTraining(config).save_pretrained(base)
    (folder / "student").mkdir(exist_ok=True)
    config.replace(num_hidden_layers=2).save_json(folder / "student/config.json")
    files = {"base": base, "student": folder / "student/config.json"}
    for name, n, seed, labelled in (("train", 600, 0, True), ("few", 60, 1, True), ("dev", 200, 2, True),
                                    ("unlabeled", 600, 3, False)):  # fmt: skip
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r if labelled else {"text": r["text"]}) + "\n"
                                for r in multilabel_rows(n, seed)), encoding="utf-8")  # fmt: skip
        files[name] = path
    return files


def multilabel(args: argparse.Namespace, out: Path) -> None:
    files = multilabel_setup(out)
    config = TrainConfig(epochs=20, batch_size=16, lr=2e-3, max_seq_length=32, seed=1, progress=False,
                         eval_steps=100_000)  # one evaluation, at the end
    options = {"problem_type": "multi_label_classification"}
    teacher = args.teacher or str(out / "teacher")
    if not args.teacher:
        spec = DataSpec(task="classification", train_file=str(files["train"]), dev_file=str(files["dev"]),
                        task_options=options)  # fmt: skip
        train_teacher(spec, str(files["base"]), config, teacher)
    spec = DataSpec(task="classification", train_file=str(files["few"]), dev_file=str(files["dev"]),
                    task_options=options)  # fmt: skip
    rows = []
    for name, alone in (("distilled", False), ("alone", True)):
        dcfg = DistillConfig(teachers=(teacher,), student=str(files["student"]), temperature=args.temperature,
                             soft_weight=0.0 if alone else 1.0,
                             unlabeled=None if alone else str(files["unlabeled"]))  # fmt: skip
        rows.append(row(name, distill(spec, dcfg, config, out / name), "f1_micro"))
    table(rows, "f1_micro")


# ---- shared --------------------------------------------------------------------------------------------------
def dataclass_replace(spec: DataSpec, **changes: object) -> DataSpec:
    import dataclasses

    return dataclasses.replace(spec, **changes)


def _distill(name: str, spec: DataSpec, teacher: str, layers: int, config: TrainConfig, out: Path,
             args: argparse.Namespace, *, main: str, unlabeled: Path | None = None, alone: bool = False) -> dict:  # fmt: skip
    dcfg = DistillConfig(teachers=(teacher,), student_layers=layers, temperature=args.temperature,
                         soft_weight=0.0 if alone else 1.0, unlabeled=str(unlabeled) if unlabeled else None,
                         measure_speed=not alone)  # fmt: skip
    return row(name, distill(spec, dcfg, config, out / name), main)


def main() -> None:
    args = parse()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        {"conll": conll, "squad": squad, "multilabel": multilabel}[args.part](args, out)


if __name__ == "__main__":
    main()
