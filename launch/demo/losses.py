"""The training losses of a finished run, summarised for the demo and results reports."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def loss_summary(run_dir: Path) -> dict[str, Any]:
    """The mean training loss over the first and the last tenth of the steps (at least 5 steps each)."""
    losses: dict[int, float] = {}
    path = run_dir / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            if rec.get("kind") == "train" and isinstance(rec.get("loss"), (int, float)):
                losses[int(rec["step"])] = float(rec["loss"])  # a resumed run relogs: the last one counts
    steps = sorted(losses)
    if len(steps) < 2:
        return {
            "steps": len(steps),
            "first": math.nan,
            "last": math.nan,
            "fell": False,
            "text": "no losses logged",
        }
    n = max(min(5, len(steps) // 2), len(steps) // 10)
    first = sum(losses[s] for s in steps[:n]) / n
    last = sum(losses[s] for s in steps[-n:]) / n
    fell = last < first
    text = f"loss {first:.4f} -> {last:.4f} (mean of the first/last {n} of {steps[-1]} steps)"
    if not fell:
        text += "  WARNING: the loss did not fall"
    return {"steps": steps[-1], "first": first, "last": last, "fell": fell, "window": n, "text": text}
