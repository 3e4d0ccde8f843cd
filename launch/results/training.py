"""The experiment's training runs: ``cfg.jobs`` at a time, each ``python -m launch.train`` (torchrun when
``nproc > 1``), its output in ``<out>/logs/<run>.log``.

On two CPU cores two single-rank runs side by side finish more work per hour than one run on two ranks
(bench/results/train.json: 2-rank scaling efficiency 0.51-0.64), hence the defaults ``nproc 1, jobs 2``.
A run is skipped when its exported model exists and was trained from the same inputs; an interrupted run
resumes from its last checkpoint when the inputs are unchanged, and starts over otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from actiongpt import config as cfglib
from actiongpt.io_utils import atomic_write_text
from cluster.dist_env import RANK_ENV_VARS
from launch.demo.context import LAYOUT, DemoContext
from launch.demo.losses import loss_summary
from launch.demo.runner import child_env, display, torchrun_prefix
from launch.demo.stamps import files_sha256, stamp_matches, write_stamp
from launch.errors import UserError
from launch.results.config import METHOD_TEXT, ExperimentConfig, RunSpec, planned_runs, run_dir


def train_args(cfg: ExperimentConfig, ctx: DemoContext, spec: RunSpec) -> tuple[list[str], list[str]]:
    """(config files, overrides) of a run, as one would give them to ``actiongpt train``."""
    overrides = [
        f"run_dir={run_dir(cfg, spec)}",
        f"shards_dir={ctx.shards_dir(LAYOUT[spec.backbone])}",
        f"text_source={METHOD_TEXT[spec.method]}",
        f"seed={spec.seed}",
        f"max_steps={cfg.steps[spec.backbone]}",
        f"ckpt_every={cfg.ckpt_every}",
        f"log_every={cfg.log_every}",
        "val_every=0",  # the evaluation stage measures the models
        "progress=false",  # output goes to a log file
        *([f"k={spec.k}"] if spec.k is not None else []),
        *([f"aggregator={spec.aggregator}"] if spec.aggregator else []),
        *cfg.train_overrides,
    ]
    return [f"configs/train/{spec.backbone}.yaml", "configs/train/tiny.yaml"], overrides


def train_config(cfg: ExperimentConfig, ctx: DemoContext, spec: RunSpec) -> Any:
    """The run's resolved config (saved and given to ``python -m launch.train -c``, which resolves it again
    to the same values)."""
    from cluster.train_config import load_train_config

    return load_train_config(*train_args(cfg, ctx, spec))


def _manifest(ctx: DemoContext, spec: RunSpec) -> Path:
    return ctx.shards_dir(LAYOUT[spec.backbone]) / "manifest.json"


def train_inputs(cfg: ExperimentConfig, ctx: DemoContext, spec: RunSpec) -> dict[str, Any]:
    return {
        "config": cfglib.to_dict(train_config(cfg, ctx, spec)),
        "manifest": files_sha256([_manifest(ctx, spec)]),
        "nproc": cfg.nproc,
    }


def model_file(cfg: ExperimentConfig, spec: RunSpec) -> Path:
    from cluster.export import EXPORT_FILE

    return run_dir(cfg, spec) / EXPORT_FILE


def run_done(cfg: ExperimentConfig, ctx: DemoContext, spec: RunSpec) -> bool:
    return model_file(cfg, spec).is_file() and stamp_matches(
        ctx.out, f"train-{spec.name}", train_inputs(cfg, ctx, spec)
    )


def times_file(cfg: ExperimentConfig) -> Path:
    return Path(cfg.out) / "train_seconds.json"


def record_time(cfg: ExperimentConfig, spec: RunSpec, seconds: float) -> None:
    """Wall seconds of the launch that finished a run (a resumed run: its last launch only)."""
    path = times_file(cfg)
    times = json.loads(path.read_text()) if path.is_file() else {}
    times[spec.name] = {"seconds": round(seconds, 1), "jobs": cfg.jobs, "nproc": cfg.nproc}
    atomic_write_text(path, json.dumps(times, indent=1, sort_keys=True) + "\n")


def log_file(cfg: ExperimentConfig, spec: RunSpec) -> Path:
    return Path(cfg.out) / "logs" / f"{spec.name}.log"


@dataclass
class _Job:
    spec: RunSpec
    proc: subprocess.Popen
    log: IO[bytes]
    started: float


def _command(cfg: ExperimentConfig, path: Path) -> list[str]:
    if cfg.nproc > 1:
        return [*torchrun_prefix(cfg.nproc), "-m", "launch.train", "-c", str(path)]
    return [sys.executable, "-m", "launch.train", "-c", str(path)]


def _env(cfg: ExperimentConfig, cmd: list[str]) -> dict[str, str]:
    env = child_env(cmd)
    # A run is its own world: rank variables of the calling process (a torchrun/srun launch, or ones an
    # in-process run exported) would make concurrent runs join one rendezvous or fight for one port.
    for name in RANK_ENV_VARS:
        env.pop(name, None)
    # share the cores out instead of every process starting one thread per core
    env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // (cfg.jobs * cfg.nproc)))
    return env


def _start(cfg: ExperimentConfig, ctx: DemoContext, spec: RunSpec) -> _Job:
    inputs = train_inputs(cfg, ctx, spec)
    rdir = run_dir(cfg, spec)
    if rdir.exists() and not stamp_matches(ctx.out, f"train-{spec.name}.started", inputs):
        # the trainer resumes from any checkpoint in its run folder: only do that for the same inputs
        shutil.rmtree(rdir)
    tcfg = train_config(cfg, ctx, spec)
    path = cfglib.save(tcfg, ctx.configs_dir / f"train-{spec.name}.yaml")
    write_stamp(ctx.out, f"train-{spec.name}.started", inputs)
    cmd = _command(cfg, path)
    log_path = log_file(cfg, spec)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - held by the running job, closed in _finish
    log.write(f"$ {display(cmd)}\n".encode())
    log.flush()
    try:
        proc = subprocess.Popen(cmd, env=_env(cfg, cmd), stdout=log, stderr=subprocess.STDOUT)
    except OSError as exc:
        log.close()
        raise UserError(f"training {spec.name}: could not start {cmd[0]}: {exc}") from exc
    return _Job(spec, proc, log, time.perf_counter())


def _finish(cfg: ExperimentConfig, ctx: DemoContext, job: _Job, rc: int, counter: str) -> str | None:
    """Record a finished job; returns an error message when it failed."""
    job.log.close()
    secs = time.perf_counter() - job.started
    spec = job.spec
    if rc != 0 or not model_file(cfg, spec).is_file():
        return f"{spec.name} failed (exit status {rc}); see {log_file(cfg, spec)}"
    write_stamp(ctx.out, f"train-{spec.name}", train_inputs(cfg, ctx, spec))
    record_time(cfg, spec, secs)
    print(f"  {counter} {spec.name}: {secs:.0f} s, {loss_summary(run_dir(cfg, spec))['text']}", flush=True)
    return None


def train_all(cfg: ExperimentConfig, ctx: DemoContext) -> None:
    """Train every planned run not done yet, ``cfg.jobs`` at a time; stop starting new ones after a
    failure (running ones finish) and report every failure with its log file."""
    todo = [s for s in planned_runs(cfg) if not run_done(cfg, ctx, s)]
    total = len(planned_runs(cfg))
    print(
        f"  {total - len(todo)} of {total} runs done before; {len(todo)} to train, {cfg.jobs} at a time "
        f"on {cfg.nproc} rank(s) each (logs in {Path(cfg.out) / 'logs'})",
        flush=True,
    )
    running: list[_Job] = []
    failures: list[str] = []
    finished = total - len(todo)
    t0 = time.perf_counter()
    try:
        while todo or running:
            while todo and len(running) < cfg.jobs and not failures:
                spec = todo.pop(0)
                running.append(_start(cfg, ctx, spec))
                print(f"  started {spec.name} ({cfg.steps[spec.backbone]} steps)", flush=True)
            if not running:
                break
            time.sleep(0.5)
            for job in list(running):
                rc = job.proc.poll()
                if rc is None:
                    continue
                running.remove(job)
                finished += 1
                err = _finish(cfg, ctx, job, rc, f"[{finished}/{total}, {time.perf_counter() - t0:.0f} s]")
                if err:
                    failures.append(err)
                    print(f"  {err}", flush=True)
    except KeyboardInterrupt:
        raise UserError(
            "interrupted (Ctrl-C); run the same command again: finished runs are kept and interrupted ones "
            "resume from their last checkpoint"
        ) from None
    finally:
        for job in running:  # Ctrl-C or an error here: stop the children (their checkpoints stay)
            job.proc.terminate()
        for job in running:
            try:
                job.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                job.proc.kill()
            job.log.close()
    if failures:
        raise UserError(
            "training failed:\n  " + "\n  ".join(failures) + "\nFix the cause and rerun the same command: "
            "finished runs are kept and interrupted ones resume from their last checkpoint"
        )
