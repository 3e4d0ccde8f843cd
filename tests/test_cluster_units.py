"""Single-process pieces of the runtime: checkpoint markers and pruning, schedule, RNG state, signals,
metrics files, config resolution, the toy loader's contract."""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from actiongpt.config import ConfigError
from cluster import rng_state
from cluster.checkpoint import MARKER, CheckpointManager, latest, read_marker, scan, step_dir
from cluster.metrics_log import MetricsLogger, read_metrics
from cluster.preemption import PreemptionHandler, parse_signal, slurm_job_to_requeue
from cluster.schedule import StepSchedule
from cluster.train_config import TrainConfig
from tests.dist_helpers.toy import ToyLoader


def _save(mgr: CheckpointManager, step: int) -> None:
    mgr.save(step, lambda p: (p / "data.bin").write_bytes(b"x" * step), {"engine": "ddp", "world_size": 1})


def test_checkpoint_is_complete_only_with_marker(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path, keep_last=5, rank=0)
    _save(mgr, 10)
    half = step_dir(tmp_path, 20)
    half.mkdir()
    (half / "data.bin").write_bytes(b"partial")
    complete, incomplete = scan(tmp_path)
    assert [c.step for c in complete] == [10] and incomplete == [half]
    assert latest(tmp_path).step == 10
    meta = read_marker(step_dir(tmp_path, 10))
    assert meta["step"] == 10 and meta["bytes"] == 10 and meta["engine"] == "ddp"
    (half / MARKER).write_text("{not json")  # a torn marker does not count either
    assert latest(tmp_path).step == 10
    assert mgr.remove_incomplete() == [half] and not half.exists()


def test_keep_last_prunes_old_complete_and_stale_incomplete(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path, keep_last=2, rank=0)
    stale = step_dir(tmp_path, 15)
    stale.mkdir(parents=True)
    for s in (10, 20, 30, 40):
        _save(mgr, s)
    complete, incomplete = scan(tmp_path)
    assert [c.step for c in complete] == [30, 40] and incomplete == []


def test_resave_of_a_step_replaces_leftovers(tmp_path: Path) -> None:
    mgr = CheckpointManager(tmp_path, keep_last=2, rank=0)
    d = step_dir(tmp_path, 5)
    d.mkdir(parents=True)
    (d / "__1_0.distcp").write_bytes(b"from a 2-rank attempt")
    _save(mgr, 5)
    assert sorted(p.name for p in d.iterdir()) == [MARKER, "data.bin"]


def test_marker_step_must_match_directory(tmp_path: Path) -> None:
    d = step_dir(tmp_path, 7)
    d.mkdir(parents=True)
    (d / MARKER).write_text(json.dumps({"step": 8}))
    assert latest(tmp_path) is None


def test_schedule_is_a_function_of_the_step() -> None:
    const = StepSchedule("constant", 7e-5, 100)
    assert const.lr_at(0) == const.lr_at(99) == 7e-5
    warm = StepSchedule("warmup_cosine", 1e-3, 100, warmup_steps=10, min_ratio=0.1)
    assert warm.lr_at(0) == pytest.approx(1e-4) and warm.lr_at(9) == pytest.approx(1e-3)
    assert warm.lr_at(100) == pytest.approx(1e-4) and warm.lr_at(55) == pytest.approx(0.55e-3)
    lin = StepSchedule("warmup_linear", 1.0, 10)
    assert lin.lr_at(5) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        StepSchedule("cyclic", 1.0, 10)


def test_rng_state_roundtrips_through_json() -> None:
    rng_state.seed_all(5)
    saved = json.loads(json.dumps(rng_state.capture()))
    a = (random.random(), np.random.rand(), torch.rand(3))
    rng_state.restore(saved)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    with pytest.raises(ValueError, match="malformed RNG state"):
        rng_state.restore({"python": {}})


