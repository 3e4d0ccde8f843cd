"""The distributed evaluator with real gloo process groups on 127.0.0.1 (torch.multiprocessing.spawn; a
1-rank job runs in the test process, with a process group of one).

- toy generator seeded per sample: 1, 2 and 3 ranks (uneven shares padded with valid=False duplicates) give
  the same metrics and per-sample errors; a generator seeded by the rank does not (negative control);
- a real checkpoint (tiny TEACH export) on real shards through ``run_eval``: 1 rank == 2 ranks;
- a rank that fails ends the job instead of hanging; a rank that loses its batches is detected on rank 0.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from cluster.dist_env import free_port
from tests.dist_helpers.eval_toy import build_eval_shards, eval_worker, export_tiny_model, run_eval_worker

pytestmark = pytest.mark.dist

N = 37  # not divisible by 2 or 3: uneven shares and padding on every world size


def _launch(target, world: int, *args) -> None:
    """``world`` ranks of a real gloo job: spawned processes, or this process for a 1-rank job (a process
    group of one; saves a Python start-up). The rank variables the runtime exports are removed after."""
    if world > 1:
        mp.spawn(target, args=(world, free_port(), *args), nprocs=world, join=True)
        return
    keys = (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
        "OMP_NUM_THREADS",
    )
    saved, threads = {k: os.environ.get(k) for k in keys}, torch.get_num_threads()
    try:
        target(0, 1, free_port(), *args)
    finally:
        torch.set_num_threads(threads)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _spawn_toy(world: int, out: Path, **options) -> None:
    _launch(eval_worker, world, str(out), {"n": N, "batch_size": 4, **options})


def _load(out: Path) -> tuple[dict, dict]:
    metrics = json.loads((out / "metrics.json").read_text())
    samplewise = json.loads((out / "samplewise_error_values.json").read_text())
    return metrics, samplewise


def _assert_same(a: dict[str, float], b: dict[str, float], rel: float) -> None:
    assert a.keys() == b.keys()
    bad = {k: (a[k], b[k]) for k in a if abs(a[k] - b[k]) > rel * max(abs(a[k]), 1e-12)}
    assert not bad, bad


def test_toy_metrics_identical_for_1_2_3_ranks(tmp_path: Path) -> None:
    results = {}
    for world in (1, 2, 3):
        _spawn_toy(world, tmp_path / f"w{world}", num_samples=2)
        results[world] = _load(tmp_path / f"w{world}")
    m1, s1 = results[1]
    assert m1["world_size"] == 1 and m1["num_sequences"] == N and m1["metrics"]["num_sequences"] == 2 * N
    assert len(s1) == N
    for world in (2, 3):
        m, s = results[world]
        assert m["world_size"] == world and len(m["rank_seconds"]) == world
        # float64 sums added in another order: equal to the last bits
        _assert_same(m["metrics"], m1["metrics"], rel=1e-12)
        assert sorted(s) == sorted(s1)
        for key in s1:
            assert s[key]["text"] == s1[key]["text"]
            _assert_same(
                {k: v for k, v in s[key].items() if k.startswith("APE")},
                {k: v for k, v in s1[key].items() if k.startswith("APE")},
                rel=1e-12,
            )


def test_negative_control_rank_seeded_generation_depends_on_the_world_size(tmp_path: Path) -> None:
    """What the per-key seeds prevent: noise from a per-rank stream changes with the number of ranks."""
    for world in (1, 2):
        _spawn_toy(world, tmp_path / f"rank{world}", generator="rank")
    a, b = _load(tmp_path / "rank1")[0]["metrics"], _load(tmp_path / "rank2")[0]["metrics"]
    assert abs(a["APE_mean_joints"] - b["APE_mean_joints"]) > 1e-4 * a["APE_mean_joints"]


def test_real_checkpoint_on_real_shards_1_vs_2_ranks(tmp_path: Path) -> None:
    shards = build_eval_shards(tmp_path, n_val=19, n_train=8)
    model = export_tiny_model(shards, tmp_path / "teach.safetensors")
    outs = {}
    for world in (1, 2):
        cfg = {
            "checkpoint": str(model),
            "shards_dir": str(shards),
            "out_dir": str(tmp_path / f"w{world}"),
            "batch_size": 4,
            "renders": 2,
            "progress": False,
            "backend": "gloo",
            "dist_timeout_s": 120.0,
        }
        _launch(run_eval_worker, world, cfg)
        outs[world] = _load(tmp_path / f"w{world}")
    (m1, s1), (m2, s2) = outs[1], outs[2]
    assert m1["num_sequences"] == m2["num_sequences"] == 19 and sorted(s1) == sorted(s2)
    # the model runs in float32 on batches of other compositions: equal to float32 rounding
    _assert_same(m2["metrics"], m1["metrics"], rel=1e-4)
    assert m1["meta"]["checkpoint"] == m2["meta"]["checkpoint"]
    renders = [sorted(p.name for p in (tmp_path / f"w{w}" / "renders").iterdir()) for w in (1, 2)]
    assert renders[0] == renders[1] and len(renders[0]) == 4  # the same samples rendered


def test_a_failing_rank_ends_the_job_promptly(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(mp.ProcessExitedException):
        _spawn_toy(2, tmp_path, fail_rank=1)
    assert time.monotonic() - t0 < 90
    assert not (tmp_path / "metrics.json").exists()


def test_lost_samples_are_refused_on_rank_0(tmp_path: Path, capfd) -> None:
    with pytest.raises(mp.ProcessExitedException):
        _spawn_toy(2, tmp_path, drop_last_rank_batches=True)
    assert "distinct samples but the split holds 37" in capfd.readouterr().err
    assert not (tmp_path / "metrics.json").exists()
