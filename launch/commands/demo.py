"""``actiongpt demo``: the main job on the embedded default, as a list of stages.

    actiongpt demo [--out runs/demo] [--redo STAGE ...] [--list] [key.sub=value ...]

Every stage checks whether its work is already done (its outputs exist and were made from the same
inputs) and skips it if so, printing the earlier result; ``--redo`` forces stages again. Stages so far:

1. ``data``  - generate the embedded dataset (``data.out``, default ``data/embedded``) unless a dataset
   made with the same generator version and configuration is there;
2. ``stats`` - read it with the real AMASS/BABEL readers (TEACH's extraction rules), print statistics
   and check that nothing was skipped and that every split/mode has the record count the generator
   says it wrote (written to ``<out>/data_stats.json``).

Later stages (descriptions, shards, training, evaluation, renders) append themselves to `STAGES`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actiongpt import config as cfglib
from actiongpt.data.synth.config import SynthConfig
from launch.cli import UserError
from launch.config_args import add_config_args, resolve

log = logging.getLogger("actiongpt.demo")


@dataclass
class DemoConfig:
    """The demo's settings; ``data`` is the embedded dataset's generator config (``data.out``: its folder)."""

    out: str = "runs/demo"
    data: SynthConfig = field(default_factory=SynthConfig)


@dataclass
class DemoContext:
    cfg: DemoConfig
    redo: set[str] = field(default_factory=set)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def data_dir(self) -> Path:
        return Path(self.cfg.data.out)


@dataclass(frozen=True)
class Stage:
    """One step of the demo: ``done`` says whether earlier work can be reused, ``run`` does the work,
    ``show`` prints the earlier result when the stage is skipped."""

    name: str
    help: str
    run: Callable[[DemoContext], None]
    done: Callable[[DemoContext], bool]
    show: Callable[[DemoContext], None] | None = None


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
    from launch.commands.data import dataset_stats, format_stats

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
    from launch.commands.data import format_stats

    print(format_stats(json.loads(_stats_path(ctx).read_text())))


STAGES: list[Stage] = [
    Stage(
        "data", "generate the embedded dataset (AMASS npz + BABEL json)", _data_run, _data_done, _data_show
    ),
    Stage(
        "stats", "read it with the real readers and check the counts", _stats_run, _stats_done, _stats_show
    ),
]


def run_stages(ctx: DemoContext, stages: list[Stage] | None = None) -> None:
    for i, stage in enumerate(stages if stages is not None else STAGES, 1):
        t0 = time.perf_counter()
        if stage.name not in ctx.redo and stage.done(ctx):
            print(f"[{i}] {stage.name}: done before, skipped ({stage.help})")
            if stage.show is not None:
                stage.show(ctx)
            continue
        print(f"[{i}] {stage.name}: {stage.help}")
        stage.run(ctx)
        print(f"[{i}] {stage.name}: finished in {time.perf_counter() - t0:.1f} s")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on the embedded default (stages skip finished work)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default=None, help="run folder (default runs/demo)")
    p.add_argument("--redo", nargs="+", default=[], metavar="STAGE", help="run these stages even if done")
    p.add_argument("--list", action="store_true", help="list the stages and exit")
    add_config_args(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.list:
        for i, s in enumerate(STAGES, 1):
            print(f"{i}. {s.name}: {s.help}")
        return 0
    cfg = resolve(DemoConfig, args)
    if args.out:
        cfg.out = args.out
    unknown = set(args.redo) - {s.name for s in STAGES}
    if unknown:
        raise UserError(f"unknown stage(s) {sorted(unknown)}; stages: {[s.name for s in STAGES]}")
    ctx = DemoContext(cfg, redo=set(args.redo))
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    cfglib.save(cfg, Path(cfg.out) / "config.yaml")
    run_stages(ctx)
    return 0
