"""BABEL annotation reader (``train/val/test.json`` and ``extra_train/extra_val.json``) into dataclasses.

Layout (top level ``seq_id -> ann``): ``babel_sid``, ``dur`` (s), ``url``, ``feat_p`` (AMASS path whose
first component is dropped to find the file under the AMASS root, as the original code does),
``seq_ann`` / ``frame_ann`` (dense files) or ``seq_anns`` / ``frame_anns`` (extra files, one entry per
annotator). ``frame_ann: null`` means the sequence only has a sequence label. In ``test.json`` the
label fields are null (or NaN): test labels are held out, and we keep them as ``None``.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import DataError, ReadReport
from .labels import check_label_field

SPLIT_FILES = ("train", "val", "test", "extra_train", "extra_val")
#: splits of the generated dataset beyond BABEL's (`actiongpt data synth`: held-out phrasings only)
EXTRA_SPLITS = ("zeroshot",)


@dataclass(frozen=True)
class BabelLabel:
    """One sequence or frame label. Text fields are None when hidden (test split)."""

    raw_label: str | None
    proc_label: str | None
    seg_id: str | None
    act_cat: tuple[str, ...] | None = None
    start_t: float | None = None  # frame labels only (seconds)
    end_t: float | None = None

    def text(self, label_field: str) -> str | None:
        return getattr(self, check_label_field(label_field))

    @property
    def hidden(self) -> bool:
        return self.raw_label is None and self.proc_label is None


@dataclass(frozen=True)
class BabelAnnotation:
    """One annotator's sequence or frame annotation."""

    labels: tuple[BabelLabel, ...]
    babel_lid: str | None = None
    anntr_id: str | None = None


@dataclass(frozen=True)
class BabelSequence:
    """One BABEL sequence. ``frame_anns`` has one entry per annotator; an entry is None for ``null``."""

    seq_id: str
    babel_sid: int
    dur: float
    feat_p: str
    url: str
    seq_anns: tuple[BabelAnnotation, ...]
    frame_anns: tuple[BabelAnnotation | None, ...]
    source: str = ""  # json file, for messages

    @property
    def amass_relpath(self) -> str:
        """``feat_p`` without its first component (``CMU/CMU/86/x.npz`` -> ``CMU/86/x.npz``)."""
        return amass_relpath(self.feat_p)

    @property
    def seq_ann(self) -> BabelAnnotation | None:
        return self.seq_anns[0] if self.seq_anns else None

    @property
    def frame_ann(self) -> BabelAnnotation | None:
        return self.frame_anns[0] if self.frame_anns else None

    def frame_annotation(self, annotator: int = 0) -> BabelAnnotation | None:
        return self.frame_anns[annotator] if annotator < len(self.frame_anns) else None

    def seq_annotation(self, annotator: int = 0) -> BabelAnnotation | None:
        return self.seq_anns[annotator] if annotator < len(self.seq_anns) else None


def amass_relpath(feat_p: str) -> str:
    parts = PurePosixPath(feat_p).parts
    if len(parts) < 2:
        raise ValueError(f"feat_p {feat_p!r} has no folder to drop")
    return str(PurePosixPath(*parts[1:]))


def amass_candidates(amass_dir: str | Path, seq: BabelSequence, allow_outside: bool = False) -> list[Path]:
    """Where the AMASS file of ``seq`` may be: ``feat_p`` without its first folder, then as is, under
    ``amass_dir``.

    A ``feat_p`` that leaves the AMASS folder (absolute, or ``..`` climbing above it) would read any file
    the user can read: refused as bad input unless ``allow_outside`` (the user trusts the BABEL file). The
    check is on the path's text, so symlinks inside the AMASS folder keep working.
    """
    rels = [seq.amass_relpath, seq.feat_p]
    escapes = [
        r for r in rels if PurePosixPath(r).is_absolute() or posixpath.normpath(r).split("/")[0] == ".."
    ]
    if escapes and not allow_outside:
        raise DataError(
            seq.source,
            f"feat_p {seq.feat_p!r} points outside the AMASS folder {amass_dir}; refused (set "
            "allow_outside_amass=true if you trust this BABEL file)",
            record=f"seq {seq.seq_id}",
            reason="outside_amass",
        )
    return [Path(amass_dir) / r for r in rels]


class _Malformed(Exception):
    """Internal: a field problem inside one record (converted to DataError with file and seq id)."""


