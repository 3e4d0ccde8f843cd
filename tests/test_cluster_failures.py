"""A failing or hung rank ends the whole job with non-zero statuses within the timeout (no launcher help).

The ranks are started as plain processes with srun's variables (SLURM_PROCID, SLURM_NTASKS, ...), as srun
without ``--kill-on-bad-exit`` would, so nothing outside our runtime stops the surviving rank.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.dist_helpers import launch as L

pytestmark = pytest.mark.dist


def _srun_like(tmp: Path, extra: list[str], timeout_s: int) -> tuple[list[int], float, list[str]]:
    port = L.free_port()
    procs, logs = [], []
    t0 = time.monotonic()
    for rank in range(2):
        env = L.base_env()
        env.update(
            SLURM_PROCID=str(rank),
            SLURM_NTASKS="2",
            SLURM_STEP_NUM_TASKS="2",
            SLURM_LOCALID=str(rank),
            SLURM_NNODES="1",
            SLURM_JOB_ID="4242",
            SLURM_JOB_NODELIST="localhost",
            MASTER_PORT=str(port),
        )
        log = tmp / f"rank{rank}.log"
        logs.append(log)
        cmd = [
            sys.executable,
            "-m",
            L.TOY,
            "--run-dir",
            str(tmp / "run"),
            f"dist_timeout_s={timeout_s}",
            *extra,
        ]
        procs.append(L.start(cmd, env=env, log=log))
    codes = []
    try:
        for p in procs:
            codes.append(p.wait(timeout=timeout_s + 60))
    finally:
        for p in procs:
            if p.poll() is None:
                L.kill_all(p)
    return codes, time.monotonic() - t0, [lg.read_text() for lg in logs]


def test_rank_that_raises_stops_every_rank_nonzero(tmp_path: Path) -> None:
    codes, elapsed, logs = _srun_like(tmp_path, ["--fail-at-step", "3", "--fail-rank", "1"], timeout_s=30)
    assert codes[1] == 1, (codes, logs)  # its own exception
    assert codes[0] != 0, (codes, logs)  # told by the watchdog (3) or by a broken collective (1)
    assert elapsed < 30 + 20, f"took {elapsed:.1f}s"
    assert "injected failure on rank 1 at step 3" in logs[1]
    assert "rank 0/2" in logs[0] and "via srun" in logs[0]  # the srun path of dist_env was used


def test_hung_rank_is_timed_out_and_every_rank_exits_nonzero(tmp_path: Path) -> None:
    codes, elapsed, logs = _srun_like(tmp_path, ["--hang-at-step", "3", "--hang-rank", "1"], timeout_s=8)
    assert all(c != 0 for c in codes), (codes, logs)
    assert elapsed < 8 + 30, f"took {elapsed:.1f}s"
    assert "aborting: another rank failed" in logs[1]  # the hung rank was told by the watchdog
