"""``actiongpt results``: the paper's comparison at small scale on the embedded default -> results.md.

    actiongpt results [--out runs/results] [--doc docs/results.md] [--until STAGE] [--redo STAGE ...]
                      [-c configs/results.yaml] [key.sub=value ...]

Stages (each skips work already done from the same inputs, like ``actiongpt demo``):

1-5. ``data``, ``stats``, ``describe``, ``embed``, ``shards`` - the demo's data stages, with every shipped
     description stored per label (``store_k``) so one shard build serves k = 1, 2, 4, 8;
6.   ``train``  - Default and Action-GPT runs of every backbone for every seed, the k ablation runs and the
     compact-aggregator runs, ``jobs`` at a time (logs in ``<out>/logs/``); rerunning resumes interrupted
     runs;
7.   ``evaluator`` - one tiny contrastive text-motion evaluator (``evaluator_steps``; 0 = none) and its own
     retrieval quality on the reference motions;
8.   ``eval``   - APE/AVE of every run on every split, with the evaluator R-precision, FID, diversity,
     MM-Dist and physics (``actiongpt eval compare`` under torchrun);
9.   ``report`` - ``<out>/results.md`` (and ``--doc``): Table 1 and Table 2 analogues as mean ± std over
     seeds, per-seed paired differences, the compact aggregators against the original, training losses
     and a training-curve picture.

Examples:
    actiongpt results --doc docs/results.md            # what docs/results.md was made with
    actiongpt results seeds=[1] steps.teach=300 ablation_backbone=null compact_aggregators=[]  # a quick look
"""

from __future__ import annotations

import argparse
from pathlib import Path

from actiongpt import config as cfglib
from launch.config_args import add_config_args, resolve
from launch.demo.context import DemoContext, Stage
from launch.demo.stages import STAGES as DEMO_STAGES
from launch.demo.stages import add_stage_args, run_stages
from launch.errors import UserError
from launch.results.config import ExperimentConfig, planned_runs
from launch.results.evaluation import eval_all, eval_done, evaluator_done, evaluator_run
from launch.results.report import RESULTS_FILE, write_report
from launch.results.training import run_done, train_all

DEFAULT_CONFIG = "configs/results.yaml"
DATA_STAGES = ("data", "stats", "describe", "embed", "shards")


def stages(cfg: ExperimentConfig) -> list[Stage]:
    def report_run(ctx: DemoContext) -> None:
        path = write_report(cfg)
        print()
        print(path.read_text().rstrip())
        print(f"\n  written to {path}" + (f" and {cfg.doc}" if cfg.doc else ""))

    return [
        *[s for s in DEMO_STAGES if s.name in DATA_STAGES],
        Stage(
            "train",
            f"train {len(planned_runs(cfg))} runs (backbones x Default/Action-GPT x seeds; k ablation; "
            "compact aggregators)",
            lambda ctx: train_all(cfg, ctx),
            lambda ctx: all(run_done(cfg, ctx, s) for s in planned_runs(cfg)),
        ),
        Stage(
            "evaluator",
            f"train the text-motion evaluator ({cfg.evaluator_steps} steps) every run is scored with",
            lambda ctx: evaluator_run(cfg, ctx),
            lambda ctx: evaluator_done(cfg, ctx),
        ),
        Stage(
            "eval",
            f"evaluate every run on {', '.join(cfg.splits)} (torchrun, {cfg.eval_nproc} ranks)",
            lambda ctx: eval_all(cfg, ctx),
            lambda ctx: eval_done(cfg, ctx),
        ),
        # always rebuilt: it only reads files and takes a second
        Stage("report", f"write {RESULTS_FILE}: tables (mean ± std over seeds)", report_run, lambda _: False),
    ]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "results",
        help="the paper's comparison at small scale (Table 1/2 analogues, seeds) -> results.md",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default=None, help="run folder (default runs/results)")
    p.add_argument("--doc", default=None, help="also write the report here (e.g. docs/results.md)")
    add_stage_args(p, "list the stages and the training runs, then exit")
    add_config_args(p, [DEFAULT_CONFIG])
    p.set_defaults(func=cmd_results)


def cmd_results(args: argparse.Namespace) -> int:
    cfg = resolve(ExperimentConfig, args)
    if args.out:
        cfg.out = args.out
    if args.doc:
        cfg.doc = args.doc
    all_stages = stages(cfg)
    names = [s.name for s in all_stages]
    if args.list:
        for i, s in enumerate(all_stages, 1):
            print(f"{i}. {s.name}: {s.help}")
        print("runs: " + ", ".join(r.name for r in planned_runs(cfg)))
        return 0
    unknown = sorted(set(args.redo) - set(names))
    if unknown:
        raise UserError(f"unknown stage(s) {unknown}; stages: {names}")
    if args.until and args.until not in names:
        raise UserError(f"--until {args.until}: unknown stage; stages: {names}")
    chosen = all_stages[: names.index(args.until) + 1] if args.until else all_stages
    ctx = DemoContext(cfg.demo_config(), redo=set(args.redo))
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    cfglib.save(cfg, Path(cfg.out) / "config.yaml")
    run_stages(ctx, chosen)
    return 0
