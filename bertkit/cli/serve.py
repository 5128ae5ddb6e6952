"""`bertkit serve`: one HTTP server for a fine-tuned model or an encoder; every flag has a BERTKIT_* twin."""

from __future__ import annotations

import argparse
import dataclasses

from bertkit.serving.config import ServeConfig, field_type


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP (/encode, /predict, /tokenize, /health, /info, /metrics; OpenAI /v1/embeddings, "
        "TEI /embed, /rerank, ...; HF pipeline shapes at POST /; a playground page at /)",
        description="Serve a model folder over HTTP with dynamic batching. Each option can also be set by the "
        "environment variable shown in brackets; a flag wins over its variable. Needs the 'serve' extra.",
    )
    for f in dataclasses.fields(ServeConfig):
        flag = "--" + f.name.replace("_", "-")
        doc = f"{f.metadata['doc']} [{ServeConfig.env_name(f.name)}; default: {f.default}]"
        kind = field_type(f)
        if kind is bool:
            p.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=doc)
        else:
            p.add_argument(
                flag,
                dest=f.name,
                default=None,
                type=kind,
                choices=f.metadata.get("choices"),
                metavar=f.name.upper(),
                help=doc,
            )


def run(args: argparse.Namespace) -> int:
    from bertkit.serving.run import serve

    names = {f.name for f in dataclasses.fields(ServeConfig)}
    config = ServeConfig.from_env(**{k: v for k, v in vars(args).items() if k in names})
    serve(config)
    return 0
