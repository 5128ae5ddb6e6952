"""`bertkit encode --model M --input FILE --output OUT.npy`: sentence vectors (or token features) for a text file."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from bertkit.training.options import column


def _layers(values: list[str]) -> tuple[int, ...] | None:
    """['-1,-2', '-3'] -> (-1, -2, -3)."""
    if not values:
        return None
    try:
        return tuple(int(x) for v in values for x in v.split(",") if x.strip())
    except ValueError:
        raise ValueError(
            f"--layers takes integers like -1,-2,-3,-4 or -1 -2 -3 -4, not {' '.join(values)!r}"
        ) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="texts to vectors (.npy + ids file, or JSONL); token features of chosen layers",
                       description="Encode FILE (.txt one text per line, .tsv/.csv, or .jsonl with 'text' and optional "
                       "'text_pair') with MODEL. Rows of OUT.npy follow the input order; OUT.ids.txt beside it holds "
                       "each row's id (the JSON 'id' field, else the line number).")  # fmt: skip
    p.add_argument(
        "--model", default="minilm", help="model folder, Google checkpoint, alias or hub id (default minilm)"
    )
    p.add_argument("--input", required=True, help="input file")
    p.add_argument("--output", required=True, help="OUT.npy (vectors) or OUT.jsonl")
    p.add_argument("--pooling", help="cls, pooler, mean, max, mean_max, mean_sqrt_len, first_last_avg, last_n_concat "
                   "(default: the model folder's saved choice, else mean)")  # fmt: skip
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="L2-normalise the vectors (default: the model folder's saved choice)")  # fmt: skip
    # Google's spelling `--layers -1,-2,-3,-4` is not a negative number to argparse; accept it as a value.
    p._negative_number_matcher = re.compile(r"^-\d+(,\s*-?\d+)*,?$|^-\d*\.\d+$")
    p.add_argument("--layers", nargs="+", help="hidden layers to pool (concatenated), e.g. -1,-2,-3,-4; "
                   "with --tokens, the layers whose token vectors are written (default -1,-2,-3,-4)")  # fmt: skip
    p.add_argument("--tokens", action="store_true", help="write token-level features (Google's extract_features.py "
                   "JSONL) instead of sentence vectors")  # fmt: skip
    p.add_argument("--whitening", help="apply a whitening file fitted before (.npz)")
    p.add_argument(
        "--fit-whitening", metavar="FILE", help="fit whitening on this input, save it to FILE, apply it"
    )
    p.add_argument(
        "--whitening-dim", type=int, help="keep this many whitened dimensions (with --fit-whitening)"
    )
    p.add_argument("--text", type=column, help="text column (index or header name) of a TSV, or JSON field")
    p.add_argument("--text-pair", type=column, help="second text column / JSON field, for pairs")
    p.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                   help="the TSV's first line names its columns")  # fmt: skip
    p.add_argument("--max-length", type=int, help="truncate texts to this many tokens (default: the model's)")
    p.add_argument("--batch-size", type=int, help="at most this many texts per batch (default: no cap)")
    p.add_argument(
        "--max-batch-tokens", type=int, default=8192, help="padded tokens per batch (default 8192)"
    )
    p.add_argument("--device", help="cpu, cuda, ... (default: CUDA when available)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="fp32 (default); bf16: bf16 weights where the CPU has native bf16, else "
                   "autocast; fp16: CUDA")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder first (tens of seconds, needs "
                   "a C++ compiler): about 2x faster on CPU, worth it from a few thousand texts")  # fmt: skip
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar"
    )


@dataclass(frozen=True)
class EncodeConfig:
    model: str
    input: str
    output: str
    pooling: str | None = None
    normalize: bool | None = None
    layers: tuple[int, ...] | None = None
    tokens: bool = False
    whitening: str | None = None
    fit_whitening: str | None = None
    whitening_dim: int | None = None
    text: int | str | None = None
    text_pair: int | str | None = None
    header: bool | None = None
    max_length: int | None = None
    batch_size: int | None = None
    max_batch_tokens: int | None = 8192
    device: str | None = None
    precision: str = "fp32"
    compile: bool = False
    progress: bool = True


def run(args: argparse.Namespace) -> int:
    from bertkit import runtime as rt_mod
    from bertkit.inference.encode_file import ids_path
    from bertkit.inference.encode_inputs import open_inputs
    from bertkit.inference.features import FeatureExtractor
    from bertkit.inference.ranks import encode_file_ranked

    options = {k: v for k, v in vars(args).items() if k not in ("command", "verbose")}
    options["layers"] = _layers(options["layers"] or [])
    c = EncodeConfig(**options)
    if c.whitening and c.fit_whitening:
        raise ValueError("give --whitening (apply a saved one) or --fit-whitening (fit one now), not both")
    if c.tokens and (c.whitening or c.fit_whitening or c.pooling):
        raise ValueError("--tokens writes raw token vectors: --pooling and whitening do not apply")
    runtime = rt_mod.start(c.device)  # under torchrun: every rank encodes its share of the rows
    try:
        if c.fit_whitening and runtime.distributed:
            raise ValueError("--fit-whitening fits on the whole input in one process: fit it without torchrun, "
                             "then encode under torchrun with --whitening FILE")  # fmt: skip
        inputs = open_inputs(c.input, c.text, c.text_pair, c.header)  # checked now, streamed when encoded
        extractor = FeatureExtractor.from_pretrained(
            c.model, pooling=c.pooling, layers=None if c.tokens else c.layers, normalize=c.normalize,
            whitening=c.whitening, max_length=c.max_length,
            device=str(runtime.device) if runtime.distributed else c.device,
            max_batch_tokens=c.max_batch_tokens, compile=c.compile, precision=c.precision,
        )  # fmt: skip
        if c.fit_whitening:
            if inputs.has_pairs:
                raise ValueError("--fit-whitening fits on single texts; fit on a file without text_pair")
            extractor.fit_whitening(
                (row[0] for row in inputs.rows()), c.whitening_dim, batch_size=c.batch_size,
                show_progress=c.progress, total=inputs.count,
            )
            extractor.whitening.save(c.fit_whitening)  # type: ignore[union-attr]
            print(f"whitening fitted on {inputs.count} texts -> {c.fit_whitening}")
        token_layers = (c.layers or (-1, -2, -3, -4)) if c.tokens else None
        out = encode_file_ranked(extractor, inputs, c.output, runtime, batch_size=c.batch_size,
                                 token_layers=token_layers, show_progress=c.progress and runtime.is_main)  # fmt: skip
    finally:
        rt_mod.stop(runtime)
    if runtime.is_main:
        what = "token features" if c.tokens else f"{extractor.dim}-dimensional {extractor.pooling.value} vectors"
        ranks = f" ({runtime.world_size} ranks)" if runtime.distributed else ""
        print(f"wrote {what} for {inputs.count} rows to {out}{ranks}")
        if out.suffix == ".npy":
            print(f"row ids: {ids_path(out)}")
    return 0
