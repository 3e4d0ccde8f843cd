"""The distributed lifetime of one training process: process group, failure watchdog, preemption signals.

``with Runtime(cfg) as rt:`` sets everything up; leaving the block normally shuts down cleanly (watchdog
stopped on every rank before any rank leaves, so the store host exiting first is not mistaken for a
failure). Leaving it with an exception in a multi-rank job tells the other ranks, prints the traceback and
exits this process with status 1 at once, so that nothing waits on a collective that can never complete; a
collective that failed because a peer is gone (closed connection) ends with one line naming the peer and
status 3. A preemption signal is checked against the peers' heartbeats first: with a peer gone it is a
launcher ending a failed step, and the rank exits instead of waiting for a collective save.
Bad input (a damaged shard, a configuration error) is no crash: one line naming the file, and every rank
exits 2.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import traceback
from collections.abc import Sequence
from types import TracebackType

import torch.distributed as dist

from cluster import dist_env as dist_env_mod
from cluster.errors import is_bad_input
from cluster.preemption import PreemptionHandler
from cluster.process_group import (
    BAD_INPUT_REASON,
    EXIT_BAD_INPUT,
    EXIT_PEER_FAILED,
    FailureWatchdog,
    ProcessGroupInfo,
    abort_process,
    destroy,
    init,
    lost_peer,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """What the runtime needs: the process-group backend ("auto", "nccl", "gloo"), the collectives' timeout
    and the signals that request a preemption save (none for an evaluation: it is rerun, not resumed).
    ``TrainConfig.runtime`` composes it from the training config's fields of the same names."""

    backend: str = "auto"
    dist_timeout_s: float = 600.0
    signals: Sequence[str] = ()


class Runtime:
    """Process group + watchdog + preemption handler for the duration of a ``with`` block."""

    def __init__(self, cfg: RuntimeConfig, watchdog_poll_s: float = 1.0):
        self.cfg = cfg
        self.env = dist_env_mod.detect()
        self.pg: ProcessGroupInfo | None = None
        self.watchdog: FailureWatchdog | None = None
        self.preemption = PreemptionHandler(cfg.signals)
        self._poll_s = watchdog_poll_s

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    def __enter__(self) -> Runtime:
        self.preemption.install()  # before the rendezvous: a signal during set-up is not lost
        self.pg = init(self.env, self.cfg.backend, self.cfg.dist_timeout_s)
        self.watchdog = FailureWatchdog(self.env, poll_s=self._poll_s).start()
        if self.env.world_size > 1:
            self.preemption.on_signal = self.watchdog.wake
            if self.preemption.requested:  # arrived during the set-up
                self.watchdog.wake(self.preemption.received or "signal")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.preemption.uninstall()
        if exc is None:
            self.shutdown()
            return False
        if self.env.world_size > 1 and is_bad_input(exc):
            print(f"[rank {self.env.rank}] error: {exc}", file=sys.stderr, flush=True)
            abort_process(self.watchdog, f"{BAD_INPUT_REASON}{exc}", code=EXIT_BAD_INPUT)
        if self.env.world_size > 1:
            peer = lost_peer(exc, self.watchdog)
            if peer is not None:
                first = (str(exc).splitlines() or [""])[0][:300]
                msg = f"[rank {self.env.rank}] aborting: lost a peer, {peer}: {first}"
                print(msg, file=sys.stderr, flush=True)
                abort_process(self.watchdog, f"lost {peer}", code=EXIT_PEER_FAILED)
            text = "".join(traceback.format_exception(exc_type, exc, tb))
            print(f"[rank {self.env.rank}] training failed:\n{text}", file=sys.stderr, flush=True)
            abort_process(self.watchdog, f"{exc_type.__name__ if exc_type else 'error'}: {exc}", code=1)
        # One process: nobody to hang on; let the caller see the exception.
        if self.watchdog is not None:
            self.watchdog.stop()
        destroy()
        return False

    def shutdown(self) -> None:
        """Clean, collective shutdown (every rank)."""
        if self.watchdog is not None:
            self.watchdog.stop()
        if dist.is_initialized():
            dist.barrier()  # every watchdog is stopped before the store host may leave
        destroy()
