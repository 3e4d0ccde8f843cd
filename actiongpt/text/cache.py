"""The descriptions cache: append-only JSONL, one line per generated description.

Each writer (process, rank, array task) owns one part file, takes an exclusive lock on it and flushes
every line as soon as its answer arrives, so a crash loses at most the line being written. Readers
ignore a torn last line (a kill -9 mid-write); a writer reopening such a file cuts the torn tail off
before appending, so the line is neither fatal nor duplicated. Any other malformed line is bad input: a
``CacheError`` naming the file and line (exit 2), the file untouched. ``merge_caches`` unions part files and
reports conflicts; ``load_descriptions`` gives label -> [description i = 0..K-1].
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from actiongpt.io_utils import atomic_write_text
from actiongpt.text.prompt import template_digest

if TYPE_CHECKING:
    from actiongpt.text.backends import Completion
    from actiongpt.text.keys import Request

log = logging.getLogger(__name__)

FAILURES_SUFFIX = ".failures.jsonl"
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {"key": str, "label": str, "i": int, "text": str}


class CacheError(ValueError):
    """A cache file is unreadable or inconsistent; the message names the file and line."""


@dataclass
class ReadResult:
    records: list[dict[str, Any]]
    torn_bytes: int = 0  # size of an ignored incomplete last line


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def make_record(
    req: Request, c: Completion, text: str, *, seed_used: int, attempts: int, latency_s: float | None = None
) -> dict[str, Any]:
    """One cache line: the answer plus everything needed to know where it came from."""
    return {
        "key": req.key,
        "label": req.label,
        "i": req.i,
        "text": text,
        "endpoint": req.endpoint,
        "model": req.model,
        "params": req.params,
        "template": req.template,
        "template_digest": template_digest(req.template),
        "seed": req.seed,
        "seed_used": seed_used,
        "fingerprint": c.fingerprint,
        "response_model": c.response_model,
        "finish_reason": c.finish_reason,
        "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens},
        "attempts": attempts,
        "latency_s": None if latency_s is None else round(latency_s, 3),
        "created": utc_now(),
    }


def read_records(path: str | Path, *, validate: bool = True) -> ReadResult:
    """Read a JSONL cache file, ignoring an incomplete (torn) last line."""
    path = Path(path)
    data = path.read_bytes()
    torn = 0
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        torn = len(data) - cut
        data = data[:cut]
    records = []
    for lineno, raw in enumerate(data.split(b"\n")[:-1] if data else [], start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CacheError(f"{path}: line {lineno} is not valid JSON ({exc})") from exc
        if not isinstance(rec, dict):
            raise CacheError(f"{path}: line {lineno} is not a JSON object")
        if validate:
            for name, tp in REQUIRED_FIELDS.items():
                if not isinstance(rec.get(name), tp) or isinstance(rec.get(name), bool):
                    raise CacheError(f"{path}: line {lineno}: field {name!r} missing or not {tp.__name__}")
        records.append(rec)
    if torn:
        log.warning("%s: ignoring a torn last line (%d bytes)", path, torn)
    return ReadResult(records, torn)


def expand_cache_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories expand to their ``*.jsonl`` files (recursively), without failure logs."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(
                f for f in sorted(p.rglob("*.jsonl")) if not f.name.endswith(FAILURES_SUFFIX) and f.is_file()
            )
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"descriptions cache {p} does not exist")
    seen: set[Path] = set()
    unique = []
    for p in out:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(p)
    return unique


class DescriptionCache:
    """Cached descriptions by key: reads ``read_paths`` and ``write_path``, appends to ``write_path``.

    Only one process may write a given file (enforced with an exclusive ``flock``); several processes
    cooperate by writing separate part files and reading each other's.
    """

    def __init__(
        self, write_path: str | Path | None, read_paths: Iterable[str | Path] = (), *, fsync: bool = False
    ) -> None:
        self.write_path = Path(write_path) if write_path is not None else None
        self.fsync = fsync
        self._records: dict[str, dict[str, Any]] = {}
        self._fh: TextIO | None = None
        self.torn_lines_ignored = 0
        if self.write_path is not None:
            self._open_for_append(self.write_path)
        read = [p for p in map(Path, read_paths) if p.exists()]
        for p in expand_cache_paths(read):
            if self.write_path is not None and p.resolve() == self.write_path.resolve():
                continue
            self._absorb(read_records(p))

    def _open_for_append(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.close()
            raise CacheError(
                f"{path} is being written by another process; give each rank or array task its own part"
            ) from exc
        try:
            result = read_records(path)
        except CacheError:
            fh.close()  # a malformed line in the middle: nothing is appended, the file stays as it is
            raise
        if result.torn_bytes:
            # Cut the torn tail so the next line starts on a fresh line.
            size = path.stat().st_size
            os.truncate(path, size - result.torn_bytes)
            log.warning("%s: removed a torn last line (%d bytes) before appending", path, result.torn_bytes)
        self._absorb(result)
        self._fh = fh

    def _absorb(self, result: ReadResult) -> None:
        self.torn_lines_ignored += 1 if result.torn_bytes else 0
        for rec in result.records:
            self._records.setdefault(rec["key"], rec)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.get(key)

    def records(self) -> Iterator[dict[str, Any]]:
        return iter(self._records.values())

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as a line and flush it to the OS (and to disk with ``fsync=True``)."""
        if self._fh is None:
            raise CacheError("this cache was opened read-only")
        for name, tp in REQUIRED_FIELDS.items():
            if not isinstance(record.get(name), tp):
                raise CacheError(f"record field {name!r} missing or not {tp.__name__}: {record!r}")
        # One write call per line keeps the window for a torn line as small as possible.
        self._fh.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())
        self._records.setdefault(record["key"], record)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()  # also releases the lock
            self._fh = None

    def __enter__(self) -> DescriptionCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FailureLog:
    """Persistent failures of one part: appended as they happen, rewritten at the end of a run with
    only the failures still outstanding, so the file always lists exactly what a rerun will retry."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.previous: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for rec in read_records(self.path, validate=False).records:
                if isinstance(rec.get("key"), str):
                    self.previous[rec["key"]] = rec
        self.current: dict[str, dict[str, Any]] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def record(self, failure: dict[str, Any]) -> None:
        self.current[failure["key"]] = failure
        assert self._fh is not None
        self._fh.write(json.dumps(failure, ensure_ascii=False, sort_keys=True) + "\n")
        self._fh.flush()

    def finalize(self) -> int:
        """Rewrite the file with this run's failures only (removed when there are none)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if not self.current:
            self.path.unlink(missing_ok=True)
            return 0
        lines = (json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n" for rec in self.current.values())
        atomic_write_text(self.path, "".join(lines))
        return len(self.current)


@dataclass
class MergeReport:
    inputs: list[str]
    records: int = 0
    duplicates: int = 0  # same key, same text (harmless: e.g. a part file merged twice)
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # same key, different text
    torn_lines_ignored: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "records": self.records,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "torn_lines_ignored": self.torn_lines_ignored,
        }


