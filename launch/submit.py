"""Submit training, evaluation and description jobs with submitit: to Slurm, or to local/debug executors.

    from launch.submit import ExecutorOptions, submit_train
    job = submit_train(["configs/train/teach.yaml"], ["run_dir=runs/teach-a"],
                       ExecutorOptions(nodes=2, gpus_per_node=8, partition="gpu", timeout_min=24 * 60))
    result = job.result()          # cluster.trainer.TrainResult of rank 0

Every task of a job runs the stage's Python entry in-process, with the distributed environment exported
(``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``, as torchrun would), so the same code
paths run as under ``srun`` or ``torchrun``.

Preemption and timeouts. submitit asks Slurm for ``--signal=USR2@<signal_delay_s>`` and handles USR2 on
global rank 0 only, which cannot take part in a collective (sharded) save. So the training job lets the
trainer own the signal on every rank: the trainer flags it, all ranks save together at the next step
boundary, rank 0 requeues the Slurm job (``scontrol requeue``), and every task leaves without writing a
result, so the client keeps waiting for the requeued run. That run starts the same submission again and
the trainer resumes from the newest complete checkpoint in ``run_dir``. If the signal comes while no
trainer is running (start-up, shutdown), submitit's own handler calls :meth:`TrainJob.checkpoint`, which
only resubmits: the newest complete periodic checkpoint is the resume point.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission
from submitit.local.local import LOCAL_REQUEUE_RETURN_CODE  # the local controller reruns tasks that exit so

log = logging.getLogger("actiongpt.submit")

REPO_ROOT = Path(__file__).resolve().parents[1]
Cluster = Literal["slurm", "local", "debug"]
CLUSTERS: tuple[str, ...] = ("slurm", "local", "debug")


@dataclasses.dataclass
class ExecutorOptions:
    """Where and how a job runs. ``None`` leaves the choice to Slurm (or to the site's defaults)."""

    cluster: Cluster | None = None  # None: slurm when sbatch is on PATH, else local
    folder: str | None = None  # submitit's job folder (logs, pickles); default: a new one per submission
    name: str | None = None  # job name; default from the stage and the run directory
    nodes: int = 1
    tasks_per_node: int | None = None  # None: one task per GPU (gpus_per_node), at least 1
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    timeout_min: int = 60
    partition: str | None = None
    account: str | None = None
    constraint: str | None = None
    qos: str | None = None
    signal_delay_s: int = 120  # Slurm signals this long before the time limit (save + requeue window)
    max_num_timeout: int = 3  # requeues on timeout that submitit's own handler allows
    array_parallelism: int = 256
    setup: list[str] = dataclasses.field(default_factory=list)  # shell lines run before the tasks (Slurm)
    additional_parameters: dict[str, Any] = dataclasses.field(default_factory=dict)  # more #SBATCH options
    folder_root: str = "runs/submitit"  # parent of the default folder

    def __post_init__(self) -> None:
        if self.cluster is not None and self.cluster not in CLUSTERS:
            raise ValueError(f"cluster: {self.cluster!r} is not one of {list(CLUSTERS)}")
        for name in ("nodes", "timeout_min", "array_parallelism"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.gpus_per_node < 0:
            raise ValueError(f"gpus_per_node: must be >= 0, got {self.gpus_per_node}")
        if self.tasks_per_node is not None and self.tasks_per_node < 1:
            raise ValueError(f"tasks_per_node: must be >= 1, got {self.tasks_per_node}")
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise ValueError(f"cpus_per_task: must be >= 1, got {self.cpus_per_task}")

    @property
    def tasks(self) -> int:
        """Tasks per node: explicit, else one per GPU, else 1."""
        return self.tasks_per_node or max(self.gpus_per_node, 1)

    def resolved_cluster(self) -> str:
        if self.cluster is not None:
            return self.cluster
        import shutil

        return "slurm" if shutil.which("sbatch") else "local"


def _default_folder(opts: ExecutorOptions, name: str) -> Path:
    # A fresh folder per submission: Slurm job ids restart when a cluster restarts with a clean state, and
    # a reused "<folder>/%j" would hand back an older job's result.
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(opts.folder_root) / f"{name}-{stamp}-{secrets.token_hex(3)}"


def make_executor(opts: ExecutorOptions, name: str) -> submitit.AutoExecutor:
    """A submitit executor configured from ``opts`` (``name`` is the default job name)."""
    cluster = opts.resolved_cluster()
    folder = Path(opts.folder) if opts.folder else _default_folder(opts, opts.name or name)
    if "%j" not in str(folder) and "%A" not in str(folder):
        folder = folder / "%j"
    ctor = {"slurm_max_num_timeout": opts.max_num_timeout} if cluster == "slurm" else {}
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster, **ctor)
    params: dict[str, Any] = {
        "name": opts.name or name,
        "nodes": opts.nodes,
        "tasks_per_node": opts.tasks,
        "timeout_min": opts.timeout_min,
    }
    if opts.gpus_per_node:
        params["gpus_per_node"] = opts.gpus_per_node
    if opts.cpus_per_task is not None:
        params["cpus_per_task"] = opts.cpus_per_task
    if opts.mem_gb is not None:
        params["mem_gb"] = opts.mem_gb
    # The job imports this repository: make sure it does even without `pip install -e .`.
    pythonpath = f"export PYTHONPATH={REPO_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"
    if cluster == "slurm":
        extra = {"requeue": True, **opts.additional_parameters}
        params.update(
            slurm_signal_delay_s=opts.signal_delay_s,
            slurm_array_parallelism=opts.array_parallelism,
            slurm_additional_parameters=extra,
            slurm_setup=[pythonpath, *opts.setup],
        )
        for key in ("partition", "account", "constraint", "qos"):
            value = getattr(opts, key)
            if value:
                params[f"slurm_{key}"] = value
    else:
        slurm_only = [k for k in ("partition", "account", "constraint", "qos") if getattr(opts, k)]
        if slurm_only or opts.additional_parameters:
            log.warning(
                "cluster=%s ignores the Slurm options %s",
                cluster,
                slurm_only + sorted(opts.additional_parameters),
            )
        if cluster == "local":
            params["local_setup"] = [pythonpath, *opts.setup]
    executor.update_parameters(**params)
    return executor


# ----------------------------------------------------------------------------------------- in the task


def _job_environment() -> Any | None:
    """submitit's view of this task, or None when not running inside a submitit job."""
    try:
        return submitit.JobEnvironment()
    except RuntimeError:
        return None


def _executor_kind() -> str:
    """``slurm``, ``local``, ``debug`` or ``none`` (called directly, e.g. from a test)."""
    env = _job_environment()
    return env.cluster if env is not None else "none"


def export_distributed_env() -> dict[str, str]:
    """In a multi-task submitit job, export the torchrun-style rank variables for this task.

    ``CUDA_VISIBLE_DEVICES`` is left alone: the process group picks ``cuda:LOCAL_RANK`` itself.
    Returns what was exported (empty for a single task).
    """
    env = _job_environment()
    if env is None or env.num_tasks <= 1:
        return {}
    dist = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    exported = {
        "RANK": str(dist.rank),
        "WORLD_SIZE": str(dist.world_size),
        "LOCAL_RANK": str(dist.local_rank),
        "LOCAL_WORLD_SIZE": str(dist.local_world_size),
        "MASTER_ADDR": dist.master_addr,
        "MASTER_PORT": str(dist.master_port),
    }
    log.info(
        "task %s/%s: master %s:%s",
        exported["RANK"],
        exported["WORLD_SIZE"],
        dist.master_addr,
        dist.master_port,
    )
    return exported


def _preemption_signal() -> str:
    """The signal submitit asked Slurm to send before the time limit (USR2 unless overridden)."""
    from submitit.core.job_environment import JobEnvironment

    return "SIG" + JobEnvironment.USR_SIG


def _run_command(module: str, argv: Sequence[str]) -> int:
    """Run one ``actiongpt`` command in-process with only its own module imported (``launch.cli.run``)."""
    from launch.cli import build_parser, run

    return run(build_parser([module]), list(argv))


def _logging() -> None:
    from launch.cli import setup_logging

    setup_logging()


class TrainJob(Checkpointable):
    """``actiongpt train`` as a checkpointable submitit callable (every task runs it)."""

    def __call__(self, cfg_files: Sequence[str], overrides: Sequence[str]) -> Any:
        from launch.commands.train import run_training

        _logging()
        kind = _executor_kind()
        export_distributed_env()
        result = run_training(self.config(cfg_files, overrides, kind))
        if result.status == "preempted":
            self._leave_for_requeue(kind, result)
        return result

    @staticmethod
    def config(cfg_files: Sequence[str], overrides: Sequence[str], kind: str = "none") -> Any:
        """The run's config: :func:`load_train_config` as on every path, plus only what the executor
        changes (who handles the preemption signal, whether to requeue)."""
        from cluster.train_config import load_train_config

        cfg = load_train_config(cfg_files, overrides)
        if kind in ("slurm", "local"):
            # The trainer takes submitit's timeout/preemption signal on every rank (a collective save);
            # on Slurm its rank 0 requeues the job, locally the exit code below makes submitit rerun it.
            sig = _preemption_signal()
            signals = list(cfg.signals) + ([sig] if sig not in cfg.signals else [])
            cfg = dataclasses.replace(cfg, signals=signals, requeue=kind == "slurm")
        elif kind == "debug":
            cfg = dataclasses.replace(cfg, requeue=False)  # runs in this process: nothing to requeue
        return cfg

    @staticmethod
    def _leave_for_requeue(kind: str, result: Any) -> None:
        """After the collective save of a preempted run: exit without a result so the job is rerun."""
        if kind == "slurm":
            # Rank 0 has run `scontrol requeue`; the rerun resumes from result.last_checkpoint.
            logging.getLogger("actiongpt.submit").warning(
                "preempted at step %d (checkpoint %s): leaving for the requeued run",
                result.step,
                result.last_checkpoint,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            raise SystemExit(0)
        if kind == "local":
            # submitit's local controller restarts all tasks when one exits with this code.
            sys.stdout.flush()
            sys.exit(LOCAL_REQUEUE_RETURN_CODE)
        # debug executor / direct call: nothing to requeue; the caller sees status "preempted".

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit on rank 0 only: resubmit unchanged (the trainer resumes from ``run_dir``)."""
        return DelayedSubmission(self, *args, **kwargs)


@dataclasses.dataclass
class EvalSummary:
    """What an evaluation job returns on rank 0 (other ranks return None)."""

    out_dir: str
    metrics: dict[str, float]
    world_size: int
    num_sequences: int
    seconds: float


class EvalJob(Checkpointable):
    """``actiongpt eval run``; a requeued evaluation starts over (it is not incremental)."""

    def __call__(self, cfg_files: Sequence[str], overrides: Sequence[str]) -> EvalSummary | None:
        from actiongpt import config as cfglib
        from cluster.eval_config import EvalConfig
        from cluster.eval_run import run_eval

        _logging()
        export_distributed_env()
        cfg = cfglib.load(EvalConfig, list(cfg_files), list(overrides))
        result = run_eval(cfg)
        if result is None:
            return None
        return EvalSummary(  # result.out_dir: cfg.out_dir, or the default chosen from the checkpoint
            str(result.out_dir), dict(result.metrics), result.world_size, result.num_sequences, result.seconds
        )


class DescribeJob(Checkpointable):
    """``actiongpt describe run --part i/n``; a requeued part skips what its cache already holds."""

    def __call__(self, cfg_files: Sequence[str], overrides: Sequence[str], part: str) -> dict[str, Any]:
        _logging()
        argv = ["describe", "run", "--no-progress", "--part", part]
        for f in cfg_files:
            argv += ["-c", str(f)]
        rc = _run_command("describe", [*argv, *overrides])
        if rc != 0:
            raise RuntimeError(f"describe part {part} exited with status {rc} (see this job's log)")
        return {"part": part, "status": rc}


class MergeJob:
    """``actiongpt describe merge <out_dir>``."""

    def __call__(self, out_dir: str) -> dict[str, Any]:
        _logging()
        report = Path(out_dir) / "merge_report.json"
        rc = _run_command("describe", ["describe", "merge", out_dir, "--report", str(report)])
        if rc != 0:
            raise RuntimeError(f"describe merge {out_dir} exited with status {rc}")
        return json.loads(report.read_text())


# ------------------------------------------------------------------------------------------- handles


@dataclasses.dataclass
class SubmittedJob:
    """A submitted job and where its outputs go."""

    job: Any  # submitit.Job
    stage: str
    run_dir: str | None
    cluster: str

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    @property
    def folder(self) -> Path:
        return Path(self.job.paths.folder)

    @property
    def log(self) -> Path:
        return Path(self.job.paths.stdout)

    def results(self) -> list[Any]:
        """One result per task (waits for the job; raises submitit's error if it failed)."""
        return list(self.job.results())

    def result(self) -> Any:
        """Global rank 0's result."""
        return self.results()[0]

    def done(self) -> bool:
        return bool(self.job.done())

    def state(self) -> str:
        return str(self.job.state)

    def cancel(self) -> None:
        self.job.cancel(check=False)

    def describe(self) -> str:
        kind = "run" if self.stage == "train" else "output"
        where = f"; {kind} directory {self.run_dir}" if self.run_dir else ""
        return f"{self.stage} job {self.job_id} ({self.cluster}): log {self.log}{where}"


@dataclasses.dataclass
class DescribeSubmission:
    """The part jobs of a description run and, on Slurm, the merge job that waits for them."""

    parts: list[SubmittedJob]
    merge: SubmittedJob | None
    out_dir: str
    cluster: str

    def result(self) -> dict[str, Any]:
        """Wait for every part, then for the merge (run here on local/debug); the merge report."""
        for p in self.parts:
            p.result()
        if self.merge is not None:
            return self.merge.result()
        return MergeJob()(self.out_dir)

    def describe(self) -> str:
        lines = [p.describe() for p in self.parts]
        if self.merge is not None:
            lines.append(self.merge.describe() + " (starts when every part has succeeded)")
        else:
            lines.append(f"merge into {self.out_dir}/descriptions.jsonl: when the parts are waited for")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------- submit


def _config(cls: type, cfg_files: Sequence[str], overrides: Sequence[str]) -> Any:
    """The resolved config; fails early (in the client) on a bad config or override."""
    from actiongpt import config as cfglib

    return cfglib.load(cls, list(cfg_files), list(overrides))


def _abs(files: Sequence[str | Path]) -> list[str]:
    """Config paths as absolute paths, so the job finds them whatever its working directory."""
    return [str(Path(f).resolve()) for f in files]


def _announce(job: SubmittedJob) -> SubmittedJob:
    log.info("%s", job.describe())
    return job


def _submit_one(
    kind: str, fn: Any, files: list[str], overrides: Sequence[str], where: str, opts: ExecutorOptions
) -> SubmittedJob:
    """One (multi-task) job running ``fn(files, overrides)``, named after the folder it writes to."""
    executor = make_executor(opts, f"{kind}-{Path(where).name}")
    job = executor.submit(fn, files, list(overrides))
    return _announce(SubmittedJob(job, kind, where, opts.resolved_cluster()))


def submit_train(
    cfg_files: Sequence[str | Path],
    overrides: Sequence[str] = (),
    executor_options: ExecutorOptions | None = None,
) -> SubmittedJob:
    """Submit training (every task trains one rank); requeued on preemption/timeout, resumes from run_dir."""
    from cluster.train_config import load_train_config

    files = _abs(cfg_files)
    run_dir = str(load_train_config(files, overrides).run_dir)  # fails here, in the client, on bad input
    return _submit_one("train", TrainJob(), files, overrides, run_dir, executor_options or ExecutorOptions())


def submit_eval(
    cfg_files: Sequence[str | Path],
    overrides: Sequence[str] = (),
    executor_options: ExecutorOptions | None = None,
) -> SubmittedJob:
    """Submit an evaluation (ranks split the samples; rank 0 writes the metrics into out_dir, by default a
    folder under ``<run dir>/eval/``)."""
    from cluster.eval_config import EvalConfig

    files = _abs(cfg_files)
    cfg = _config(EvalConfig, files, overrides)
    # without out_dir the folder's name depends on the checkpoint's text source, known only in the job
    where = cfg.out_dir or str(Path(cfg.output_dir(cfg.text_source or "descriptions")).parent)
    return _submit_one("eval", EvalJob(), files, overrides, where, executor_options or ExecutorOptions())


def submit_describe(
    cfg_files: Sequence[str | Path],
    overrides: Sequence[str] = (),
    executor_options: ExecutorOptions | None = None,
    parts: int = 1,
    merge: bool = True,
) -> DescribeSubmission:
    """Submit ``parts`` description jobs (a Slurm array; part i/n each) and, on Slurm, a dependent merge.

    On local/debug executors the merge runs in :meth:`DescribeSubmission.result`.
    """
    from actiongpt.text.describe_config import DescribeConfig

    if parts < 1:
        raise ValueError(f"parts: must be >= 1, got {parts}")
    opts = executor_options or ExecutorOptions()
    if opts.tasks != 1 or opts.nodes != 1:
        raise ValueError("describe jobs run one task each: use parts=N instead of nodes/tasks_per_node")
    files = _abs(cfg_files)
    out_dir = str(_config(DescribeConfig, files, overrides).out_dir)
    name = opts.name or f"describe-{Path(out_dir).name}"
    executor = make_executor(opts, name)
    fn = DescribeJob()
    with executor.batch():
        handles = [executor.submit(fn, files, list(overrides), f"{i}/{parts}") for i in range(parts)]
    cluster = opts.resolved_cluster()
    subs = [SubmittedJob(h, "describe", out_dir, cluster) for h in handles]
    merge_job = None
    if merge and cluster == "slurm":
        array_id = str(handles[0].job_id).split("_")[0]
        merge_opts = dataclasses.replace(
            opts,
            name=f"{name}-merge",
            timeout_min=min(opts.timeout_min, 60),
            folder=str(Path(handles[0].paths.folder).parent / "merge"),
            additional_parameters={
                **opts.additional_parameters,
                "dependency": f"afterok:{array_id}",
                "kill-on-invalid-dep": "yes",
            },
        )
        merge_job = _announce(
            SubmittedJob(
                make_executor(merge_opts, f"{name}-merge").submit(MergeJob(), out_dir),
                "describe-merge",
                out_dir,
                cluster,
            )
        )
    for s in subs:
        _announce(s)
    return DescribeSubmission(subs, merge_job, out_dir, cluster)
