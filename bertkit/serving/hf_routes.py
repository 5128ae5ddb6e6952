"""Hugging Face task shapes: POST / answers as the HF Inference API does for the loaded model's task, and the
TEI-shaped /predict (a body with `inputs` rather than bertkit's `texts`) answers the same way.

- classification: text-classification, [{label, score}] sorted (batch-shaped [[...]] at POST /, which is
  what huggingface_hub.InferenceClient reads); parameters top_k, function_to_apply; TEI's raw_scores.
- tagging: token-classification, [{entity_group, score, word, start, end}] with character offsets into the
  whole text; parameters aggregation_strategy (none | simple | first | average | max; default simple),
  ignore_labels (default ["O"]), stride (pieces shared by windows; default a quarter window). A text longer
  than the model's window is read in overlapping windows, each piece scored where it has most context.
- qa: question-answering, {answer, score, start, end} (a list with parameters.top_k > 1).
- a plain encoder: feature-extraction, TEI's /embed shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import Request
from fastapi.responses import Response

from bertkit.serving import pipelines, submit, tei_routes
from bertkit.serving.http import json_response, read_json, validate


async def token_classification(server: Any, data: dict[str, Any]) -> Response:
    backend = server.backend
    inputs, params = data.get("inputs"), data.get("parameters") or {}
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValueError("inputs must be a text or a list of texts")
    submit.check_inputs(server, texts)
    strategy = params.get("aggregation_strategy") or "simple"
    if strategy not in pipelines.STRATEGIES:
        raise ValueError(f"parameters.aggregation_strategy must be one of {', '.join(pipelines.STRATEGIES)}")
    ignore = params.get("ignore_labels") or ["O"]
    span = backend.max_length - backend.tokenizer.num_special_tokens()
    stride = params.get("stride")
    stride = span // 4 if stride is None else stride
    if not isinstance(stride, int) or not 0 <= stride < span:
        raise ValueError(f"parameters.stride must be an integer in [0, {span})")
    tok = backend.tokenizer
    plans = []
    for text, enc in zip(texts, tok.encode_batch(texts), strict=True):
        pieces = [
            pipelines.Piece(enc.ids[k], enc.tokens[k], *enc.offsets[k])
            for k in range(len(enc.ids))
            if not enc.special_tokens_mask[k]
        ]
        spans = pipelines.piece_windows(len(pieces), span, stride)
        windows = [submit.encode_ids(backend, [p.id for p in pieces[s:e]], True, "window") for s, e in spans]
        plans.append((text, pieces, spans, windows))
    flat = [w for _, _, _, ws in plans for w in ws]
    rows = iter(await submit.run_chunks(server, "head", flat, [len(w.ids) for w in flat]))
    labels = backend.labels or []
    results = []
    for text, pieces, spans, windows in plans:
        window_scores = [next(rows) for _ in windows]
        if not pieces:
            results.append([])
            continue
        probs = pipelines.softmax(
            pipelines.merge_windows(len(pieces), spans, window_scores).astype(np.float64)
        )
        results.append(
            pipelines.token_entities(
                text, pieces, probs, labels, strategy, tok.convert_tokens_to_string, tok.unk_token_id, ignore,
                word_aware=tok.word_aware,
            )
        )
    return json_response(results[0] if isinstance(inputs, str) else results)


async def question_answering(server: Any, data: dict[str, Any]) -> Response:
    inputs, params = data.get("inputs"), data.get("parameters") or {}
    records = [inputs] if isinstance(inputs, dict) else inputs
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and isinstance(r.get("question"), str) and isinstance(r.get("context"), str)
        for r in records
    ):
        raise ValueError('inputs must be {"question": ..., "context": ...} or a list of them')
    submit.check_inputs(server, [r["context"] for r in records])
    top_k = params.get("top_k") or 1
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"parameters.top_k must be a positive integer, not {top_k!r}")
    items = server.backend.prepare([{"question": r["question"], "context": r["context"]} for r in records])
    predictions = await submit.run_chunks(server, "/predict", items, [it.tokens for it in items])
    answers = [pipelines.qa_answers(p, top_k) for p in predictions]
    return json_response(answers[0] if isinstance(inputs, dict) else answers)


@tei_routes.tei_errors
async def pipeline(server: Any, data: Any, root: bool = False) -> Response:
    """The loaded model's HF task for a JSON body (root: the HF Inference API's POST /)."""
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object with 'inputs'")
    task = server.backend.task_name
    if task == "classification":
        return await tei_routes.classify(server, data, batch_shaped=root)
    if task == "tagging":
        return await token_classification(server, data)
    if task == "qa":
        return await question_answering(server, data)
    if server.backend.can_encode and task is None:
        request = validate(data, tei_routes.EmbedRequest)
        inputs, _ = tei_routes._as_list(request.inputs)
        truncate = True if request.truncate is None else request.truncate
        rows = await tei_routes.embed_inputs(
            server, inputs, truncate, request.truncation_direction, "/encode"
        )
        vectors = np.stack(rows)
        return json_response(tei_routes.normalized(vectors) if request.normalize else vectors)
    raise ValueError(
        f"this server's task ({task}) has no Hugging Face pipeline shape; use bertkit's /predict"
    )


def is_pipeline_body(data: Any) -> bool:
    """A body in TEI / HF form ({"inputs": text | texts | pairs | {question, context}}) rather than bertkit's
    own ({"texts": ...} or {"inputs": [{...}, ...]})."""
    if not isinstance(data, dict) or "texts" in data or "inputs" not in data:
        return False
    inputs = data["inputs"]
    return not (isinstance(inputs, list) and any(isinstance(x, dict) for x in inputs))


def install(app: Any, server: Any) -> None:
    @app.post("/")
    async def root(http: Request) -> Response:
        """The HF Inference API: the loaded model's task (text/token classification, QA, feature extraction)."""
        try:
            data = await read_json(http)
        except Exception as err:  # noqa: BLE001 - answered in TEI's shape below
            return tei_routes.tei_error(400, str(err), "Validation")
        return await pipeline(server, data, root=True)

    server.extra_routes.append("/")
