"""Sizes and sha256 digests of a checkpoint's files: recorded in the marker at save, checked at resume.

Hashing is the only part of a save that reads the data back, so it is split over the ranks: rank 0 lists the
directory after the barrier that ends the write, every rank takes its share of that listing by a
deterministic size-balanced assignment, and the results meet in one ``all_gather_object``. Outside a process
group (tests, tools) one process does all of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.distributed as dist

from actiongpt.io_utils import file_sha256

MARKER_NAMES = ("COMPLETE", "COMPLETE.tmp")


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather(value: Any) -> list[Any]:
    _, world = _world()
    if world == 1:
        return [value]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, value)
    return out


def list_files(path: Path) -> dict[str, int]:
    """``{relative path: bytes}`` of the files under a checkpoint directory, without the marker."""
    root = Path(path)
    return {
        f.relative_to(root).as_posix(): f.stat().st_size
        for f in sorted(root.rglob("*"))
        if f.is_file() and f.relative_to(root).as_posix() not in MARKER_NAMES
    }


def share(sizes: dict[str, int], world: int, rank: int) -> list[str]:
    """The files ``rank`` hashes: largest first, each to the least loaded rank (ties: lowest rank)."""
    load = [0] * world
    mine: list[str] = []
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        r = min(range(world), key=lambda i: (load[i], i))
        load[r] += sizes[name]
        if r == rank:
            mine.append(name)
    return mine


def file_records(path: Path) -> dict[str, dict[str, Any]]:
    """Collective when a process group exists: ``{relative path: {"bytes", "sha256"}}`` of every file."""
    rank, world = _world()
    listing: list[Any] = [list_files(path) if rank == 0 else None]
    if world > 1:
        dist.broadcast_object_list(listing, src=0)  # rank 0's listing decides every rank's share
    local = {}
    for rel in share(listing[0], world, rank):
        f = Path(path) / rel
        local[rel] = {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
    merged: dict[str, dict[str, Any]] = {}
    for part in _gather(local):
        merged.update(part)
    return dict(sorted(merged.items()))


def _problem(path: Path, files: dict[str, dict[str, Any]], names: list[str]) -> str | None:
    for rel in names:
        f = path / rel
        if not f.is_file():
            return f"{rel} is missing"
        size = f.stat().st_size
        if size != files[rel].get("bytes"):
            return f"{rel} has {size} bytes, the marker recorded {files[rel].get('bytes')}"
    for rel in names:
        if file_sha256(path / rel) != files[rel].get("sha256"):
            return f"{rel} does not match its recorded sha256 (bytes changed)"
    return None


def damage(path: Path, meta: dict[str, Any]) -> str | None:
    """Collective when a process group exists: why the files of a checkpoint no longer match its marker,
    or None when they all do (every rank gets the same answer).

    Sizes are checked before digests. Files the marker does not list (a universal checkpoint converted
    later) are not checked; a marker written before digests were recorded checks nothing.
    """
    files = meta.get("files")
    if not isinstance(files, dict):
        return None
    rank, world = _world()
    sizes = {rel: int(rec.get("bytes") or 0) for rel, rec in files.items()}
    found = _gather(_problem(Path(path), files, share(sizes, world, rank)))
    return next((p for p in found if p is not None), None)
