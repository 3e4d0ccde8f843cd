"""Evaluator-based metrics (R-precision, FID, diversity, multimodality, MM-Dist, physics) on real gloo ranks:
1, 2 and 3 ranks give the same numbers (uneven shares, padded batches, the reference pass batched differently
from the generation pass), and the same metrics computed from one rank's own embeddings do not -- so a rank-
local computation (R-precision flat under multi-GPU) would fail the equality test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dist_helpers.retrieval_toy import retrieval_worker
from tests.test_evaluator_dist import _launch

pytestmark = pytest.mark.dist

N = 41  # uneven shares on 2 and 3 ranks; 7 labels, so 31 distractors of other texts exist for every item
ROWS = ("reference", "generated")


def _run(world: int, out: Path) -> dict[str, dict]:
    _launch(retrieval_worker, world, str(out), {"n": N, "batch_size": 4, "num_samples": 2})
    return {m: json.loads((out / f"scores_{m}.json").read_text()) for m in ("single", "pairs")}


def _close(a: dict, b: dict, rel: float) -> list[str]:
    bad = []
    for row in ROWS:
        assert a[row].keys() == b[row].keys()
        for k, v in a[row].items():
            if abs(v - b[row][k]) > rel * max(abs(v), 1e-9):
                bad.append(f"{row}.{k}: {v} vs {b[row][k]}")
    return bad


def test_extra_metrics_equal_for_1_2_3_ranks_and_rank_local_ones_differ(tmp_path: Path) -> None:
    runs = {w: _run(w, tmp_path / f"w{w}") for w in (1, 2, 3)}
    for mode in ("single", "pairs"):
        one = runs[1][mode]["scores"]
        items = N * (2 if mode == "pairs" else 1)  # pairs: each action scored with its own text
        assert one["num_items"] == items
        gen = one["generated"]
        for key in (
            "R_precision_top1",
            "FID",
            "diversity",
            "multimodality",
            "MM_dist",
            "foot_skating",
            "jerk",
        ):
            assert gen[key] == gen[key], (mode, key)  # defined (not NaN)
        for world in (2, 3):
            # the same items in the same global order; only the batches' padding differs (last bits)
            diff = _close(runs[world][mode]["scores"], one, rel=1e-4)
            assert not diff, (mode, world, diff)
            local = runs[world][mode]["local_rank0"]
            # rank 0's own share: fewer items, other distractors, FID/diversity of a subset
            assert local["num_items"] < items
            for row, key in (("generated", "FID"), ("generated", "diversity"), ("reference", "diversity")):
                assert abs(local[row][key] - one[row][key]) > 1e-3 * abs(one[row][key]), (mode, row, key)
            assert local["generated"]["R_precision_top3"] != one["generated"]["R_precision_top3"], mode
