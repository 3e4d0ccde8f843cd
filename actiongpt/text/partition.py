"""Deterministic partition of the label set across ranks or Slurm array tasks.

A label goes to part ``sha256(label) mod n``: every process computes the same assignment from the
label alone, even if the processes read their label lists in different orders, and all k descriptions
of a label come from one part (one file), which keeps part files independent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from actiongpt.config import ConfigError


@dataclass(frozen=True)
class Part:
    index: int
    count: int
    source: str = "explicit"

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"part {self.index}/{self.count} ({self.source}) is not 0 <= i < n")

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}-of-{self.count:05d}"


def parse_part(text: str) -> Part:
    """``"i/n"`` -> Part(i, n)."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as exc:
        raise ConfigError(f"part {text!r} is not of the form i/n (e.g. 0/4)") from exc
    return Part(i, n, "explicit")


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError as exc:
        raise ConfigError(f"environment variable {name}={env[name]!r} is not an integer") from exc


def part_from_env(env: Mapping[str, str], explicit: str | None = None) -> Part:
    """The part of this process: explicit ``i/n``, else a Slurm array task, else RANK/WORLD_SIZE, else 0/1.

    Slurm array ids need not start at 0 (``--array=1-8``): the index is taken relative to
    ``SLURM_ARRAY_TASK_MIN``.
    """
    if explicit:
        return parse_part(explicit)
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        task = _int(env, "SLURM_ARRAY_TASK_ID") - (
            _int(env, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
        )
        return Part(task, _int(env, "SLURM_ARRAY_TASK_COUNT"), "slurm-array")
    if "RANK" in env and "WORLD_SIZE" in env:
        return Part(_int(env, "RANK"), _int(env, "WORLD_SIZE"), "rank")
    return Part(0, 1, "single")


def label_part(label: str, count: int) -> int:
    return int.from_bytes(hashlib.sha256(label.encode("utf-8")).digest()[:8], "big") % count


def select_labels(labels: Iterable[str], part: Part) -> list[str]:
    """The labels of ``part``, in their input order."""
    return [lab for lab in labels if label_part(lab, part.count) == part.index]
