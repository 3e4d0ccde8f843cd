"""Data errors and the read report that counts what was skipped and why.

Two kinds of "not loaded":
- a *problem* is bad input (missing file, NaN poses, a record without a field, ...). Strict readers raise
  `DataError` on the first one; lenient readers skip the record and count it.
- a *rejection* is valid input that a rule leaves out (too short, an excluded action, a non-motion npz).
  It is only counted, never raised, in both modes.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """Bad input data. The message names the file, the record (if any) and the problem.

    ``reason`` is a short machine-readable code (e.g. ``"missing_amass"``) used to count skips.
    """

    def __init__(
        self, path: str | Path | None, problem: str, *, record: str | None = None, reason: str = "bad_data"
    ) -> None:
        self.path = str(path) if path is not None else None
        self.record = record
        self.problem = problem
        self.reason = reason
        where = [p for p in (self.path, f"record {record}" if record is not None else None) if p]
        super().__init__(": ".join([*where, problem]))


class Skipped(DataError):
    """Valid input that is deliberately not used (non-motion npz, motion shorter than the minimum).

    A subclass of `DataError` so that a direct caller of a loader still gets an exception, but
    `ReadReport.skip` counts it even in strict mode.
    """


@dataclass
class ReadReport:
    """What a reader loaded and what it skipped, by reason, with the first few examples per reason.

    ``strict=True`` turns every `problem` into a raised `DataError`; rejections are always counted.
    """

    strict: bool = False
    max_examples: int = 3
    loaded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    problems: set[str] = field(default_factory=set)  # reasons that were bad input, not rules
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)  # informational (e.g. kept below 30 fps)

    def _example(self, reason: str, message: str) -> None:
        ex = self.examples.setdefault(reason, [])
        if len(ex) < self.max_examples:
            ex.append(message)

    def problem(self, error: DataError) -> None:
        """Record bad input: raise it when strict, else count it under ``error.reason``."""
        if isinstance(error, Skipped):
            self.skip(error.reason, str(error))
            return
        if self.strict:
            raise error
        self.problems.add(error.reason)
        self.skipped[error.reason] += 1
        self._example(error.reason, str(error))
        logger.debug("skipped (%s): %s", error.reason, error)

    def skip(self, reason: str, message: str, count: int = 1) -> None:
        """Count ``count`` items left out by a rule (never raises)."""
        if count <= 0:
            return
        self.skipped[reason] += count
        self._example(reason, message)

    def note(self, reason: str, message: str) -> None:
        """Count something worth knowing that did not skip anything."""
        self.notes[reason] += 1
        self._example(reason, message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "skipped": dict(sorted(self.skipped.items())),
            "problems": sorted(self.problems),
            "notes": dict(sorted(self.notes.items())),
            "examples": {k: list(v) for k, v in sorted(self.examples.items())},
        }

    def summary(self) -> str:
        """One line per reason, problems marked, e.g. for a log or the command line."""
        lines = [f"loaded: {self.loaded}"]
        for reason, n in sorted(self.skipped.items()):
            tag = " (bad input)" if reason in self.problems else ""
            first = self.examples.get(reason, [""])[0]
            lines.append(f"skipped {reason}{tag}: {n}" + (f"  e.g. {first}" if first else ""))
        for reason, n in sorted(self.notes.items()):
            first = self.examples.get(reason, [""])[0]
            lines.append(f"note {reason}: {n}" + (f"  e.g. {first}" if first else ""))
        return "\n".join(lines)
