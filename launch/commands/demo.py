"""``actiongpt demo``: the main job on the embedded default, as a list of stages.

    actiongpt demo [--out runs/demo] [--backbones teach,temos,motionclip] [--redo STAGE ...]
                   [--until STAGE] [--list] [-c configs/demo.yaml] [key.sub=value ...]

Every stage checks whether its work is already done (its outputs exist and were made from the same
inputs) and skips it if so, printing the earlier result; ``--redo`` forces stages again (deleting their
outputs inside the run folder), ``--until`` stops after a stage. The stages:

1. ``data``     - generate the embedded dataset (``data.out``, default ``data/embedded``) unless a dataset
   made with the same generator version and configuration is there;
2. ``stats``    - read it with the real AMASS/BABEL readers (TEACH's extraction rules), print statistics
   and check that nothing was skipped and that every split/mode has the record count the generator
   says it wrote (written to ``<out>/data_stats.json``);
3. ``describe`` - check that the description cache (default: the shipped SmolLM2 one) holds k
   descriptions for every label of train, val, test and zeroshot; never calls an LLM: missing labels are
   an error that names them and gives the command generating them;
4. ``embed``    - embed every label and its k descriptions once (all-MiniLM-L6-v2,
   ``actiongpt shards embed``);
5. ``shards``   - WebDataset shards of train/val/zeroshot (TEACH: action pairs; TEMOS/MotionCLIP: single
   actions), built and verified (``actiongpt shards build``/``verify``);
6. ``train``    - per backbone an Action-GPT run (descriptions) and a Default run (raw label), the tiny
   preset on ``train.nproc`` ranks with torchrun (``python -m launch.train``); an interrupted run resumes;
7. ``eval``     - APE/AVE of every run on val and zeroshot with renders, on ``eval.nproc`` ranks
   (``actiongpt eval compare``);
8. ``report``   - print and write ``<out>/results.md``: Table 1's layout per split, training losses, renders.

The resolved config of every command run is written to ``<out>/configs/``; timings to ``<out>/timings.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from actiongpt import config as cfglib
from launch.config_args import add_config_args, resolve
from launch.demo.context import BACKBONES, DemoConfig, DemoContext, Stage
from launch.demo.stages import STAGES, add_stage_args, run_stages, select_stages
from launch.errors import UserError

__all__ = ["STAGES", "DemoConfig", "DemoContext", "Stage", "register", "run_stages", "select_stages"]

DEFAULT_CONFIG = "configs/demo.yaml"


def _backbones(text: str) -> list[str]:
    out = [b.strip().lower() for b in text.split(",") if b.strip()]
    unknown = sorted(set(out) - set(BACKBONES))
    if unknown or not out:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(BACKBONES)}")
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on the embedded default (stages skip finished work)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default=None, help="run folder (default runs/demo)")
    p.add_argument(
        "--backbones",
        type=_backbones,
        default=None,
        metavar="LIST",
        help="comma-separated backbones: teach (default), temos, motionclip",
    )
    add_stage_args(p, "list the stages and exit")
    add_config_args(p, [DEFAULT_CONFIG])
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.list:
        for i, s in enumerate(STAGES, 1):
            print(f"{i}. {s.name}: {s.help}")
        return 0
    stages = select_stages(args.until)
    unknown = set(args.redo) - {s.name for s in STAGES}
    if unknown:
        raise UserError(f"unknown stage(s) {sorted(unknown)}; stages: {[s.name for s in STAGES]}")
    cfg = resolve(DemoConfig, args)
    if args.out:
        cfg.out = args.out
    if args.backbones:
        cfg.backbones = args.backbones
        cfg = cfglib.from_dict(DemoConfig, cfglib.to_dict(cfg))  # re-validate (steps per backbone)
    ctx = DemoContext(cfg, redo=set(args.redo))
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    cfglib.save(cfg, Path(cfg.out) / "config.yaml")
    run_stages(ctx, stages)
    return 0
