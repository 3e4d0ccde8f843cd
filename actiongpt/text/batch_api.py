"""OpenAI Batch API files: export the requests, import the results into the cache.

Export writes ``<out>.jsonl`` with one line per request (``custom_id`` = cache key, ``method``,
``url``, ``body``), split into several files above the Batch API's 50,000-request limit, plus
``<out>.index.jsonl`` mapping each key to its label, i, seed, template and parameters, so that an
import needs nothing but the result file. vLLM's offline runner (``python -m vllm.entrypoints.openai.
run_batch -i <in> -o <out> --model ...``) reads and writes the same formats.

Import reads result lines (``{"custom_id", "response": {"status_code", "body"}, "error"}``), applies
the same post-processing and degeneracy check as live requests, appends good answers to the cache
and records everything else in the failure log; keys already cached are skipped, so importing twice
is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actiongpt.text.backends import Completion
from actiongpt.text.cache import CacheError, DescriptionCache, FailureLog, make_record, read_records, utc_now
from actiongpt.text.keys import Request
from actiongpt.text.openai_backend import build_body
from actiongpt.text.quality import NewlineMode, degenerate_reason, postprocess

MAX_REQUESTS_PER_FILE = 50_000
URLS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


def index_path(batch_path: str | Path) -> Path:
    p = Path(batch_path)
    return p.with_name(p.name.removesuffix(".jsonl") + ".index.jsonl")


def export_batch(
    requests: Sequence[Request],
    out: str | Path,
    *,
    max_tokens_field: str = "max_tokens",
    max_per_file: int = MAX_REQUESTS_PER_FILE,
) -> list[Path]:
    """Write Batch API input file(s) for ``requests`` and the index; returns the input files."""
    if not requests:
        return []
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    endpoint = requests[0].endpoint
    if endpoint not in URLS:
        raise ValueError(f"the Batch API serves chat or completions requests, not {endpoint!r}")
    chunks = [requests[j : j + max_per_file] for j in range(0, len(requests), max_per_file)]
    stem = out.name.removesuffix(".jsonl")
    files = (
        [out] if len(chunks) == 1 else [out.with_name(f"{stem}-{n:05d}.jsonl") for n in range(len(chunks))]
    )
    for path, chunk in zip(files, chunks):
        with open(path, "w", encoding="utf-8") as fh:
            for req in chunk:
                body, extra = build_body(
                    req, req.seed, model=req.model, endpoint=req.endpoint, max_tokens_field=max_tokens_field
                )
                line = {
                    "custom_id": req.key,
                    "method": "POST",
                    "url": URLS[req.endpoint],
                    "body": {**body, **extra},
                }
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    with open(index_path(out), "w", encoding="utf-8") as fh:
        for req in requests:
            entry = {
                "key": req.key,
                "label": req.label,
                "i": req.i,
                "seed": req.seed,
                "endpoint": req.endpoint,
                "model": req.model,
                "params": req.params,
                "template": req.template,
            }
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return files


def read_index(paths: Iterable[str | Path]) -> dict[str, Request]:
    """key -> Request (without the rendered input, which the import does not need)."""
    out: dict[str, Request] = {}
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(
                f"batch index {p} does not exist (written next to the exported batch file)"
            )
        for rec in read_records(p, validate=False).records:
            try:
                out[rec["key"]] = Request(
                    rec["key"],
                    rec["label"],
                    int(rec["i"]),
                    int(rec["seed"]),
                    rec["endpoint"],
                    rec["model"],
                    None,
                    rec["params"],
                    rec["template"],
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise CacheError(f"{p}: index line for {rec.get('key')!r} is incomplete ({exc})") from exc
    return out


def _completion_from_body(body: dict[str, Any], endpoint: str) -> Completion:
    choice = body["choices"][0]
    text = choice["message"]["content"] if endpoint == "chat" else choice["text"]
    if text is not None and not isinstance(text, str):
        raise TypeError(f"completion text is {type(text).__name__}")
    usage = body.get("usage") or {}
    return Completion(
        text=text or "",
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        fingerprint=body.get("system_fingerprint"),
        response_model=body.get("model"),
    )


@dataclass
class ImportReport:
    lines: int = 0
    imported: int = 0
    already_cached: int = 0
    failed: int = 0
    unknown_ids: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["unknown_ids"] = self.unknown_ids[:20]
        d["unknown"] = len(self.unknown_ids)
        return d


def import_results(
    result_paths: Iterable[str | Path],
    index: dict[str, Request],
    cache: DescriptionCache,
    failures: FailureLog | None = None,
    *,
    newlines: NewlineMode = "space",
    min_words: int = 5,
) -> ImportReport:
    """Append the answers of Batch API result files to ``cache``."""
    rep = ImportReport()
    for path in map(Path, result_paths):
        if not path.is_file():
            raise FileNotFoundError(f"batch result file {path} does not exist")
        for lineno, line in enumerate(read_records(path, validate=False).records, start=1):
            rep.lines += 1
            cid = line.get("custom_id")
            req = index.get(cid) if isinstance(cid, str) else None
            if req is None:
                rep.unknown_ids.append(str(cid))
                continue
            if req.key in cache:
                rep.already_cached += 1
                continue
            reason = None
            response = line.get("response") or {}
            status = response.get("status_code")
            if line.get("error"):
                err = line["error"]
                reason = f"batch error: {err.get('code') if isinstance(err, dict) else ''} {err}"
            elif status != 200:
                reason = f"batch HTTP {status}: {json.dumps(response.get('body'))[:200]}"
            else:
                try:
                    c = _completion_from_body(response["body"], req.endpoint)
                except (KeyError, IndexError, TypeError, ValueError) as exc:
                    reason = f"malformed batch response ({path}:{lineno}): {type(exc).__name__} {exc}"
                else:
                    rep.prompt_tokens += c.prompt_tokens
                    rep.completion_tokens += c.completion_tokens
                    text = postprocess(c.text, newlines)
                    bad = degenerate_reason(text, min_words=min_words)
                    if bad is None:
                        cache.append(make_record(req, c, text, seed_used=req.seed, attempts=1))
                        rep.imported += 1
                        continue
                    reason = f"degenerate answer: {bad}"
            rep.failed += 1
            if failures is not None:
                failures.record(
                    {
                        "key": req.key,
                        "label": req.label,
                        "i": req.i,
                        "reason": reason,
                        "attempts": 1,
                        "time": utc_now(),
                    }
                )
    return rep
