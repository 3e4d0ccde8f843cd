"""``actiongpt describe``: LLM descriptions of every action label, cached and resumable.

    actiongpt describe run -c configs/describe/openai.yaml labels=[data/babel/train.json] out_dir=runs/desc
    actiongpt describe merge runs/desc                 # parts/*.jsonl -> runs/desc/descriptions.jsonl
    actiongpt describe batch-export -c ... --out batch.jsonl
    actiongpt describe batch-import -c ... --results out.jsonl --index batch.index.jsonl
    actiongpt describe quality runs/desc --by template

Exit codes: 0 everything described; 1 some descriptions failed (listed in the failure log; a rerun
retries only those); 2 a user or configuration error (also a rejected API key or unknown model).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actiongpt import config as cfglib
from actiongpt.config import ConfigError
from actiongpt.io_utils import atomic_write_text, file_sha256
from actiongpt.text.batch_api import export_batch, import_results, index_path, read_index
from actiongpt.text.cache import (
    DescriptionCache,
    FailureLog,
    expand_cache_paths,
    merge_caches,
    read_records,
    utc_now,
)
from actiongpt.text.describe import RunSummary, run_requests
from actiongpt.text.describe_config import DescribeConfig, build_backend, endpoint_and_model
from actiongpt.text.keys import Request, plan_requests
from actiongpt.text.labels import collect_labels
from actiongpt.text.partition import Part, part_from_env, select_labels
from actiongpt.text.prompt import PromptTemplate, resolve_template
from actiongpt.text.quality import format_reports, quality_report
from actiongpt.text.secrets import redact
from launch.config_args import add_config_args, resolve
from launch.errors import UserError

log = logging.getLogger("actiongpt.describe")

DEFAULT_CONFIG = "configs/describe/openai.yaml"


@dataclass
class Plan:
    cfg: DescribeConfig
    part: Part
    template: PromptTemplate
    labels: list[str]  # this part's labels
    all_labels: int
    requests: list[Request]
    out_dir: Path
    cache_path: Path
    failures_path: Path
    read_paths: list[Path]


def make_plan(cfg: DescribeConfig, explicit_part: str | None = None) -> Plan:
    if not cfg.labels:
        raise ConfigError("labels: give BABEL json files or label text files (labels=[a.json,b.txt])")
    try:
        labels = collect_labels(cfg.labels, cfg.label_field)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    part = part_from_env(os.environ, explicit_part or cfg.part)
    mine = select_labels(labels, part)
    template = resolve_template(cfg.prompt)
    endpoint, model = endpoint_and_model(cfg)
    requests = plan_requests(
        mine,
        cfg.k,
        endpoint=endpoint,
        model=model,
        template=template,
        sampling=cfg.sampling,
        global_seed=cfg.seed,
    )
    out_dir = Path(cfg.out_dir)
    cache_path = Path(cfg.cache) if cfg.cache else out_dir / "parts" / f"{part.name}.jsonl"
    failures_path = out_dir / "failures" / f"{part.name}.failures.jsonl"
    for extra in cfg.read_caches:
        if not Path(extra).exists():
            raise FileNotFoundError(f"read_caches: {extra} does not exist")
    read_paths = [out_dir / "parts", out_dir / "descriptions.jsonl", *map(Path, cfg.read_caches)]
    return Plan(
        cfg, part, template, mine, len(labels), requests, out_dir, cache_path, failures_path, read_paths
    )


def _provenance(cfg: DescribeConfig, plan: Plan) -> dict[str, Any]:
    """What produced this part's descriptions: config, template, labels, seeds, software versions."""
    import platform

    import openai
    import torch
    import transformers

    return {
        "part": plan.part.name,
        "cache": str(plan.cache_path),
        "started": utc_now(),
        "command": "actiongpt " + " ".join(sys.argv[1:]) if sys.argv else None,
        "config": cfglib.to_dict(cfg),
        "template": plan.template.to_dict(),
        "template_digest": plan.template.digest(),
        "k": cfg.k,
        "seeds": {
            "global": cfg.seed,
            "per_request": "int(sha256(f'{global}\\0{label}\\0{i}')[:8 bytes]) mod (2**31 - 1)",
            "re_ask": "answer n was degenerate: int(sha256(f'{seed}\\0retry{n}')[:8 bytes]) mod (2**31-1)",
        },
        "labels": {
            "sources": [{"path": str(p), "sha256": file_sha256(p)} for p in cfg.labels],
            "label_field": cfg.label_field,
            "total": plan.all_labels,
            "this_part": len(plan.labels),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "openai": openai.__version__,
        },
    }


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# -- subcommands ---------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    cfg = resolve(DescribeConfig, args)
    if args.no_progress:
        cfg.run.progress = False
    plan = make_plan(cfg, args.part)
    cfglib.save(cfg, plan.out_dir / "config.yaml")
    cache = DescriptionCache(plan.cache_path, plan.read_paths, fsync=cfg.run.fsync)
    failures = FailureLog(plan.failures_path)
    try:
        pending = [r for r in plan.requests if r.key not in cache]
        earlier = sum(1 for r in pending if r.key in failures.previous)
        log.info(
            "part %s (%s): %d of %d labels, %d requests, %d cached, %d to do (%d failed before)",
            f"{plan.part.index}/{plan.part.count}",
            plan.part.source,
            len(plan.labels),
            plan.all_labels,
            len(plan.requests),
            len(plan.requests) - len(pending),
            len(pending),
            earlier,
        )
        info = _provenance(cfg, plan)
        secret = None
        if pending:
            backend, secret = build_backend(cfg, plan.requests[0].model)
            info["backend"] = backend.describe()
            summary = run_requests(plan.requests, backend, cache, failures, cfg.run)
        else:
            summary = RunSummary(planned=len({r.key for r in plan.requests}), cached=len(plan.requests))
            if cfg.run.price_prompt_per_1m is not None or cfg.run.price_completion_per_1m is not None:
                summary.estimated_cost = 0.0
        remaining_failures = failures.finalize()
        texts = [cache.get(r.key)["text"] for r in plan.requests if r.key in cache]
        quality = quality_report(texts)
    finally:
        cache.close()
    info["summary"] = summary.to_dict()
    info["quality"] = quality.to_dict()
    info["finished"] = utc_now()
    clean = json.loads(redact(json.dumps(info), secret))
    _write_json(plan.out_dir / f"run_info-{plan.part.name}.json", clean)
    if args.provenance:
        _write_json(Path(args.provenance), clean)
    print(redact(f"describe: {summary.line()}", secret), file=sys.stderr)
    group = "raw_label" if cfg.backend == "raw" else plan.template.name
    print(
        f"quality ({quality.descriptions} descriptions):\n{format_reports({group: quality})}", file=sys.stderr
    )
    if summary.fatal:
        raise UserError(redact(f"stopped: {summary.fatal}", secret))
    if remaining_failures:
        print(
            f"describe: {remaining_failures} descriptions failed, see {plan.failures_path}; rerun to retry "
            "only those",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    inputs = args.inputs or [Path(args.out_dir) / "parts"]
    out = Path(args.out) if args.out else Path(args.out_dir) / "descriptions.jsonl"
    report = merge_caches(inputs, out)
    print(
        f"merged {len(report.inputs)} files into {out}: {report.records} descriptions, "
        f"{report.duplicates} duplicates, {len(report.conflicts)} conflicts",
        file=sys.stderr,
    )
    for c in report.conflicts[:20]:
        print(
            f"  conflict: {c['label']!r} i={c['i']} key={c['key'][:12]} (dropped from {c['dropped_from']})",
            file=sys.stderr,
        )
    if args.report:
        _write_json(Path(args.report), report.to_dict())
    return 1 if report.conflicts and not args.allow_conflicts else 0


def cmd_batch_export(args: argparse.Namespace) -> int:
    cfg = resolve(DescribeConfig, args)
    if cfg.backend != "openai":
        raise UserError("batch-export writes OpenAI-compatible requests: use backend=openai")
    plan = make_plan(cfg, args.part)
    cache = DescriptionCache(None, [plan.cache_path, *plan.read_paths])
    pending = [r for r in plan.requests if r.key not in cache]
    files = export_batch(
        pending, args.out, max_tokens_field=cfg.openai.max_tokens_field, max_per_file=args.max_per_file
    )
    print(
        f"exported {len(pending)} requests ({len(plan.requests) - len(pending)} already cached) to "
        f"{[str(f) for f in files]}; index {index_path(args.out)}",
        file=sys.stderr,
    )
    return 0


def cmd_batch_import(args: argparse.Namespace) -> int:
    cfg = resolve(DescribeConfig, args)
    plan = make_plan(cfg, args.part)
    index_files = args.index
    index = read_index(index_files)
    failures = FailureLog(plan.failures_path)
    with DescriptionCache(plan.cache_path, plan.read_paths, fsync=cfg.run.fsync) as cache:
        rep = import_results(
            args.results, index, cache, failures, newlines=cfg.run.newlines, min_words=cfg.run.min_words
        )
    remaining = failures.finalize()
    print(
        f"batch-import: {rep.lines} lines, {rep.imported} imported, {rep.already_cached} already cached, "
        f"{rep.failed} failed, {len(rep.unknown_ids)} unknown ids; tokens {rep.prompt_tokens} prompt + "
        f"{rep.completion_tokens} completion",
        file=sys.stderr,
    )
    if rep.unknown_ids:
        print(f"  unknown custom_ids (not in {index_files}): {rep.unknown_ids[:5]}", file=sys.stderr)
    return 1 if remaining or rep.unknown_ids else 0


def cmd_quality(args: argparse.Namespace) -> int:
    groups: dict[str, list[str]] = {}
    for path in expand_cache_paths(args.caches):
        for rec in read_records(path).records:
            tmpl = (rec.get("template") or {}).get("name", "?")
            key = {
                "template": tmpl,
                "model": str(rec.get("model")),
                "file": str(path),
                "template+model": f"{tmpl}|{rec.get('model')}",
                "none": "all",
            }[args.by]
            groups.setdefault(key, []).append(rec["text"])
    if not groups:
        raise UserError(f"no descriptions in {args.caches}")
    reports = {name: quality_report(texts) for name, texts in sorted(groups.items())}
    print(format_reports(reports))
    if args.json:
        _write_json(Path(args.json), {name: r.to_dict() for name, r in reports.items()})
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "describe",
        help="LLM descriptions of action labels (cached, resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="describe_command", metavar="SUBCOMMAND", required=True)

    run = sub.add_parser("run", help="generate the missing descriptions of this part's labels")
    add_config_args(run, [DEFAULT_CONFIG])
    run.add_argument("--part", help="i/n: this process's share of the labels (default: Slurm array / RANK)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--provenance", help="also write the run's provenance JSON here")
    run.set_defaults(func=cmd_run)

    merge = sub.add_parser("merge", help="union part files into one cache and report conflicts")
    merge.add_argument(
        "out_dir", nargs="?", default="runs/describe", help="run directory (reads <out_dir>/parts)"
    )
    merge.add_argument("--inputs", nargs="+", help="cache files or folders (default: <out_dir>/parts)")
    merge.add_argument("--out", help="merged file (default: <out_dir>/descriptions.jsonl)")
    merge.add_argument("--report", help="also write the merge report as JSON")
    merge.add_argument("--allow-conflicts", action="store_true", help="exit 0 even with conflicts")
    merge.set_defaults(func=cmd_merge)

    exp = sub.add_parser("batch-export", help="write the missing requests as an OpenAI Batch JSONL file")
    add_config_args(exp, [DEFAULT_CONFIG])
    exp.add_argument("--out", required=True, help="batch input file (.jsonl); the index goes next to it")
    exp.add_argument("--part", help="i/n")
    exp.add_argument("--max-per-file", type=int, default=50_000, help="split above this many requests")
    exp.set_defaults(func=cmd_batch_export)

    imp = sub.add_parser("batch-import", help="import Batch API (or vLLM run_batch) results into the cache")
    add_config_args(imp, [DEFAULT_CONFIG])
    imp.add_argument("--results", nargs="+", required=True, help="result file(s) from the batch")
    imp.add_argument(
        "--index",
        nargs="+",
        required=True,
        help="index file(s) written by batch-export next to the batch input (<name>.index.jsonl)",
    )
    imp.add_argument("--part", help="i/n")
    imp.set_defaults(func=cmd_batch_import)

    q = sub.add_parser("quality", help="the quality measure of cached descriptions, per template/model")
    q.add_argument("caches", nargs="+", help="cache files or folders")
    q.add_argument(
        "--by", choices=["template", "model", "template+model", "file", "none"], default="template"
    )
    q.add_argument("--json", help="also write the reports as JSON")
    q.set_defaults(func=cmd_quality)
