"""The epoch plan (pure functions): orders, equal per-rank batches, worker layout, resume and re-split."""

from __future__ import annotations

import numpy as np
import pytest

from shards.sampler import (
    PlanError,
    PlanSpec,
    batch_sizes,
    buffer_permutation,
    consumed_positions,
    epoch_order,
    from_intervals,
    rank_batches,
    to_intervals,
    worker_batches,
)

COUNTS = [13, 12, 12, 12, 11, 12, 13, 12]  # 97 samples in 8 shards


def test_buffer_permutation_is_a_permutation_with_bounded_lookahead() -> None:
    for n, buf in [(50, 8), (50, 1), (50, 100), (1, 4), (0, 4)]:
        perm = buffer_permutation(n, buf, np.random.default_rng(3))
        assert sorted(perm.tolist()) == list(range(n))
        if 1 < buf < n:
            assert all(perm[i] < buf + i for i in range(n))  # never needs more than `buf` read-ahead
            assert perm.tolist() != list(range(n))
    assert buffer_permutation(10, 1, np.random.default_rng(0)).tolist() == list(range(10))


def test_epoch_order_is_a_seeded_permutation_that_changes_per_epoch() -> None:
    o0 = epoch_order(COUNTS, seed=1, epoch=0, buffer=5)
    assert sorted(o0.tolist()) == list(range(97))
    np.testing.assert_array_equal(o0, epoch_order(COUNTS, seed=1, epoch=0, buffer=5))
    assert o0.tolist() != epoch_order(COUNTS, seed=1, epoch=1, buffer=5).tolist()
    assert o0.tolist() != epoch_order(COUNTS, seed=2, epoch=0, buffer=5).tolist()
    # shard-contiguous: each run of the order stays inside one shard
    first = np.cumsum([0, *COUNTS])
    shard = np.searchsorted(first, o0, side="right") - 1
    assert (np.diff(shard) != 0).sum() == len(COUNTS) - 1
    assert epoch_order(COUNTS, 0, 0, shuffle=False).tolist() == list(range(97))


@pytest.mark.parametrize("world,workers,batch", [(1, 1, 4), (2, 2, 4), (3, 2, 5), (4, 3, 2)])
def test_ranks_get_equal_batches_disjoint_and_drop_only_the_tail(
    world: int, workers: int, batch: int
) -> None:
    rem = np.arange(97)
    spec = PlanSpec(world, workers, batch)
    per_rank = [rank_batches(rem, spec, r) for r in range(world)]
    assert len({len(b) for b in per_rank}) == 1
    flat = np.concatenate([np.concatenate(b) for b in per_rank])
    assert len(flat) == len(set(flat.tolist())) == (97 // (world * batch)) * world * batch
    assert all(len(x) == batch for b in per_rank for x in b)
    assert set(flat.tolist()) == set(range(len(flat)))  # what is left out is the tail of the epoch order


def test_drop_last_false_uses_every_sample_with_equal_batch_counts() -> None:
    rem = np.arange(97)
    spec = PlanSpec(2, 2, 8, drop_last=False)
    per_rank = [rank_batches(rem, spec, r) for r in range(2)]
    assert len(per_rank[0]) == len(per_rank[1])
    flat = sorted(np.concatenate([np.concatenate(b) for b in per_rank]).tolist())
    assert flat == list(range(97))
    assert max(len(x) for b in per_rank for x in b) <= 8
    with pytest.raises(PlanError):
        batch_sizes(3, PlanSpec(2, 1, 1, drop_last=False))


def test_worker_round_robin_reproduces_the_rank_order_from_any_position() -> None:
    spec = PlanSpec(1, 3, 4)
    batches = rank_batches(np.arange(97), spec, 0)
    for position in (0, 1, 5, 7, len(batches)):
        per_worker = worker_batches(batches, position, 3)
        # DataLoader's in-order round robin over workers, skipping exhausted ones
        merged, i = [], 0
        iters = [iter(w) for w in per_worker]
        active = list(range(3))
        while active:
            w = active[i % len(active)]
            try:
                merged.append(next(iters[w]))
                i += 1
            except StopIteration:
                active.remove(w)
        assert [b.tolist() for b in merged] == [b.tolist() for b in batches[position:]]
        # each worker reads one contiguous run of positions (one sub-range)
        for w in per_worker:
            if w:
                pos = np.sort(np.concatenate(w))
                assert pos[-1] - pos[0] + 1 == len(pos)


def test_intervals_round_trip() -> None:
    pos = np.array([0, 1, 2, 5, 6, 9])
    assert to_intervals(pos) == [[0, 3], [5, 7], [9, 10]]
    np.testing.assert_array_equal(from_intervals(to_intervals(pos)), pos)
    assert to_intervals(np.array([], dtype=np.int64)) == []


@pytest.mark.parametrize("old_world,new_world", [(2, 1), (2, 3), (4, 2), (1, 2)])
def test_world_size_change_neither_repeats_nor_skips(old_world: int, new_world: int) -> None:
    n, batch = 97, 3
    old = PlanSpec(old_world, 2, batch)
    rem = np.arange(n)
    taken = 5
    done = consumed_positions(rem, old, [taken] * old_world)
    first_part = np.concatenate([np.concatenate(rank_batches(rem, old, r)[:taken]) for r in range(old_world)])
    np.testing.assert_array_equal(np.sort(first_part), done)
    rest = np.setdiff1d(rem, done)
    new = PlanSpec(new_world, 1, batch)
    second = [rank_batches(rest, new, r) for r in range(new_world)]
    assert len({len(b) for b in second}) == 1
    seen = np.concatenate([first_part, *[np.concatenate(b) for b in second if b]])
    assert len(seen) == len(set(seen.tolist()))  # no repeat
    assert n - len(seen) < new_world * batch  # only the tail remainder is left out


def test_bucketing_groups_similar_lengths_and_keeps_the_sample_set() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 500, size=97)
    order = epoch_order(COUNTS, 0, 0, buffer=4)
    spec_b = PlanSpec(1, 1, 4, bucket=8)
    plain = rank_batches(np.arange(97), PlanSpec(1, 1, 4), 0)
    bucketed = rank_batches(np.arange(97), spec_b, 0, lengths=lengths, order=order, seed=0, epoch=0)
    assert sorted(np.concatenate(plain).tolist()) == sorted(np.concatenate(bucketed).tolist())

    def spread(batches):
        return np.mean([np.ptp(lengths[order[b]]) for b in batches])

    assert spread(bucketed) < 0.5 * spread(plain)
    again = rank_batches(np.arange(97), spec_b, 0, lengths=lengths, order=order, seed=0, epoch=0)
    assert [b.tolist() for b in again] == [b.tolist() for b in bucketed]
