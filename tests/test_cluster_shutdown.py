"""Shutdown after a lost peer vs. a real preemption (torchrun, 2 gloo ranks of the toy trainer).

torchrun answers a dead worker by sending SIGTERM to the others, and SIGTERM is also a preemption signal. A
survivor must tell the two apart: with a peer gone it exits within seconds (no collective save can
complete); with every peer alive the same signal still saves collectively. A peer that stops answering
without closing its connections (frozen; on another host: power cut or link down) is found by heartbeat.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.dist_helpers import launch as L

pytestmark = pytest.mark.dist


def _start(tmp: Path, delay: float) -> tuple[object, Path, Path]:
    run, log = tmp / "run", tmp / "torchrun.log"
    cmd = L.torchrun_cmd(2, ["--run-dir", str(run), "--step-delay", str(delay), "max_steps=400",
                             "ckpt_every=2", "dist_timeout_s=300"])  # fmt: skip
    proc = L.start(cmd, log=log)
    L.wait_for(lambda: L.last_step(run) >= 1, 120, proc, "step 1")
    return proc, run, log


def _by_rank(proc) -> dict[int, psutil.Process]:
    L.wait_for(lambda: len(L.workers(proc)) >= 2, 30, proc, "workers")
    return {int(w.environ()["RANK"]): w for w in L.workers(proc)}


def _wait_gone(procs: list[psutil.Process], since: float, timeout: float) -> float:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    assert not alive, f"still running after {timeout}s: {alive}"
    return time.monotonic() - since


def test_survivor_of_a_killed_peer_exits_in_seconds_without_a_save(tmp_path: Path) -> None:
    # The survivor sleeps 30 s after each step: it reaches no collective that could fail; only the
    # launcher's SIGTERM tells it something happened.
    proc, run, log = _start(tmp_path, delay=30)
    try:
        ranks = _by_rank(proc)
        steps_before = L.last_step(run)
        t0 = time.monotonic()
        ranks[1].kill()
        took = _wait_gone([ranks[0]], t0, 25)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            L.kill_all(proc)
    text = log.read_text()
    assert took < 15, f"survivor exited {took:.1f}s after its peer's death"
    assert "aborting: SIGTERM while rank 1" in text and "is gone" in text, text[-3000:]
    assert L.events(run, "preempted") == [] and L.last_step(run) == steps_before  # no save was attempted
    print(f"peer killed -> survivor exited after {took:.1f}s")


def test_sigterm_with_every_peer_alive_is_still_a_collective_save(tmp_path: Path) -> None:
    proc, run, log = _start(tmp_path, delay=2)
    try:
        for w in _by_rank(proc).values():  # Slurm's preemption signals every task
            w.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            L.kill_all(proc)
    preempted = L.events(run, "preempted")
    assert len(preempted) == 1 and preempted[0]["signal"] == "SIGTERM"
    assert (run / "checkpoints" / f"step-{preempted[0]['step']:08d}").is_dir()


def test_frozen_peer_is_found_by_heartbeat(tmp_path: Path) -> None:
    proc, _, log = _start(tmp_path, delay=0.05)
    try:
        ranks = _by_rank(proc)
        t0 = time.monotonic()
        ranks[1].suspend()  # connections stay open: the survivor's collective would wait 300 s
        took = _wait_gone([ranks[0]], t0, 60)
    finally:
        for p in L.workers(proc):
            p.kill()
        if proc.poll() is None:
            L.kill_all(proc)
    assert took < 45, f"took {took:.1f}s"
    assert "lost a peer: no heartbeat from rank 1" in log.read_text()


def test_a_cancelled_job_is_saved_but_not_requeued(tmp_path: Path, monkeypatch) -> None:
    """scancel sends SIGTERM, a preemption signal: the trainer saves, but must not requeue the job."""
    from cluster.preemption import requeue_slurm_job

    calls = tmp_path / "calls"
    fake = tmp_path / "scontrol"
    fake.write_text(f"""#!/bin/sh
echo "$@" >> {calls}
[ "$1" = show ] && echo "JobId=7 JobName=x JobState=$STATE Reason=None"
exit 0
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setenv("STATE", "CANCELLED")
    assert requeue_slurm_job({"SLURM_JOB_ID": "7"}) is False
    assert "requeue" not in calls.read_text()
    monkeypatch.setenv("STATE", "RUNNING")  # Slurm's --signal before the time limit, or a preemption
    assert requeue_slurm_job({"SLURM_JOB_ID": "7"}) is True
    assert calls.read_text().splitlines()[-1] == "requeue 7"
