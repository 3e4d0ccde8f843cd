"""Process-group set-up and tear-down, and a watchdog that turns one rank's failure into a job failure.

A collective with a dead peer either errors (gloo: connection closed) or blocks until the process-group
timeout. A rank that is *not* in a collective when its peer dies (computing, loading data, stuck) would never
notice. The watchdog closes that gap: a failing rank publishes an abort key in the rendezvous store, every
rank polls the store, and a rank that sees the key — or can no longer reach the store — exits non-zero.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import sys
import threading
import time

import torch
import torch.distributed as dist

from cluster.dist_env import DistEnv, export

log = logging.getLogger(__name__)

# torchrun's elastic restarts reuse the agent's store: key the abort flag by the attempt so that a failure
# in one attempt does not kill the next.
ABORT_KEY = f"actiongpt/abort/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
# Exit status of a rank that stops because another rank failed (distinct from 1 = own exception).
EXIT_PEER_FAILED = 3
# A rank that stops on bad input (a damaged shard) publishes its one line with this prefix; every rank then
# exits with the bad-input status and that line, not as a crash.
EXIT_BAD_INPUT = 2
BAD_INPUT_REASON = "bad input: "


@dataclasses.dataclass
class ProcessGroupInfo:
    env: DistEnv
    backend: str
    device: torch.device
    timeout_s: float


def choose_backend(requested: str = "auto") -> tuple[str, torch.device | None]:
    """``auto``: nccl with one GPU per rank when CUDA is present, gloo on CPU."""
    cuda = torch.cuda.is_available()
    if requested == "auto":
        return ("nccl" if cuda else "gloo"), None
    if requested == "nccl" and not cuda:
        raise RuntimeError("backend 'nccl' requested but CUDA is not available; use 'gloo' or 'auto'")
    if requested not in ("nccl", "gloo"):
        raise RuntimeError(f"unknown process-group backend {requested!r} (nccl | gloo | auto)")
    return requested, None


def init(dist_env: DistEnv, backend: str = "auto", timeout_s: float = 600.0) -> ProcessGroupInfo:
    """Initialise the default process group (also for one rank, so that every code path is the same).

    ``timeout_s`` bounds every collective and the rendezvous: a peer that never arrives or stops answering
    ends the job with an error instead of a hang.
    """
    backend, _ = choose_backend(backend)
    export(dist_env)  # DeepSpeed and env:// read these
    if backend == "nccl":
        device = torch.device("cuda", dist_env.local_rank)
        torch.cuda.set_device(device)
        # Turn NCCL hangs into errors (the default in recent torch; explicit for older ones).
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    else:
        device = torch.device("cpu")
    timeout = dt.timedelta(seconds=timeout_s)
    if not dist.is_initialized():
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=dist_env.rank,
            world_size=dist_env.world_size,
            timeout=timeout,
            **kwargs,
        )
    log.info(
        "rank %d/%d (local %d) via %s, backend %s, master %s:%d, timeout %.0fs",
        dist_env.rank,
        dist_env.world_size,
        dist_env.local_rank,
        dist_env.source,
        backend,
        dist_env.master_addr,
        dist_env.master_port,
        timeout_s,
    )
    return ProcessGroupInfo(dist_env, backend, device, timeout_s)


def destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class FailureWatchdog:
    """Polls the rendezvous store for an abort key; exits the process when a peer failed.

    Uses its own store client (a separate TCP connection) so it never competes with the process group's.
    """

    def __init__(self, dist_env: DistEnv, poll_s: float = 1.0, connect_timeout_s: float = 60.0):
        self.env = dist_env
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._store: dist.Store | None = None
        self._connect_timeout_s = connect_timeout_s

    def _connect(self) -> dist.Store:
        return dist.TCPStore(
            self.env.master_addr,
            self.env.master_port,
            is_master=False,
            timeout=dt.timedelta(seconds=self._connect_timeout_s),
            wait_for_workers=False,
        )

    def start(self) -> FailureWatchdog:
        if self.env.world_size == 1:
            return self
        self._store = self._connect()
        self._thread = threading.Thread(target=self._run, name="actiongpt-watchdog", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(self.poll_s):
            try:
                assert self._store is not None
                if self._store.check([ABORT_KEY]):
                    reason = self._store.get(ABORT_KEY).decode(errors="replace")
                    if self._stop.is_set():
                        return
                    if BAD_INPUT_REASON in reason:
                        self._die(reason.split(BAD_INPUT_REASON, 1)[1], EXIT_BAD_INPUT)
                    self._die(f"another rank failed: {reason}")
                failures = 0
            except Exception as exc:  # store host gone (its rank died) or network error
                if self._stop.is_set():
                    return
                failures += 1
                if failures >= 3:
                    self._die(f"rendezvous store unreachable ({exc!r}); a peer has probably died")

    def _die(self, message: str, code: int = EXIT_PEER_FAILED) -> None:
        what = "error" if code == EXIT_BAD_INPUT else "aborting"
        print(f"[rank {self.env.rank}] {what}: {message}", file=sys.stderr, flush=True)
        logging.shutdown()
        os._exit(code)

    def signal_failure(self, reason: str) -> None:
        """Tell every other rank to stop (best effort: the store may already be gone)."""
        if self.env.world_size == 1:
            return
        # Stop our own polling first: seeing our own key must not turn this rank's status into "peer failed".
        self._stop.set()
        try:
            store = self._store or self._connect()
            store.set(ABORT_KEY, f"rank {self.env.rank}: {reason}"[:2000])
        except Exception as exc:
            print(f"[rank {self.env.rank}] could not publish the failure: {exc!r}", file=sys.stderr)

    def stop(self) -> None:
        """Stop polling (before a clean shutdown, when the store host may exit first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s * 5 + 5)
            self._thread = None


def abort_process(watchdog: FailureWatchdog | None, reason: str, code: int = 1) -> None:
    """Exit this rank now after a failure, telling the others first.

    ``os._exit`` skips interpreter shutdown, where process-group and writer-thread destructors can block on
    peers that are gone; the failure has already been logged by the caller.
    """
    if watchdog is not None:
        watchdog.signal_failure(reason)
        time.sleep(min(2 * watchdog.poll_s, 2.0))  # give the store host a moment to serve the key
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