def merge_caches(inputs: Iterable[str | Path], out: str | Path) -> MergeReport:
    """Union cache files into ``out`` (sorted by label, i, key; written atomically).

    On a conflict (one key, different texts) the record from the earliest input wins and the conflict
    is reported; the caller decides whether that is an error.
    """
    paths = expand_cache_paths(inputs)
    out = Path(out)
    report = MergeReport(inputs=[str(p) for p in paths])
    merged: dict[str, dict[str, Any]] = {}
    for p in paths:
        result = read_records(p)
        report.torn_lines_ignored += 1 if result.torn_bytes else 0
        for rec in result.records:
            prev = merged.get(rec["key"])
            if prev is None:
                merged[rec["key"]] = rec
            elif prev["text"] == rec["text"]:
                report.duplicates += 1
            else:
                report.conflicts.append(
                    {
                        "key": rec["key"],
                        "label": rec["label"],
                        "i": rec["i"],
                        "kept": prev["text"],
                        "dropped": rec["text"],
                        "dropped_from": str(p),
                    }
                )
    ordered = sorted(merged.values(), key=lambda r: (r["label"], r["i"], r["key"]))
    atomic_write_text(
        out, "".join(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n" for rec in ordered)
    )
    report.records = len(ordered)
    return report


def _matches(rec: dict[str, Any], model: str | None, template: str | None) -> bool:
    if model is not None and rec.get("model") != model:
        return False
    if template is not None:
        tmpl = rec.get("template") or {}
        if template not in (tmpl.get("name"), rec.get("template_digest")):
            return False
    return True


def load_descriptions(
    paths: str | Path | Iterable[str | Path],
    k: int | None = None,
    *,
    model: str | None = None,
    template: str | None = None,
) -> dict[str, list[str]]:
    """label -> descriptions ordered by i (0..K-1), from cache files or directories of them.

    ``k`` keeps the first k per label and raises if a label has fewer. Without ``k`` each label gets
    its contiguous run i = 0, 1, ... ``model`` / ``template`` (name or digest) select records when a
    cache holds several generations; two different texts for one (label, i) are an error.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = expand_cache_paths(paths)
    by_slot: dict[tuple[str, int], tuple[str, str]] = {}
    for p in files:
        for rec in read_records(p).records:
            if not _matches(rec, model, template):
                continue
            slot = (rec["label"], rec["i"])
            prev = by_slot.get(slot)
            if prev is not None and prev[0] != rec["text"]:
                raise CacheError(
                    f"{p}: label {rec['label']!r} i={rec['i']} has two different descriptions (models "
                    f"{prev[1]!r} and {rec.get('model')!r}); select one with model=/template="
                )
            by_slot[slot] = (rec["text"], str(rec.get("model")))
    per_label: dict[str, dict[int, str]] = {}
    for (label, i), (text, _) in by_slot.items():
        per_label.setdefault(label, {})[i] = text
    out: dict[str, list[str]] = {}
    for label in sorted(per_label):
        slots = per_label[label]
        texts = []
        while len(texts) in slots and (k is None or len(texts) < k):
            texts.append(slots[len(texts)])
        if k is not None and len(texts) < k:
            raise CacheError(
                f"label {label!r} has only {len(texts)} contiguous descriptions (i = 0..{len(texts) - 1}) "
                f"in {[str(f) for f in files]}; k = {k} requested"
            )
        out[label] = texts
    return out
