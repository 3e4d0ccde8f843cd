"""Helpers for tests that launch real multi-process jobs (torchrun, or srun-like plain processes)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
TOY = "tests.dist_helpers.train_toy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_", "SUBMITIT_"))}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    env.update(
        OMP_NUM_THREADS="1",
        DS_ACCELERATOR="cpu",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONPATH=str(REPO),
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def torchrun_cmd(nproc: int, args: Sequence[str], module: str = TOY) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        module,
        *args,
    ]


def run(cmd: Sequence[str], timeout: float = 240, check: bool = True) -> subprocess.CompletedProcess:
    """Run to completion; on failure raise with the output (tail) so the test log shows why."""
    res = subprocess.run(list(cmd), cwd=REPO, env=base_env(), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"command failed ({res.returncode}): {' '.join(cmd)}\n{tail(res)}")
    return res


def tail(res: subprocess.CompletedProcess, n: int = 60) -> str:
    return "\n".join((res.stdout + "\n" + res.stderr).splitlines()[-n:])


def start(cmd: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        list(cmd),
        cwd=REPO,
        env=env or base_env(),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(
    pred: Callable[[], bool], timeout: float, proc: subprocess.Popen | None = None, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def workers(proc: subprocess.Popen) -> list[psutil.Process]:
    """The Python worker processes under a torchrun launcher."""
    try:
        return [c for c in psutil.Process(proc.pid).children(recursive=True) if "python" in c.name().lower()]
    except psutil.NoSuchProcess:
        return []


def signal_workers(proc: subprocess.Popen, sig: int, expect: int) -> list[int]:
    wait_for(lambda: len(workers(proc)) >= expect, 30, proc, "workers")
    pids = [w.pid for w in workers(proc)]
    for pid in pids:
        os.kill(pid, sig)
    return pids


def kill_all(proc: subprocess.Popen) -> None:
    """kill -9 the launcher and every worker (a node dying)."""
    procs = workers(proc)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def train_records(run_dir: Path, kind: str = "train") -> dict[int, dict[str, Any]]:
    from cluster.metrics_log import read_metrics

    path = Path(run_dir) / "metrics.jsonl"
    return read_metrics(path, kind) if path.is_file() else {}


def last_step(run_dir: Path) -> int:
    recs = train_records(run_dir)
    return max(recs) if recs else 0


def losses(run_dir: Path) -> dict[int, float]:
    return {s: r["loss"] for s, r in train_records(run_dir).items()}


def result(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "result.json").read_text())


def events(run_dir: Path, name: str) -> list[dict[str, Any]]:
    out = []
    with open(Path(run_dir) / "metrics.jsonl") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("kind") == "event" and rec.get("event") == name:
                out.append(rec)
    return out
