"""The global plan (one process): global batches that depend on (seed, epoch, global batch) only, split over
any number of ranks and micro-steps; resume on another world size; a changed global batch re-plans."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from shards.loader import LoaderConfig, ShardLoader
from shards.sampler import (
    GlobalPlanSpec,
    PlanError,
    epoch_order,
    global_batches,
    rank_micro_batches,
    rank_plan,
)
from tests.dist_helpers.shards_data import build, make_source, make_store

N, G = 62, 8  # 7 full global batches, a tail of 6


@pytest.mark.parametrize("bucket", [0, 3])
@pytest.mark.parametrize("drop_last", [True, False])
def test_any_split_reassembles_the_same_global_batches(bucket: int, drop_last: bool) -> None:
    lengths = np.random.default_rng(1).integers(5, 90, N)
    order = epoch_order([20, 22, 20], seed=4, epoch=2, buffer=5)
    spec = GlobalPlanSpec(G, drop_last, bucket)
    kw = {"lengths": lengths, "order": order, "seed": 4, "epoch": 2}
    batches = global_batches(np.arange(N), spec, **kw)
    assert len(batches) == (7 if drop_last else 8)
    for world, steps in [(1, 1), (1, 2), (2, 1), (3, 1), (4, 2)]:
        if not drop_last and 6 // world < steps:
            continue
        plans = [
            rank_plan(np.arange(N), spec, world, r, steps, order, lengths=lengths, seed=4, epoch=2)
            for r in range(world)
        ]
        for r in range(world):  # the fast plan equals the reference split
            ref = rank_micro_batches(batches, world, r, steps)
            assert [list(x) for x in plans[r]] == [list(order[m]) for m in ref]
        for g, batch in enumerate(batches):
            got = np.concatenate([p[g * steps + q] for p in plans for q in range(steps)])
            assert sorted(got) == sorted(order[batch]), f"world {world}: step {g} differs"
            sizes = [len(p[g * steps + q]) for p in plans for q in range(steps)]
            assert max(sizes) - min(sizes) <= 1
    if bucket:  # windows of 3 global batches are sorted by length: a batch's lengths are contiguous
        spread = [int(np.ptp(lengths[order[b]])) for b in batches[:3]]
        assert max(spread) < int(np.ptp(lengths)), "bucketing did not group lengths"


def test_a_rank_without_a_sample_per_micro_step_is_refused() -> None:
    spec = GlobalPlanSpec(4)
    with pytest.raises(PlanError, match="fewer than its 2 micro-batches"):
        rank_plan(np.arange(16), spec, 3, 2, 2, np.arange(16))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("global")
    build(
        base / "seg",
        make_store(base / "emb"),
        {"train": make_source(N, "train", pairs=False)},
        shard_multiple=2,
        target_shard_mb=0.03,
    )
    return base / "seg"


def _loaders(root: Path, world: int, micro_steps: int, g: int = G) -> list[ShardLoader]:
    cfg = LoaderConfig(root=str(root), batch_size=4, num_workers=0, shuffle_buffer=5, seed=3)
    out = [ShardLoader(cfg, rank=r, world_size=world) for r in range(world)]
    for ld in out:
        ld.set_global_batch(g, micro_steps)
    return out


def _steps(loaders: list[ShardLoader], micro_steps: int, n: int | None = None) -> list[list[str]]:
    """Per step: the keys of the whole global batch (ranks in lockstep)."""
    its = [iter(ld) for ld in loaders]
    out = []
    while n is None or len(out) < n:
        try:
            keys = [k for it in its for _ in range(micro_steps) for k in next(it)["keys"]]
        except StopIteration:
            break
        out.append(sorted(keys))
    return out


def test_loader_epoch_is_the_same_global_batches_on_1_2_3_ranks(root: Path) -> None:
    ref = _steps(_loaders(root, 1, 2), 2)
    assert len(ref) == N // G and all(len(s) == G for s in ref)
    assert len({k for s in ref for k in s}) == N // G * G
    assert _steps(_loaders(root, 2, 1), 1) == ref
    assert _steps(_loaders(root, 3, 2), 2) == ref  # uneven: 3/3/2 samples, 2 micro-steps each
    # the next epoch is reshuffled, the same on any world size
    one, three = _loaders(root, 1, 1), _loaders(root, 3, 1)
    for ld in [*one, *three]:
        ld.set_epoch(1)
    nxt = _steps(one, 1)
    assert nxt != ref and _steps(three, 1) == nxt


def test_resume_on_another_world_size_continues_the_same_global_batches(root: Path) -> None:
    ref = _steps(_loaders(root, 2, 1), 1)
    first = _loaders(root, 2, 1)
    done = _steps(first, 1, 3)
    states = [ld.state_dict() for ld in first]
    assert states[0]["steps"] == 3 and states[0]["mode"] == "global"
    resumed = _loaders(root, 3, 1)
    for ld in resumed:
        ld.load_state_dict(states)
    assert done + _steps(resumed, 1) == ref
    single = _loaders(root, 1, 2)
    single[0].load_state_dict(states[0])
    assert done + _steps(single, 2) == ref


def test_changed_global_batch_replans_the_rest_without_repeat_or_skip(root: Path) -> None:
    first = _loaders(root, 2, 1)
    done = _steps(first, 1, 2)
    bigger = _loaders(root, 2, 1, g=12)
    for ld in bigger:
        ld.load_state_dict([s.state_dict() for s in first])
    rest = _steps(bigger, 1)
    assert all(len(s) == 12 for s in rest)
    seen = Counter(k for s in done + rest for k in s)
    assert max(seen.values()) == 1
    assert sum(seen.values()) == 2 * G + (N - 2 * G) // 12 * 12