def test_isolated_rng_block_leaves_training_stream_untouched() -> None:
    rng_state.seed_all(1)
    expected = torch.rand(2)
    rng_state.seed_all(1)
    with rng_state.isolated(seed=99):
        torch.rand(100)
    assert torch.equal(torch.rand(2), expected)


def test_preemption_signal_only_sets_a_flag() -> None:
    h = PreemptionHandler(["USR1"]).install()
    try:
        assert not h.requested
        os.kill(os.getpid(), signal.SIGUSR1)
        assert h.requested and h.received == "SIGUSR1"
    finally:
        h.uninstall()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    assert parse_signal("SIGTERM") == signal.SIGTERM and parse_signal("12") == signal.SIGUSR2
    with pytest.raises(ValueError):
        parse_signal("SIGNOPE")


def test_requeue_target_for_array_jobs() -> None:
    assert slurm_job_to_requeue({"SLURM_JOB_ID": "10"}) == "10"
    assert (
        slurm_job_to_requeue({"SLURM_JOB_ID": "11", "SLURM_ARRAY_JOB_ID": "9", "SLURM_ARRAY_TASK_ID": "2"})
        == "9_2"
    )
    assert slurm_job_to_requeue({}) is None


def test_metrics_jsonl_last_record_per_step_wins(tmp_path: Path) -> None:
    m = MetricsLogger(tmp_path, tensorboard=True)
    m.log(1, {"loss": 2.0})
    m.log(2, {"loss": float("nan")})
    m.event(2, "checkpoint", path="x")
    m.log(2, {"loss": 1.5})  # the step repeated after a resume
    m.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "st')  # torn line of a killed run
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert {s: r["loss"] for s, r in recs.items()} == {1: 2.0, 2: 1.5}
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_config_defaults_are_the_original_settings() -> None:
    teach = TrainConfig(model="teach").resolved()
    assert (teach.lr, teach.batch_size, teach.epochs) == (7e-5, 4, 1003)
    clip = TrainConfig(model="motionclip").resolved()
    assert (clip.lr, clip.batch_size, clip.epochs) == (1e-4, 20, 100)
    assert TrainConfig(model="temos", lr=3e-4).resolved().lr == 3e-4
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(model="other").resolved()
    with pytest.raises(ConfigError, match="zero_stage"):
        TrainConfig(zero_stage=4)
    from cluster.global_batch import resolve

    cfg = TrainConfig(model="teach", global_batch_size=16).resolved()
    assert [resolve(cfg, w, None).micro_steps for w in (4, 2, 1)] == [1, 2, 4]
    uneven = resolve(cfg, 3, None)  # 6/5/5 samples per rank, in 2 micro-batches of at most 3
    assert (uneven.micro_steps, uneven.micro_batch, uneven.uniform) == (2, 3, False)


def test_toy_loader_contract_resume_and_reshard() -> None:
    full = [b["keys"] for b in ToyLoader(32, 2, 0, 2, seed=3)]
    a = ToyLoader(32, 2, 0, 2, seed=3)
    it = iter(a)
    first = [next(it)["keys"] for _ in range(3)]
    b = ToyLoader(32, 2, 0, 2, seed=3)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert first + [x["keys"] for x in b] == full
    # two ranks consumed 3 global batches; one rank of batch 4 continues with the rest of the permutation
    states = [a.state_dict(), {**a.state_dict()}]
    one = ToyLoader(32, 4, 0, 1, seed=3)
    one.load_state_dict(states)
    rest = [k for batch in one for k in batch["keys"]]
    assert len(rest) == 32 - 12 and not set(rest) & {k for r in range(2) for k in _rank_keys(r, 3)}
    with pytest.raises(ValueError, match="world size"):
        ToyLoader(32, 4, 0, 1, seed=3).load_state_dict(a.state_dict())


def _rank_keys(rank: int, batches: int) -> list[str]:
    it = iter(ToyLoader(32, 2, rank, 2, seed=3))
    return [k for _ in range(batches) for k in next(it)["keys"]]
