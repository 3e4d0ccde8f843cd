"""Preemption: a signal only sets a flag; the trainer saves collectively at the next step boundary.

Saving inside a signal handler cannot work for sharded checkpoints (every rank must take part, and the
handler may interrupt a collective). Slurm sends the signal (``#SBATCH --signal=USR1@90``) to every task;
the trainer all-reduces the flag so that all ranks stop at the same step even if their signals arrive in
different steps. Rank 0 then requeues the job.

A signal may also come from a launcher tearing down a step after a rank died (srun ``--kill-on-bad-exit``
and torchrun send SIGTERM, a configured preemption signal): ``on_signal`` lets the runtime check that every
peer is alive before anyone waits for the collective save (see ``cluster.process_group.FailureWatchdog``).
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from types import FrameType

log = logging.getLogger(__name__)


def parse_signal(name: str) -> signal.Signals:
    """``"SIGUSR1"``, ``"USR1"`` or ``"10"`` -> ``signal.SIGUSR1``."""
    text = name.strip().upper()
    if text.isdigit():
        return signal.Signals(int(text))
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals[text]
    except KeyError as exc:
        raise ValueError(f"unknown signal {name!r}") from exc


class PreemptionHandler:
    """Installs flag-setting handlers for ``signals``; restores the previous handlers on :meth:`uninstall`."""

    def __init__(self, signals: Sequence[str] = ("SIGUSR1", "SIGTERM")):
        self.signals = [parse_signal(s) for s in signals]
        self._flag = threading.Event()
        self.received: str | None = None
        self._previous: dict[signal.Signals, object] = {}
        # Called with the signal's name after the flag is set; must only set state (it runs in the handler).
        self.on_signal: Callable[[str], None] | None = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        # Only set state here: logging from a signal handler can deadlock on the logging lock.
        self.received = signal.Signals(signum).name
        self._flag.set()
        if self.on_signal is not None:
            self.on_signal(self.received)

    def install(self) -> PreemptionHandler:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("signal handlers can only be installed from the main thread")
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def uninstall(self) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)  # type: ignore[arg-type]
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self._flag.is_set()

    def request(self, reason: str = "manual") -> None:
        """Ask for a save-and-exit at the next step boundary (as if a signal had arrived)."""
        self.received = reason
        self._flag.set()


def slurm_job_to_requeue(environ: Mapping[str, str]) -> str | None:
    """The id ``scontrol requeue`` needs: ``<array job>_<task>`` for array tasks, else the job id."""
    array_job, task = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return environ.get("SLURM_JOB_ID")


def requeue_slurm_job(environ: Mapping[str, str]) -> bool:
    """Run ``scontrol requeue`` for the current job (rank 0 only). Returns True when requeued.

    Not for a job the user cancelled: ``scancel`` sends SIGTERM (a preemption signal), and requeueing then
    would bring back a job its owner meant to end.
    """
    job = slurm_job_to_requeue(environ)
    if not job:
        log.info("not running under Slurm: nothing to requeue; run the same command again to resume")
        return False
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        log.warning("SLURM_JOB_ID=%s but scontrol is not on PATH: cannot requeue", job)
        return False
    shown = subprocess.run([scontrol, "show", "job", "-o", job], capture_output=True, text=True, timeout=60)
    if " JobState=CANCELLED " in f" {shown.stdout} ":
        log.warning("Slurm job %s was cancelled: saved, not requeued", job)
        return False
    res = subprocess.run([scontrol, "requeue", job], capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        log.error("scontrol requeue %s failed (%d): %s", job, res.returncode, res.stderr.strip())
        return False
    log.info("requeued Slurm job %s", job)
    return True
