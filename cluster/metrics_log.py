"""Run metrics: ``metrics.jsonl`` (one JSON object per line, appended across restarts) and TensorBoard.

Only rank 0 writes. Records carry ``step``; a resumed run may repeat steps after the last checkpoint, so
readers keep the last record per step (:func:`read_metrics` does).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    return value


class MetricsLogger:
    """Append-only JSONL + optional TensorBoard event files in the run directory."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self._file = None
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Line-buffered and kept open for the run: a killed run keeps every line written so far.
        self._file = open(self.path, "a", buffering=1)  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))
            except ImportError as exc:  # tensorboard is a declared dependency; say so if it is missing
                log.warning("TensorBoard logging disabled: %s", exc)

    def log(self, step: int, metrics: Mapping[str, Any], kind: str = "train") -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": step, "time": round(time.time(), 3)}
        record.update({k: _clean(v) for k, v in metrics.items()})
        assert self._file is not None
        self._file.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(f"{kind}/{k}", v, step)

    def event(self, step: int, event: str, **fields: Any) -> None:
        """A non-metric record (resume, checkpoint, preemption) in the same file."""
        self.log(step, {"event": event, **fields}, kind="event")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._file is not None:
            self._file.close()
            self._file = None


def read_metrics(path: Path, kind: str = "train") -> dict[int, dict[str, Any]]:
    """Records of one kind by step (the last record wins when a resumed run repeated a step)."""
    out: dict[int, dict[str, Any]] = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run
            if rec.get("kind") == kind:
                out[int(rec["step"])] = rec
    return out


def summary_line(step: int, total: int, m: Mapping[str, Any]) -> str:
    """One line per logging interval."""

    def f(key: str, fmt: str) -> str:
        v = m.get(key)
        return format(v, fmt) if isinstance(v, (int, float)) and v is not None else "-"

    return (
        f"step {step}/{total} | epoch {m.get('epoch', '-')} | loss {f('loss', '.5f')} | "
        f"lr {f('lr', '.2e')} | "
        f"gnorm {f('grad_norm', '.3f')} | {f('samples_per_s', '.1f')} samples/s "
        f"({f('samples_per_s_per_device', '.1f')}/dev) | step {f('step_time_s', '.3f')}s | "
        f"data wait {f('data_wait_pct', '.1f')}% | peak mem {f('peak_mem_mb', '.0f')} MB"
    )
