"""``bench/bench_train.py``'s one-line summary shows only the figures this run measured."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench" / "bench_train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_partial_rerun_summary_shows_only_its_own_figures() -> None:
    bench = _bench()
    result = json.loads((ROOT / "bench" / "results" / "train.json").read_text())  # all three parts, as kept
    out = Path("bench/results/train.json")
    line = bench.summary_line(result, {"agpt_vs_baseline"}, ["teach", "temos"], "synthetic", out)
    assert "agpt/baseline teach " in line
    assert "samples/s" not in line and "ckpt " not in line and " MB" not in line
    assert "kept from an earlier run: scaling, checkpoint" in line
    full = bench.summary_line(
        result, {"scaling", "checkpoint", "agpt_vs_baseline"}, ["teach"], "synthetic", out
    )
    assert "samples/s" in full and "ckpt ddp save" in full and "kept from" not in full
