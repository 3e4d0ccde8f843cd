"""``actiongpt submit``: send train, eval or describe jobs to Slurm (or run them locally) via submitit.

    actiongpt submit train -c configs/train/teach.yaml run_dir=runs/teach-a --nodes 2 --gpus-per-node 8 \\
        --partition gpu --account proj --timeout-min 1440
    actiongpt submit eval checkpoint=runs/teach-a/model.safetensors --gpus-per-node 4 --wait
    actiongpt submit describe labels=[data/babel/train.json] --parts 8 --timeout-min 240
    actiongpt submit train -c configs/train/teach.yaml -c configs/train/tiny.yaml --cluster local --wait

Training is checkpointable: on preemption or near the time limit every rank saves, the job is requeued and
resumes from the newest complete checkpoint of its run directory. Without --wait the command prints the job
id, the log and the run directory and returns (Slurm); local and debug jobs are always waited for, since
they live in this process. Exit codes: 0 submitted (or finished with --wait); 1 the job failed; 2 a user
or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from launch.config_args import add_config_args, config_files
from launch.errors import UserError

log = logging.getLogger("actiongpt.submit")

DEFAULTS = {
    "train": ["configs/train/teach.yaml"],
    "eval": ["configs/eval/default.yaml"],
    "describe": ["configs/describe/openai.yaml"],
}


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the job runs")
    g.add_argument(
        "--cluster",
        choices=["slurm", "local", "debug"],
        help="slurm (default when sbatch is on PATH), local (subprocesses) or debug (in this process)",
    )
    g.add_argument("--nodes", type=int, default=1)
    g.add_argument("--gpus-per-node", type=int, default=0)
    g.add_argument("--tasks-per-node", type=int, help="default: one per GPU (at least 1)")
    g.add_argument("--cpus-per-task", type=int)
    g.add_argument("--mem-gb", type=float)
    g.add_argument("--timeout-min", type=int, default=60, help="time limit in minutes")
    g.add_argument("--partition")
    g.add_argument("--account")
    g.add_argument("--constraint")
    g.add_argument("--qos")
    g.add_argument("--name", help="job name (default from the stage and run directory)")
    g.add_argument(
        "--folder", help="submitit folder for logs and pickles (default: a new one under runs/submitit)"
    )
    g.add_argument("--signal-delay-s", type=int, default=120, help="signal this long before the time limit")
    g.add_argument(
        "--sbatch",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, e.g. --sbatch mail-type=END (repeatable)",
    )
    g.add_argument("--wait", action="store_true", help="wait for the job and print its result")


def _executor_options(args: argparse.Namespace) -> Any:
    from launch.submit import ExecutorOptions

    extra: dict[str, Any] = {}
    for item in args.sbatch:
        key, sep, value = item.partition("=")
        if not key:
            raise UserError(f"--sbatch {item!r}: expected KEY=VALUE or KEY")
        extra[key.lstrip("-")] = value if sep else True
    try:
        return ExecutorOptions(
            cluster=args.cluster,
            folder=args.folder,
            name=args.name,
            nodes=args.nodes,
            tasks_per_node=args.tasks_per_node,
            gpus_per_node=args.gpus_per_node,
            cpus_per_task=args.cpus_per_task,
            mem_gb=args.mem_gb,
            timeout_min=args.timeout_min,
            partition=args.partition,
            account=args.account,
            constraint=args.constraint,
            qos=args.qos,
            signal_delay_s=args.signal_delay_s,
            additional_parameters=extra,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _finish(handle: Any, wait: bool) -> int:
    import submitit

    print(handle.describe())
    if not wait and handle.cluster == "slurm":
        return 0
    try:
        result = handle.result()
    except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError, RuntimeError) as exc:
        print(f"actiongpt submit: the job failed: {exc}", file=sys.stderr)
        return 1
    print(f"result: {result}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from launch.submit import submit_train

    return _finish(submit_train(config_files(args), args.overrides, _executor_options(args)), args.wait)


def cmd_eval(args: argparse.Namespace) -> int:
    from launch.submit import submit_eval

    return _finish(submit_eval(config_files(args), args.overrides, _executor_options(args)), args.wait)


def cmd_describe(args: argparse.Namespace) -> int:
    from launch.submit import submit_describe

    try:
        sub = submit_describe(
            config_files(args),
            args.overrides,
            _executor_options(args),
            parts=args.parts,
            merge=not args.no_merge,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    return _finish(sub, args.wait)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "submit",
        help="submit train / eval / describe jobs with submitit (Slurm or local)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="submit_command", metavar="STAGE", required=True)
    for stage, fn, text in (
        ("train", cmd_train, "training (checkpointable: requeued on preemption/timeout, resumes)"),
        ("eval", cmd_eval, "APE/AVE evaluation (`actiongpt eval run`)"),
        ("describe", cmd_describe, "LLM descriptions as an array of parts, then a merge"),
    ):
        sp = sub.add_parser(stage, help=text)
        add_config_args(sp, DEFAULTS[stage])
        _add_executor_args(sp)
        if stage == "describe":
            sp.add_argument("--parts", type=int, default=1, help="array tasks (part i/n each)")
            sp.add_argument("--no-merge", action="store_true", help="do not merge the parts afterwards")
        sp.set_defaults(func=fn)
