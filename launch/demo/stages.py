"""The stages of ``actiongpt demo`` in order (``STAGES``) and the runner that skips finished ones; the
``results`` command reuses the data stages and the runner."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from launch.demo import model_stages, report, text_stages
from launch.demo.context import DemoContext, Stage
from launch.errors import UserError

# --- stage: data ---------------------------------------------------------------------------------------


def _provenance(ctx: DemoContext) -> dict[str, Any] | None:
    path = ctx.data_dir / "provenance.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _data_done(ctx: DemoContext) -> bool:
    from actiongpt.data.synth.generate import GENERATOR_VERSION, config_record

    prov = _provenance(ctx)
    if prov is None:
        return False
    if prov.get("generator") != GENERATOR_VERSION or prov.get("config") != config_record(ctx.cfg.data):
        print(f"  {ctx.data_dir} was generated with another generator version or configuration: regenerating")
        return False
    return True


def _data_run(ctx: DemoContext) -> None:
    from actiongpt.data.synth.generate import generate_dataset

    try:
        summary = generate_dataset(ctx.cfg.data)
    except FileExistsError as exc:
        raise UserError(str(exc)) from exc
    t = summary["totals"]
    print(
        f"  wrote {summary['out']}: {t['sequences']} sequences, {t['actions']} actions, {t['minutes']} min, "
        f"{summary['bytes'] / 1e6:.1f} MB in {summary['seconds']:.1f} s"
    )


def _data_show(ctx: DemoContext) -> None:
    prov = _provenance(ctx) or {}
    t = prov.get("totals", {})
    print(
        f"  {ctx.data_dir}: {t.get('sequences')} sequences, {t.get('actions')} actions, "
        f"{t.get('minutes')} min "
        f"(seed {prov.get('seed')}, {prov.get('generator')})"
    )


# --- stage: stats --------------------------------------------------------------------------------------


def _stats_path(ctx: DemoContext) -> Path:
    return ctx.out / "data_stats.json"


def _stats_done(ctx: DemoContext) -> bool:
    path, prov = _stats_path(ctx), _provenance(ctx)
    if not path.is_file() or prov is None:
        return False
    try:
        return json.loads(path.read_text()).get("content_sha256") == prov.get("content_sha256")
    except (OSError, json.JSONDecodeError):
        return False


def _stats_run(ctx: DemoContext) -> None:
    from actiongpt.data.stats import dataset_stats, format_stats

    stats = dataset_stats(ctx.data_dir / "babel", ctx.data_dir / "amass")
    problems = {
        f"{s}/{m}": e["modes"][m]["problems"]
        for s, e in stats["splits"].items()
        for m in e["modes"]
        if e["modes"][m]["problems"]
    }
    print(format_stats(stats))
    if problems:
        raise UserError(f"the readers skipped records of {ctx.data_dir} as bad input: {problems}")
    if not stats.get("matches_generator", False):
        raise UserError(
            f"record counts of {ctx.data_dir} differ from its provenance.json (see the table above)"
        )
    stats["content_sha256"] = (_provenance(ctx) or {}).get("content_sha256")
    ctx.out.mkdir(parents=True, exist_ok=True)
    _stats_path(ctx).write_text(json.dumps(stats, indent=1) + "\n")


def _stats_show(ctx: DemoContext) -> None:
    from actiongpt.data.stats import format_stats

    print(format_stats(json.loads(_stats_path(ctx).read_text())))


STAGES: list[Stage] = [
    Stage(
        "data", "generate the embedded dataset (AMASS npz + BABEL json)", _data_run, _data_done, _data_show
    ),
    Stage(
        "stats", "read it with the real readers and check the counts", _stats_run, _stats_done, _stats_show
    ),
    Stage(
        "describe",
        "check that the description cache covers every label (no LLM call)",
        text_stages.describe_run,
        text_stages.describe_done,
        text_stages.describe_show,
    ),
    Stage(
        "embed",
        "embed each label and its k descriptions once (text encoder)",
        text_stages.embed_run,
        text_stages.embed_done,
        text_stages.embed_show,
    ),
    Stage(
        "shards",
        "write and verify WebDataset shards (train/val/zeroshot)",
        model_stages.shards_run,
        model_stages.shards_done,
        model_stages.shards_show,
    ),
    Stage(
        "train",
        "distributed training: Action-GPT and Default runs per backbone (torchrun)",
        model_stages.train_run,
        model_stages.train_done,
        model_stages.train_show,
    ),
    Stage(
        "evaluator",
        "train the text-motion evaluator (torchrun) and measure its retrieval on reference motions",
        model_stages.evaluator_run,
        model_stages.evaluator_done,
        model_stages.evaluator_show,
    ),
    Stage(
        "eval",
        "distributed evaluation (APE/AVE; R-precision, FID, physics) on val and zeroshot, with renders",
        model_stages.eval_run,
        model_stages.eval_done,
        model_stages.eval_show,
    ),
    Stage(
        "report",
        "results.md: Table 1 layout per split, losses, renders",
        report.report_run,
        report.report_done,
        report.report_show,
    ),
]


def run_stages(ctx: DemoContext, stages: list[Stage] | None = None) -> list[dict[str, Any]]:
    """Run (or skip) each stage in order with a banner; returns and prints the timing of every stage."""
    timings: list[dict[str, Any]] = []
    stages = stages if stages is not None else STAGES
    t_all = time.perf_counter()
    try:
        for i, stage in enumerate(stages, 1):
            t0 = time.perf_counter()
            if stage.name not in ctx.redo and stage.done(ctx):
                print(f"[{i}/{len(stages)}] {stage.name}: done before, skipped ({stage.help})", flush=True)
                if stage.show is not None:
                    stage.show(ctx)
                timings.append(
                    {"stage": stage.name, "status": "skipped", "seconds": time.perf_counter() - t0}
                )
                continue
            print(f"[{i}/{len(stages)}] {stage.name}: {stage.help}", flush=True)
            timings.append({"stage": stage.name, "status": "failed", "seconds": 0.0})
            stage.run(ctx)
            secs = time.perf_counter() - t0
            timings[-1].update(status="ran", seconds=secs)
            print(f"[{i}/{len(stages)}] {stage.name}: finished in {secs:.1f} s", flush=True)
    finally:
        if timings and timings[-1]["status"] == "failed":
            timings[-1]["seconds"] = time.perf_counter() - t0
        _print_timings(timings, time.perf_counter() - t_all)
        if ctx.out.is_dir():
            (ctx.out / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    return timings


def _print_timings(timings: list[dict[str, Any]], total: float) -> None:
    if not timings:
        return
    print("timings:")
    for t in timings:
        print(f"  {t['stage']:<9} {t['seconds']:7.1f} s  {t['status']}")
    print(f"  {'total':<9} {total:7.1f} s", flush=True)


def select_stages(until: str | None) -> list[Stage]:
    names = [s.name for s in STAGES]
    if until is None:
        return list(STAGES)
    if until not in names:
        raise UserError(f"--until {until}: unknown stage; stages: {names}")
    return STAGES[: names.index(until) + 1]


def add_stage_args(p: argparse.ArgumentParser, list_help: str) -> None:
    """--redo / --until / --list of a staged command (demo, results)."""
    p.add_argument("--redo", nargs="+", default=[], metavar="STAGE", help="run these stages even if done")
    p.add_argument("--until", metavar="STAGE", help="stop after this stage")
    p.add_argument("--list", action="store_true", help=list_help)
