"""Process-group set-up and tear-down, and a watchdog that turns one rank's failure into a job failure.

A collective with a dead peer either errors (gloo: connection closed) or blocks until the process-group
timeout. A rank that is *not* in a collective when its peer dies (computing, loading data, stuck) would never
notice, and a peer that vanished without closing its connections (power cut, link down) leaves a collective
blocked. The watchdog closes both gaps: a failing rank publishes an abort key in the rendezvous store, every
rank polls the store and writes a heartbeat there and watches the next rank's, and a rank that sees the
key, a silent peer, or no store at all exits non-zero naming the peer.

A preemption signal that arrives when a peer is already gone is a launcher tearing down a failed step (srun
``--kill-on-bad-exit``, torchrun): the rank exits at once instead of waiting for a collective save that can
never complete. With every peer alive the signal stays a preemption request (:meth:`FailureWatchdog.wake`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import socket
import sys
import threading
import time

import torch
import torch.distributed as dist

from cluster.dist_env import DistEnv, export, local_address

log = logging.getLogger(__name__)

# torchrun's elastic restarts reuse the agent's store: key the abort flag by the attempt so that a failure
# in one attempt does not kill the next.
_ATTEMPT = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
ABORT_KEY = f"actiongpt/abort/{_ATTEMPT}"
_ALIVE = f"actiongpt/alive/{_ATTEMPT}/"  # + rank: heartbeat counter
_STOPPED = f"actiongpt/stopped/{_ATTEMPT}/"  # + rank: left cleanly (its heartbeat stops on purpose)
_WHERE = f"actiongpt/where/{_ATTEMPT}/"  # + rank: "host address", to name a lost peer
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
        "rank %d/%d (local %d) on %s (%s) via %s, backend %s, master %s:%d, timeout %.0fs",
        dist_env.rank,
        dist_env.world_size,
        dist_env.local_rank,
        socket.gethostname(),
        local_address(dist_env.master_addr, dist_env.master_port),
        dist_env.launcher,
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
    """Polls the rendezvous store for an abort key and heartbeats; exits the process when a peer is lost.

    Uses its own store client (a separate TCP connection) so it never competes with the process group's.
    ``peer_timeout_s``: a rank declares the next rank lost when its heartbeat has not moved for that long
    (a peer gone without closing its connections: power cut on another host, link down, frozen process).
    """

    def __init__(
        self,
        dist_env: DistEnv,
        poll_s: float = 1.0,
        connect_timeout_s: float = 60.0,
        peer_timeout_s: float = 20.0,
    ):
        self.env = dist_env
        self.poll_s = poll_s
        self.peer_timeout_s = peer_timeout_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._signal: str | None = None
        self._thread: threading.Thread | None = None
        self._store: dist.Store | None = None
        self._connect_timeout_s = connect_timeout_s
        self._seen: dict[int, tuple[int, float]] = {}  # watched rank -> (heartbeat, when it last moved)
        # A store request to a host that vanished without closing the connection blocks (whatever the store's
        # timeout says): a second thread ends the rank when no request has completed for this long.
        self.store_timeout_s = max(15.0, 5 * poll_s)
        self._last_ok = time.monotonic()

    def _connect(self) -> dist.Store:
        store = dist.TCPStore(
            self.env.master_addr,
            self.env.master_port,
            is_master=False,
            timeout=dt.timedelta(seconds=self._connect_timeout_s),
            wait_for_workers=False,
        )
        return store

    def start(self) -> FailureWatchdog:
        if self.env.world_size == 1:
            return self
        self._store = self._connect()
        where = f"{socket.gethostname()} {local_address(self.env.master_addr, self.env.master_port)}"
        self._store.set(f"{_WHERE}{self.env.rank}", where)
        self._store.add(f"{_ALIVE}{self.env.rank}", 1)
        self._last_ok = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="actiongpt-watchdog", daemon=True)
        self._thread.start()
        threading.Thread(target=self._deadman, name="actiongpt-watchdog-store", daemon=True).start()
        return self

    def _deadman(self) -> None:
        while not self._stop.wait(self.poll_s):
            silent = time.monotonic() - self._last_ok
            if silent > self.store_timeout_s and not self._stop.is_set():
                store = f"{self.env.master_addr}:{self.env.master_port}"
                self._die(f"rendezvous store at {store} has not answered for {silent:.0f}s; its host is gone")

    def wake(self, signal_name: str) -> None:
        """A preemption signal arrived (called from the signal handler: only sets state)."""
        self._signal = signal_name
        self._wake.set()

    def _run(self) -> None:
        failures = 0
        while True:
            self._wake.wait(self.poll_s)
            if self._stop.is_set():
                return
            signalled, self._signal = self._signal, None
            self._wake.clear()
            try:
                assert self._store is not None
                self._store.add(f"{_ALIVE}{self.env.rank}", 1)
                if self._store.check([ABORT_KEY]):
                    reason = self._store.get(ABORT_KEY).decode(errors="replace")
                    if self._stop.is_set():
                        return
                    if BAD_INPUT_REASON in reason:
                        self._die(reason.split(BAD_INPUT_REASON, 1)[1], EXIT_BAD_INPUT)
                    self._die(f"another rank failed: {reason}")
                if signalled:
                    self._confirm_peers(signalled)
                else:
                    self._check_heartbeats()
                failures = 0
                self._last_ok = time.monotonic()
            except Exception as exc:  # store host gone (its rank died) or network error
                if self._stop.is_set():
                    return
                failures += 1
                if failures >= 3:
                    store = f"{self.env.master_addr}:{self.env.master_port}"
                    self._die(f"rendezvous store at {store} unreachable ({exc!r}); a peer has probably died")

    def _beats(self) -> dict[int, int]:
        assert self._store is not None
        return {r: int(self._store.add(f"{_ALIVE}{r}", 0)) for r in range(self.env.world_size)}

    def _lost(self, ranks: list[int]) -> list[int]:
        """Of ``ranks``, those that did not leave cleanly."""
        assert self._store is not None
        return [r for r in ranks if not self._store.check([f"{_STOPPED}{r}"])]

    def _check_heartbeats(self) -> None:
        """Each rank watches the next one (a ring): every rank is watched, at one store read per rank."""
        r = (self.env.rank + 1) % self.env.world_size
        assert self._store is not None
        beat = int(self._store.add(f"{_ALIVE}{r}", 0))
        now = time.monotonic()
        seen = self._seen.get(r)
        if seen is None or beat != seen[0]:
            self._seen[r] = (beat, now)
        elif now - seen[1] > self.peer_timeout_s and self._lost([r]):
            reason = f"no heartbeat from {self.describe_peers([r])} for {now - seen[1]:.0f}s"
            self.signal_failure(reason)
            self._die(f"lost a peer: {reason}")

    def _confirm_peers(self, signal_name: str) -> None:
        """After a preemption signal: is every peer still alive? If not, the signal is a launcher tearing
        down a failed step, and waiting for a collective save would only wait for the SIGKILL."""
        others = [r for r in range(self.env.world_size) if r != self.env.rank]
        start = self._beats()
        deadline = time.monotonic() + max(5 * self.poll_s, 5.0) + 1.0
        lagging = others
        while time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(min(0.25, self.poll_s))
            assert self._store is not None
            self._store.add(f"{_ALIVE}{self.env.rank}", 1)
            now = self._beats()
            self._last_ok = time.monotonic()
            lagging = [r for r in others if now[r] <= start[r]]
            if not lagging:
                return  # every peer is alive: a preemption, saved collectively at the next step boundary
        lost = self._lost(lagging)
        if lost and not self._stop.is_set():
            self._die(
                f"{signal_name} while {self.describe_peers(lost)} is gone (no heartbeat): the launcher "
                "is ending a failed step; exiting without a checkpoint (the last complete one is kept)"
            )

    def describe_peers(self, ranks: list[int]) -> str:
        """``rank 1 (n2 10.77.0.3)`` for each rank, as far as the store still answers."""
        out = []
        for r in ranks:
            where = "?"
            try:
                if self._store is not None and self._store.check([f"{_WHERE}{r}"]):
                    where = self._store.get(f"{_WHERE}{r}").decode(errors="replace")
            except Exception:
                pass
            out.append(f"rank {r} ({where})")
        return ", ".join(out)

    def peers_at(self, address: str) -> str:
        """The ranks whose host has ``address`` (to name the peer of a closed connection), or ``address``."""
        found = []
        try:
            for r in range(self.env.world_size):
                if r != self.env.rank and self._store is not None and self._store.check([f"{_WHERE}{r}"]):
                    where = self._store.get(f"{_WHERE}{r}").decode(errors="replace")
                    if where.split()[-1] == address:
                        found.append(f"rank {r} ({where})")
        except Exception:
            pass
        return " or ".join(found) if found else address

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
        if self._stop.is_set() and self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s * 5 + 5)
            self._thread = None
        try:  # our heartbeat stops on purpose: rank 0 must not take us for lost
            if self._store is not None:
                self._store.set(f"{_STOPPED}{self.env.rank}", "1")
        except Exception:
            pass


# A collective failing because the peer's end went away; gloo names the peer ("... [ADDR]:PORT ...").
_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
_PEER_ADDR = re.compile(r"\[([0-9A-Fa-f.:]+)\]:\d+")


def lost_peer(exc: BaseException, watchdog: FailureWatchdog | None) -> str | None:
    """If ``exc`` is a collective failing because a peer is gone, a description naming the peer."""
    text = str(exc)
    m = _PEER_ADDR.search(text)
    if m is None or not any(g in text for g in _GONE):
        return None
    addr = m.group(1)
    return watchdog.peers_at(addr) if watchdog is not None else addr


def abort_process(watchdog: FailureWatchdog | None, reason: str, code: int = 1) -> None:
    """Exit this rank now after a failure, telling the others first.

    ``os._exit`` skips interpreter shutdown, where process-group and writer-thread destructors can block on
    peers that are gone; the failure has already been logged by the caller.
    """
    if watchdog is not None:
        watchdog.signal_failure(reason)
        if watchdog.env.rank == 0:  # usually the store host: let the others read the key before it goes
            time.sleep(min(2 * watchdog.poll_s, 2.0))
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
