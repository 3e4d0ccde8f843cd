"""Evaluation outputs: ``metrics.json``, ``samplewise_error_values.json`` and Markdown tables in the paper's
layout (Table 1: model | method | APE root | APE global traj | APE mean local | APE mean global | AVE ...;
Table 2 uses the same metric columns with component | setting).

Column names map to the original's keys: root = ``*_root``, global traj = ``*_traj``, mean local =
``*_mean_pose`` (20 root-relative joints), mean global = ``*_mean_joints`` (21 joints). Values in metres.
MotionCLIP generates no locomotion, so like the paper its root and trajectory cells show "–".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actiongpt.io_utils import atomic_write_text, markdown_table
from actiongpt.metrics import MAIN_KEYS
from actiongpt.models.registry import BACKBONES
from cluster.evaluator import EvalResult

METRICS_FORMAT = "actiongpt.eval/1"
METRICS_FILE = "metrics.json"
SAMPLEWISE_FILE = "samplewise_error_values.json"  # the original Action-GPT eval.py's file name
TABLE_FILE = "table.md"

# (paper column, metric key), in Table 1's order
COLUMNS: tuple[tuple[str, str], ...] = (
    ("APE root", "APE_root"),
    ("APE global traj", "APE_traj"),
    ("APE mean local", "APE_mean_pose"),
    ("APE mean global", "APE_mean_joints"),
    ("AVE root", "AVE_root"),
    ("AVE global traj", "AVE_traj"),
    ("AVE mean local", "AVE_mean_pose"),
    ("AVE mean global", "AVE_mean_joints"),
)
ROOT_KEYS = frozenset({"APE_root", "APE_traj", "AVE_root", "AVE_traj"})
ROOTLESS_MODELS = frozenset(n for n, s in BACKBONES.items() if s.rootless)  # local pose only (Table 1)
assert tuple(k for _, k in COLUMNS) == MAIN_KEYS


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


# ------------------------------------------------------------------------------------------- files


def metrics_payload(result: EvalResult, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The content of ``metrics.json``."""
    return {
        "format": METRICS_FORMAT,
        "metrics": result.metrics,
        "per_variant": [{k: m[k] for k in MAIN_KEYS} for m in result.per_variant],
        "spread_over_variants": result.spread(),
        "num_sequences": result.num_sequences,
        "num_samples_per_text": result.num_samples,
        "world_size": result.world_size,
        "seconds": result.seconds,
        "rank_seconds": result.rank_seconds,
        "samples_per_s": _finite(result.samples_per_s),
        "meta": dict(meta or {}),
    }


def samplewise_payload(result: EvalResult) -> dict[str, dict[str, Any]]:
    """Per key: the text, the frames scored and its APEs (mean over variants; each variant under
    ``per_sample`` when there are several), as Action-GPT's ``samplewise_error_values.json`` (which has
    ``text``, ``APE_root``, ``APE_traj``)."""
    by_key: dict[str, list] = {}
    for r in result.samples:
        by_key.setdefault(r.key, []).append(r)
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(by_key):
        recs = sorted(by_key[key], key=lambda r: r.index)
        entry: dict[str, Any] = {"text": recs[0].text, "num_frames": recs[0].num_frames}
        for name in ("APE_root", "APE_traj", "APE_mean_pose", "APE_mean_joints"):
            entry[name] = sum(getattr(r, name) for r in recs) / len(recs)
        if len(recs) > 1:
            entry["per_sample"] = [
                {
                    "index": r.index,
                    "APE_root": r.APE_root,
                    "APE_traj": r.APE_traj,
                    "APE_mean_pose": r.APE_mean_pose,
                    "APE_mean_joints": r.APE_mean_joints,
                }
                for r in recs
            ]
        out[key] = entry
    return out


def write_outputs(
    result: EvalResult, out_dir: Path, meta: Mapping[str, Any] | None = None
) -> dict[str, Path]:
    """Write metrics.json, samplewise_error_values.json and table.md into ``out_dir`` (atomically each)."""
    out_dir = Path(out_dir)
    meta = dict(meta or {})
    paths = {
        "metrics": atomic_write_text(
            out_dir / METRICS_FILE, json.dumps(metrics_payload(result, meta), indent=2)
        ),
        "samplewise": atomic_write_text(
            out_dir / SAMPLEWISE_FILE, json.dumps(samplewise_payload(result), indent=1)
        ),
    }
    row = TableRow(
        str(meta.get("model_label") or meta.get("model") or "model"),
        str(meta.get("method", "–")),
        result.metrics,
        rootless=str(meta.get("model", "")).lower() in ROOTLESS_MODELS,
    )
    paths["table"] = atomic_write_text(out_dir / TABLE_FILE, format_table([row]) + "\n")
    return paths


def read_metrics(path: str | Path) -> dict[str, Any]:
    """A ``metrics.json`` (or the folder holding it), checked for the format and the eight values."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics file (run `actiongpt eval run` first)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid json ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != METRICS_FORMAT:
        raise ValueError(f"{path}: not an evaluation metrics file (format {METRICS_FORMAT!r} expected)")
    missing = [k for k in MAIN_KEYS if k not in data.get("metrics", {})]
    if missing:
        raise ValueError(f"{path}: metrics {missing} missing")
    return data


# ------------------------------------------------------------------------------------------- table


@dataclass
class TableRow:
    """One table row: ``group`` (first column: model or component), ``label`` (method or setting)."""

    group: str
    label: str
    metrics: Mapping[str, float]
    rootless: bool = False

    def cell(self, key: str, digits: int) -> str | None:
        """Rounded value, or None for a value the row does not have (rootless models' root metrics)."""
        if self.rootless and key in ROOT_KEYS:
            return None
        value = self.metrics.get(key)
        if value is None or not math.isfinite(float(value)):
            return None
        return f"{float(value):.{digits}f}"


def format_table(
    rows: Sequence[TableRow],
    headers: tuple[str, str] = ("model", "method"),
    digits: int = 3,
    bold_best: bool = True,
) -> str:
    """Markdown table in the paper's layout. With ``bold_best``, the lowest value of each column within a
    group of two or more rows is bold (as the paper marks the better of Default and Action-GPT)."""
    best: dict[tuple[str, str], str] = {}
    if bold_best:
        groups: dict[str, list[TableRow]] = {}
        for r in rows:
            groups.setdefault(r.group, []).append(r)
        for g, members in groups.items():
            if len(members) < 2:
                continue
            for _, key in COLUMNS:
                cells = [c for c in (m.cell(key, digits) for m in members) if c is not None]
                if cells:
                    best[(g, key)] = min(cells, key=float)
    body = []
    for r in rows:
        cells = []
        for _, key in COLUMNS:
            c = r.cell(key, digits)
            if c is None:
                cells.append("–")
            elif best.get((r.group, key)) is not None and float(c) == float(best[(r.group, key)]):
                cells.append(f"**{c}**")
            else:
                cells.append(c)
        body.append([r.group, r.label, *cells])
    return markdown_table([*headers, *(name for name, _ in COLUMNS)], body)
