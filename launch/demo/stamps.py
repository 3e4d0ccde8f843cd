"""Stamps: what a demo stage's outputs were made from, so a rerun can skip work whose inputs did not change.

A stamp is ``<run>/.stamps/<name>.json`` holding the stage's *inputs* (config values and the sha256 of the
upstream files it read). A stage is done when its outputs exist and its stamp equals the inputs it would
use now; a changed description cache, config or upstream output therefore redoes exactly the stages
downstream of it. Stamps are written after the outputs are complete, so an interrupted stage reruns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from actiongpt.io_utils import atomic_write_text, file_sha256


def files_sha256(paths: Iterable[str | Path]) -> dict[str, str | None]:
    """sha256 per file (None for a missing file, so the inputs still compare unequal to a real stamp)."""
    return {str(p): file_sha256(p) if Path(p).is_file() else None for p in paths}


def _normal(obj: Any) -> Any:
    """The JSON round trip of ``obj`` (tuples become lists), so equal inputs compare equal."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def stamp_path(run: Path, name: str) -> Path:
    return Path(run) / ".stamps" / f"{name}.json"


def read_stamp(run: Path, name: str) -> Any | None:
    path = stamp_path(run, name)
    try:
        return json.loads(path.read_text())["inputs"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None


def write_stamp(run: Path, name: str, inputs: Any) -> Path:
    return atomic_write_text(
        stamp_path(run, name), json.dumps({"inputs": _normal(inputs)}, indent=1, sort_keys=True) + "\n"
    )


def stamp_matches(run: Path, name: str, inputs: Any) -> bool:
    stored = read_stamp(run, name)
    return stored is not None and stored == _normal(inputs)
