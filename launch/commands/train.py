"""``actiongpt train``: train a backbone on shards, on one process or many ranks; resume by rerunning.

    actiongpt train -c configs/train/teach.yaml                                  # one process
    torchrun --nproc_per_node=4 -m launch.train -c configs/train/teach.yaml       # 4 ranks (DDP)
    torchrun --nproc_per_node=2 -m launch.train -c configs/train/temos.yaml -c configs/train/deepspeed.yaml
    srun python -m launch.train -c configs/train/motionclip.yaml run_dir=runs/mc  # Slurm (see slurm/)
    actiongpt train -c configs/train/teach.yaml --export runs/teach/model.safetensors  # the newest ckpt

The same command run again resumes from the newest complete checkpoint of ``run_dir`` (also at another
world size). On SIGUSR1/SIGTERM (``signals``) every rank saves at the next step boundary, rank 0 requeues
the Slurm job, and the process exits 0. Exit codes: 0 finished, preempted or stopped (``run_steps``);
1 a rank failed (every rank exits non-zero); 2 a user or configuration error.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from actiongpt import config as cfglib
from cluster.train_config import TrainConfig, load_train_config
from launch.config_args import add_config_args, config_files
from launch.errors import UserError

log = logging.getLogger("actiongpt.train")

DEFAULT_CONFIG = "configs/train/teach.yaml"


def cmd_train(args: argparse.Namespace) -> int:
    # exporting reads only run_dir's checkpoints, whatever model trained them
    cfg = load_train_config(config_files(args), args.overrides, check_model=not args.export)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(cfglib.to_dict(cfg), sort_keys=False), end="")
        return 0
    if args.export:
        return _export(cfg, Path(args.export))
    result = run_training(cfg)
    if result.status == "finished":
        where = f"; model exported to {result.export}" if result.export else ""
        log.info("finished %d steps (epoch %d)%s", result.step, result.epoch, where)
        from actiongpt.models.registry import BACKBONES

        spec = BACKBONES.get(cfg.model.lower())
        if result.export and (spec is None or spec.generates):
            log.info("evaluate / sample with: actiongpt eval run checkpoint=%s", result.export)
        elif result.export:  # the text-motion evaluator scores other models' motions
            log.info("score motions with: actiongpt eval run checkpoint=<model> evaluator=%s", result.export)
    elif result.status == "preempted":
        log.info(
            "preempted at step %d; checkpoint %s; the same command resumes",
            result.step,
            result.last_checkpoint,
        )
    else:
        log.info("stopped at step %d (run_steps); the same command continues", result.step)
    return 0


def run_training(cfg: TrainConfig) -> Any:
    """Train the run ``cfg`` (from :func:`load_train_config`) on this rank; the trainer's ``TrainResult``.

    What every training process runs, whoever launched it (this command, torchrun/srun, a submitit task).
    """
    from cluster import components
    from cluster.trainer import train

    manifest = components.load_manifest(cfg)
    return train(
        cfg,
        lambda: components.build_model(cfg, manifest),
        lambda env: components.build_loaders(cfg, env, manifest),
        extra_meta=components.run_meta(cfg, manifest),
    )


def _export(cfg: TrainConfig, out: Path) -> int:
    from cluster.checkpoint import newest_usable
    from cluster.export import export_checkpoint

    info = newest_usable(Path(cfg.run_dir) / "checkpoints")
    if info is None:
        raise UserError(f"{cfg.run_dir}: no complete checkpoint to export")
    export_checkpoint(info, out)
    print(f"exported step {info.step} of {cfg.run_dir} to {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train TEMOS / TEACH / MotionCLIP on shards (DDP or DeepSpeed; resumes automatically)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(p, [DEFAULT_CONFIG])
    p.add_argument(
        "--export", metavar="OUT", help="export the newest complete checkpoint of run_dir to OUT, exit"
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=cmd_train)
