"""World-size change for DeepSpeed ZeRO checkpoints: conversion to a universal checkpoint.

A ZeRO-1/2/3 checkpoint stores optimizer state partitioned by data-parallel rank and refuses to load at
another world size. DeepSpeed's ``ds_to_universal`` rewrites it per parameter; ``--inject_missing_state``
is needed on our stack (without it loading fails with an assertion on a missing
``universal_checkpoint_info``). Rank 0 converts once into ``<step dir>/ds_universal`` (with its own marker,
so a conversion killed half-way is redone); the other ranks wait for the marker on the shared file system
rather than in a barrier, whose timeout is meant for collectives, not for a conversion of unknown length.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

CONVERTED_MARKER = "CONVERTED"
FAILED_MARKER = "CONVERSION_FAILED"


def convert(input_dir: Path, output_dir: Path, timeout_s: float = 3600.0) -> Path:
    """Run ``ds_to_universal`` on ``input_dir`` (a DeepSpeed tag folder) into ``output_dir``."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"DeepSpeed checkpoint folder {input_dir} does not exist")
    if output_dir.exists():
        shutil.rmtree(output_dir)
    cmd = [
        sys.executable,
        "-m",
        "deepspeed.checkpoint.ds_to_universal",
        "--input_folder",
        str(input_dir),
        "--output_folder",
        str(output_dir),
        "--num_extract_workers",
        "1",
        "--num_merge_workers",
        "1",
        "--inject_missing_state",
    ]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"ds_to_universal failed on {input_dir} (exit {res.returncode}):\n{tail}")
    (output_dir / CONVERTED_MARKER).write_text(f"{time.perf_counter() - t0:.3f}\n")
    log.info("converted %s to a universal checkpoint in %.1fs", input_dir, time.perf_counter() - t0)
    return output_dir


def ensure_universal(
    step_path: Path, tag: str, universal_tag: str, rank: int, timeout_s: float, barrier: Callable[[], None]
) -> Path:
    """Collective: rank 0 converts ``step_path/tag`` unless already converted; every rank returns once
    ``step_path/universal_tag`` is complete. Raises if the conversion failed or timed out."""
    out = Path(step_path) / universal_tag
    done, failed = out / CONVERTED_MARKER, Path(step_path) / FAILED_MARKER
    if rank == 0:
        failed.unlink(missing_ok=True)  # a failure of an earlier attempt must not stop the waiters below
    barrier()
    if rank == 0:
        if not done.is_file():
            try:
                convert(Path(step_path) / tag, out, timeout_s)
            except Exception as exc:
                failed.write_text(str(exc))
                raise
        return out
    deadline = time.monotonic() + timeout_s
    while not done.is_file():
        if failed.is_file():
            raise RuntimeError(f"rank 0 could not convert {step_path}: {failed.read_text()[:2000]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:.0f}s for the universal conversion of {step_path}")
        time.sleep(0.5)
    return out
