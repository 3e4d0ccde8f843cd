"""Checkpoint directories: ``<run>/checkpoints/step-NNNNNNNN/``, complete only once the marker is written.

Every rank writes its part (DCP files or DeepSpeed shards) into the step directory; after a barrier rank 0
writes ``COMPLETE`` (JSON: step, world size, engine, the size and sha256 of every file, ...) atomically,
*last*. A directory without a valid marker — a save killed half-way, even with ``kill -9`` — is never resumed
from, and is removed later. Resume takes the newest complete directory whose files still match their
recorded sizes and digests (damaged ones are named and skipped); rotation keeps the newest ``keep_last``
checkpoints not known to be damaged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch.distributed as dist

from actiongpt.config import ConfigError
from cluster.checkpoint_digest import damage, file_records

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
_STEP_DIR = re.compile(r"^step-(\d{8,})$")


@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    step: int
    meta: dict[str, Any]


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step:08d}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_marker(path: Path, meta: Mapping[str, Any]) -> None:
    """Write ``path/COMPLETE`` atomically (tmp file, fsync, rename, fsync dir)."""
    tmp = path / (MARKER + ".tmp")
    with open(tmp, "w") as f:
        json.dump(dict(meta), f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / MARKER)
    _fsync_dir(path)


def read_marker(path: Path) -> dict[str, Any] | None:
    """The marker of a checkpoint directory, or None when it is missing or unreadable (= incomplete)."""
    marker = Path(path) / MARKER
    if not marker.is_file():
        return None
    try:
        meta = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable marker (%s); treating the checkpoint as incomplete", marker, exc)
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
        log.warning("%s: marker without an integer 'step'; treating the checkpoint as incomplete", marker)
        return None
    return meta


def scan(root: Path) -> tuple[list[CheckpointInfo], list[Path]]:
    """(complete checkpoints sorted by step, incomplete step directories) under ``root``."""
    root = Path(root)
    complete: list[CheckpointInfo] = []
    incomplete: list[Path] = []
    if not root.is_dir():
        return complete, incomplete
    for child in root.iterdir():
        m = _STEP_DIR.match(child.name)
        if not m or not child.is_dir():
            continue
        meta = read_marker(child)
        if meta is None:
            incomplete.append(child)
        elif meta["step"] != int(m.group(1)):
            log.warning("%s: marker says step %s; ignoring this directory", child, meta["step"])
            incomplete.append(child)
        else:
            complete.append(CheckpointInfo(child, meta["step"], meta))
    complete.sort(key=lambda c: c.step)
    incomplete.sort()
    return complete, incomplete


def latest(root: Path) -> CheckpointInfo | None:
    """The newest complete checkpoint under ``root``, or None."""
    complete, _ = scan(root)
    return complete[-1] if complete else None


def newest_usable(root: Path) -> CheckpointInfo | None:
    """For readers outside training (export, evaluation): the newest complete checkpoint under ``root`` whose
    files match its marker; damaged ones are skipped with a warning, ConfigError when all are. Collective
    when a process group exists (every rank calls it)."""
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    return CheckpointManager(root, 1, rank).newest_usable(lambda info: None)


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class CheckpointManager:
    """Collective save into step directories with completion markers, keep-last-K rotation and discovery."""

    def __init__(self, root: Path, keep_last: int, rank: int):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.root = Path(root)
        self.keep_last = keep_last
        self.rank = rank
        self.damaged: set[Path] = set()  # complete checkpoints whose files failed verification

    def latest(self) -> CheckpointInfo | None:
        return latest(self.root)

    def newest_usable(self, check: Callable[[CheckpointInfo], None]) -> CheckpointInfo | None:
        """Collective: the newest complete checkpoint whose files match its marker, or None when there is
        none. Every rank returns the same checkpoint or raises the same ConfigError.

        ``check`` raises ConfigError when a checkpoint belongs to another experiment; it runs on the marker
        alone, before any file is read. A damaged checkpoint is named in a warning and skipped in favour of
        the next older one; when every complete checkpoint is damaged this raises ConfigError.
        """
        found: list[Any] = [scan(self.root)[0] if self.rank == 0 else None]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast_object_list(found, src=0)  # one listing for all ranks
        complete: list[CheckpointInfo] = found[0]
        problems: list[str] = []
        for info in reversed(complete):
            check(info)
            why = damage(info.path, info.meta)
            if why is None:
                return info
            self.damaged.add(info.path)
            problems.append(f"{info.path.name}: {why}")
            if self.rank == 0:
                log.warning("checkpoint %s is damaged (%s); trying the one before it", info.path, why)
        if problems:
            raise ConfigError(
                f"{self.root}: no usable checkpoint, every complete one is damaged ({'; '.join(problems)}); "
                "move them away to start this run again from step 0, or restore them from a copy"
            )
        return None

    def save(self, step: int, write: Callable[[Path], None], meta: Mapping[str, Any]) -> CheckpointInfo:
        """Collective: every rank calls ``write(step_dir)``; the marker is written after all have finished.

        Returns the info of the completed checkpoint (every rank). The caller's ``write`` must itself be
        collective-safe (DCP / DeepSpeed save).
        """
        path = step_dir(self.root, step)
        t0 = time.perf_counter()
        if self.rank == 0:
            self.root.mkdir(parents=True, exist_ok=True)
            if path.exists():
                # Left over from an attempt that died during this very save: start clean so no stale
                # shard of another world size survives next to the new ones.
                shutil.rmtree(path)
            path.mkdir(parents=True)
        self.damaged.discard(path)
        _barrier()
        write(path)
        _barrier()  # every rank's files are on disk before the marker says so
        t1 = time.perf_counter()
        files = file_records(path)  # collective: the ranks share the hashing
        full_meta = dict(meta)
        full_meta["step"] = step
        full_meta["files"] = files
        full_meta["bytes"] = sum(rec["bytes"] for rec in files.values())
        full_meta["digest_seconds"] = round(time.perf_counter() - t1, 4)
        full_meta["save_seconds"] = round(time.perf_counter() - t0, 4)
        if self.rank == 0:
            self._before_marker(path)
            write_marker(path, full_meta)
            self.prune()
        _barrier()
        meta_read = read_marker(path) or full_meta
        return CheckpointInfo(path, step, meta_read)

    def _before_marker(self, path: Path) -> None:
        """Hook point between the data and the marker (tests stall here to kill a save half-way)."""

    def remove_incomplete(self) -> list[Path]:
        """Rank 0, at start-up only (nothing is being written): delete every incomplete step directory."""
        if self.rank != 0:
            return []
        _, incomplete = scan(self.root)
        for path in incomplete:
            log.warning("removing incomplete checkpoint %s (a save that did not finish)", path)
            shutil.rmtree(path, ignore_errors=True)
        return incomplete

    def prune(self) -> list[Path]:
        """Rank 0: keep the newest ``keep_last`` complete checkpoints not known to be damaged; delete every
        complete checkpoint older than the oldest of those, and incomplete directories older than the newest
        complete one. A damaged checkpoint never takes a good one's place. Returns the removed paths."""
        if self.rank != 0:
            return []
        complete, incomplete = scan(self.root)
        good = [c for c in complete if c.path not in self.damaged]
        removed: list[Path] = []
        if len(good) >= self.keep_last:
            oldest_kept = good[-self.keep_last].step
            for info in complete:
                if info.step < oldest_kept:
                    shutil.rmtree(info.path, ignore_errors=True)
                    self.damaged.discard(info.path)
                    removed.append(info.path)
        newest = complete[-1].step if complete else -1
        for path in incomplete:
            m = _STEP_DIR.match(path.name)
            if m and int(m.group(1)) < newest:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        if removed:
            log.info("pruned checkpoints: %s", ", ".join(p.name for p in removed))
        return removed