def _missing(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise _Malformed(f"missing field '{where}{key}'")
    return obj[key]


def _opt_text(value: Any, where: str) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if not isinstance(value, str):
        raise _Malformed(f"field {where} must be text or null, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Malformed(f"field {where} must be a finite number, got {value!r}")
    return float(value)


def _parse_label(obj: Any, where: str, frame: bool) -> BabelLabel:
    if not isinstance(obj, Mapping):
        raise _Malformed(f"{where} must be an object, got {type(obj).__name__}")
    raw = _opt_text(_missing(obj, "raw_label", f"{where}."), f"{where}.raw_label")
    proc = _opt_text(_missing(obj, "proc_label", f"{where}."), f"{where}.proc_label")
    seg_id = _opt_text(_missing(obj, "seg_id", f"{where}."), f"{where}.seg_id")
    cats = obj.get("act_cat")
    if isinstance(cats, list):
        act_cat: tuple[str, ...] | None = tuple(str(c) for c in cats if isinstance(c, str))
    else:
        act_cat = None
    start_t = end_t = None
    if frame:
        start_t = _number(_missing(obj, "start_t", f"{where}."), f"{where}.start_t")
        end_t = _number(_missing(obj, "end_t", f"{where}."), f"{where}.end_t")
    return BabelLabel(raw, proc, seg_id, act_cat, start_t, end_t)


def _parse_annotation(obj: Any, where: str, frame: bool) -> BabelAnnotation | None:
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        raise _Malformed(f"{where} must be an object or null, got {type(obj).__name__}")
    labels = _missing(obj, "labels", f"{where}.")
    if not isinstance(labels, list):
        raise _Malformed(f"field {where}.labels must be a list, got {type(labels).__name__}")
    parsed = tuple(_parse_label(lab, f"{where}.labels[{i}]", frame) for i, lab in enumerate(labels))
    ids = [obj.get(k) for k in ("babel_lid", "anntr_id")]  # informational: any non-null value as text
    return BabelAnnotation(parsed, *(None if v is None else str(v) for v in ids))


def _parse_annotations(ann: Mapping[str, Any], singular: str, frame: bool) -> tuple:
    plural = singular + "s"
    if singular in ann:
        one = _parse_annotation(ann[singular], singular, frame)
        return (one,)
    if plural in ann:
        many = ann[plural]
        if many is None:
            return (None,)
        if not isinstance(many, list):
            raise _Malformed(f"field {plural!r} must be a list or null, got {type(many).__name__}")
        return tuple(_parse_annotation(a, f"{plural}[{i}]", frame) for i, a in enumerate(many))
    raise _Malformed(f"missing field {singular!r} (or {plural!r})")


def parse_sequence(seq_id: str, ann: Any, source: str = "") -> BabelSequence:
    """Parse one top-level record. Raises `DataError` naming file, seq id and field."""
    try:
        if not isinstance(ann, Mapping):
            raise _Malformed(f"record must be an object, got {type(ann).__name__}")
        feat_p = _missing(ann, "feat_p", "")
        if not isinstance(feat_p, str) or len(PurePosixPath(feat_p).parts) < 2:
            raise _Malformed(f"field 'feat_p' must be a path like 'CMU/CMU/86/x.npz', got {feat_p!r}")
        sid = _missing(ann, "babel_sid", "")
        if isinstance(sid, bool) or not isinstance(sid, (int, str)) or not str(sid).strip().isdigit():
            raise _Malformed(f"field 'babel_sid' must be an integer, got {sid!r}")
        dur = _number(_missing(ann, "dur", ""), "'dur'")
        seq_anns = tuple(a for a in _parse_annotations(ann, "seq_ann", frame=False) if a is not None)
        frame_anns = _parse_annotations(ann, "frame_ann", frame=True)
        url = ann.get("url") if isinstance(ann.get("url"), str) else ""
    except _Malformed as exc:
        raise DataError(source, str(exc), record=f"seq {seq_id}", reason="malformed_record") from None
    return BabelSequence(str(seq_id), int(sid), dur, feat_p, url, seq_anns, frame_anns, source)


def read_babel_json(path: str | Path) -> dict[str, Any]:
    """Read a BABEL json file; syntax errors become `DataError` with the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "BABEL file not found", reason="missing_babel")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            path, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", reason="malformed_json"
        ) from None
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text: {exc}", reason="malformed_json") from None
    if not isinstance(data, dict):
        raise DataError(
            path,
            f"top level must be an object seq_id -> annotation, got {type(data).__name__}",
            reason="malformed_json",
        )
    return data


def load_babel_split(path: str | Path, report: ReadReport | None = None) -> list[BabelSequence]:
    """All sequences of one BABEL json file, in file order.

    Without ``report`` (or with a strict one) the first malformed record raises `DataError`; with a
    lenient report malformed records are skipped and counted. File-level errors (missing file, JSON
    syntax) always raise: nothing of the file can be trusted.
    """
    path = Path(path)
    data = read_babel_json(path)
    out = []
    for seq_id, ann in data.items():
        try:
            out.append(parse_sequence(seq_id, ann, str(path)))
        except DataError as exc:
            if report is None:
                raise
            report.problem(exc)
    return out


def split_path(babel_dir: str | Path, split: str) -> Path:
    """``<babel_dir>/<split>.json`` for a known split name."""
    if split not in SPLIT_FILES + EXTRA_SPLITS:
        raise ValueError(f"unknown BABEL split {split!r}; expected one of {SPLIT_FILES + EXTRA_SPLITS}")
    return Path(babel_dir) / f"{split}.json"
