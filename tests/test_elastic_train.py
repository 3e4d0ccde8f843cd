"""Elastic determinism with real gloo processes: the same global batches and loss curve on any number of
ranks, fresh or resumed (issue 19).

A small VAE (tests.dist_helpers.shard_toy) on the real shard loader; the global batch is 8 samples, 44
samples give 5 steps per epoch, 2 epochs = 10 steps. lr 1e-5: Adam turns summation-order rounding into
parameter updates, so the parameters are compared at a small learning rate; the batch digests (exact) and
the losses (1e-5 relative) are the sharp checks.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from tests.dist_helpers import launch as L
from tests.dist_helpers.shards_data import build, make_source, make_store

pytestmark = pytest.mark.dist

N, G, TOTAL, PER_EPOCH = 44, 8, 10, 5
BASE = ["lr=1e-5", "global_batch_size=8", "epochs=2", "log_every=100", "seed=5"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("elastic")
    store = make_store(base / "emb")
    build(
        base / "shards",
        store,
        {"train": make_source(N, "train", pairs=False)},
        shard_multiple=4,
        target_shard_mb=0.05,
    )
    return base / "shards"


def _cmd(nproc: int, run: Path, shards: Path, *extra: str) -> list[str]:
    return L.torchrun_cmd(
        nproc, ["--run-dir", str(run), "--shards", str(shards), "--record-keys", *BASE, *extra]
    )


def _digests(run: Path) -> dict[int, str]:
    return {s: r["batch_digest"] for s, r in L.train_records(run).items()}


def _assert_same_curve(ref: Path, other: Path, exact: bool = False) -> None:
    a, b = L.train_records(ref), L.train_records(other)
    assert sorted(a) == sorted(b) == list(range(1, TOTAL + 1)), (sorted(a), sorted(b))
    for s in a:
        assert a[s]["batch_digest"] == b[s]["batch_digest"], f"step {s}: different global batch"
        assert a[s]["samples"] == b[s]["samples"] == G
        if exact:
            assert a[s]["loss"] == b[s]["loss"], f"step {s}: {a[s]['loss']} != {b[s]['loss']}"
        else:
            assert b[s]["loss"] == pytest.approx(a[s]["loss"], rel=1e-5), f"step {s}"


def _assert_same_params(ref: Path, other: Path, tol: float | None) -> None:
    a = torch.load(ref / "state-end.pt", weights_only=True)["model"]
    b = torch.load(other / "state-end.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for name, t in a.items():
        if tol is None:
            assert torch.equal(t, b[name]), name
        else:
            assert torch.allclose(t, b[name], rtol=tol, atol=tol), (name, (t - b[name]).abs().max())


def _keys_per_epoch(run: Path) -> dict[int, Counter]:
    out: dict[int, Counter] = {}
    for f in sorted(run.glob("keys-rank*.jsonl")):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            out.setdefault(rec["epoch"], Counter()).update(rec["keys"])
    return out


def _assert_no_repeat_no_skip(run: Path) -> None:
    epochs = _keys_per_epoch(run)
    assert sorted(epochs) == [0, 1], "the run must cross an epoch boundary"
    for e, seen in epochs.items():
        assert max(seen.values()) == 1, f"epoch {e}: repeated {[k for k, c in seen.items() if c > 1]}"
        assert sum(seen.values()) == PER_EPOCH * G, f"epoch {e}: {sum(seen.values())} samples trained"


@pytest.fixture(scope="module")
def reference(shards, tmp_path_factory) -> Path:
    """The uninterrupted 2-rank run."""
    run = tmp_path_factory.mktemp("ref") / "run"
    L.run(_cmd(2, run, shards, "batch_size=4", "--dump-end"))
    return run


def test_fresh_runs_on_1_2_4_ranks_train_the_same_global_batches(shards, reference, tmp_path) -> None:
    one, four = tmp_path / "one", tmp_path / "four"
    L.run(_cmd(1, one, shards, "batch_size=4", "--dump-end"))  # 2 micro-steps of 4
    L.run(_cmd(4, four, shards, "batch_size=2", "--dump-end"))  # micro-batch halved
    recs = L.train_records(one)
    assert {r["micro_steps"] for r in recs.values()} == {2}
    assert {r["micro_steps"] for r in L.train_records(four).values()} == {1}
    for other in (one, four):
        _assert_same_curve(reference, other)
        _assert_same_params(reference, other, 1e-5)
        _assert_no_repeat_no_skip(other)
    # the digest is recomputable from the recorded keys: step 1 of the 1-rank run = its first two batches
    from cluster.global_batch import digest, key_lanes

    first = [json.loads(x)["keys"] for x in (one / "keys-rank0.jsonl").read_text().splitlines()[:2]]
    assert digest(*key_lanes(first[0] + first[1])) == recs[1]["batch_digest"]


def _preempt(cmd: list[str], run: Path, after: int, log: Path, nproc: int) -> int:
    proc = L.start(cmd, log=log)
    try:
        L.wait_for(lambda: L.last_step(run) >= after, 240, proc, f"step {after}")
        L.signal_workers(proc, signal.SIGUSR1, expect=nproc)
        assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            L.kill_all(proc)
    res = L.result(run)
    assert res["status"] == "preempted", res
    return int(res["step"])


def _chain(shards: Path, tmp: Path, engine: list[str]) -> Path:
    """2 ranks -> preempted -> 1 rank -> preempted -> 3 ranks (uneven micro-batches 3/3/2) -> finished."""
    run = tmp / "chain"
    delay = ["--step-delay", "0.4", "requeue=false", "--dump-end"]
    k1 = _preempt(_cmd(2, run, shards, "batch_size=4", *engine, *delay), run, 2, tmp / "a.log", 2)
    assert k1 < TOTAL - 2, f"preempted too late (step {k1})"
    k2 = _preempt(_cmd(1, run, shards, "batch_size=4", *engine, *delay), run, k1 + 1, tmp / "b.log", 1)
    assert k1 < k2 < TOTAL, (k1, k2)
    L.run(_cmd(3, run, shards, "batch_size=4", "--dump-end", *engine))
    res = L.result(run)
    assert res["status"] == "finished" and res["resumed_from"] == k2
    modes = [e["mode"] for e in L.events(run, "resume")]
    assert modes == ["resharded 2->1 ranks", "resharded 1->3 ranks"], modes
    recs = L.train_records(run)
    assert {recs[s]["world_size"] for s in recs} == {1, 2, 3}
    return run


def test_preempted_chain_2_1_3_ranks_matches_the_uninterrupted_run(shards, reference, tmp_path) -> None:
    run = _chain(shards, tmp_path, [])
    _assert_same_curve(reference, run)
    _assert_same_params(reference, run, 1e-5)
    _assert_no_repeat_no_skip(run)


@pytest.mark.slow
def test_deepspeed_zero2_chain_2_1_3_ranks_matches_the_uninterrupted_run(shards, tmp_path) -> None:
    ds = ["engine=deepspeed", "zero_stage=2"]
    ref = tmp_path / "ref"
    L.run(_cmd(2, ref, shards, "batch_size=4", "--dump-end", *ds))
    run = _chain(shards, tmp_path, ds)
    _assert_same_curve(ref, run)
    _assert_same_params(ref, run, 1e-5)
    _assert_no_repeat_no_skip(run)


def test_same_world_size_resume_stays_bit_exact(shards, reference, tmp_path) -> None:
    run = tmp_path / "run"
    L.run(_cmd(2, run, shards, "batch_size=4", "run_steps=3"))
    L.run(_cmd(2, run, shards, "batch_size=4", "--dump-end"))
    assert L.result(run)["resumed_from"] == 3
    _assert_same_curve(reference, run, exact=True)
    _assert_same_params(reference, run, None)


def test_global_batch_that_cannot_be_kept_exits_2_and_the_opt_in_records_the_change(shards, tmp_path) -> None:
    run = tmp_path / "run"
    small = ["batch_size=1", "global_batch_size=2", "epochs=1"]
    L.run(_cmd(2, run, shards, *small, "run_steps=3"))
    # a rank of a 3-rank job: refused before joining the process group, exit 2 with the numbers
    env = L.base_env()
    env.update(RANK="0", WORLD_SIZE="3", LOCAL_RANK="0", LOCAL_WORLD_SIZE="3", MASTER_ADDR="127.0.0.1")
    env["MASTER_PORT"] = str(L.free_port())
    args = ["--run-dir", str(run), "--shards", str(shards), *BASE, *small]
    res = subprocess.run(
        [sys.executable, "-m", L.TOY, *args], cwd=L.REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2, L.tail(res)
    assert "global batch of 2 samples" in res.stderr and "3 ranks" in res.stderr
    assert "allow_global_batch_change=true" in res.stderr and "at most 2 ranks" in res.stderr
    # the opt-in continues with the configured global batch (1 x 3 ranks) and records it
    L.run(
        _cmd(
            3,
            run,
            shards,
            "batch_size=1",
            "global_batch_size=0",
            "epochs=1",
            "allow_global_batch_change=true",
        )
    )
    changed = L.events(run, "global_batch_changed")
    assert [(e["old"], e["new"]) for e in changed] == [(2, 3)]
    recs = L.train_records(run)
    assert {recs[s]["global_batch"] for s in (1, 2, 3)} == {2} and recs[4]["global_batch"] == 3
    seen = _keys_per_epoch(run)[0]
    assert max(seen.values()) == 1, "a sample repeated after the global batch changed"
