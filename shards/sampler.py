"""The epoch plan: which sample goes into which batch on which rank, as a pure function of the manifest.

Everything is computed in the main process from the per-shard sample counts (and frame counts for
bucketing); DataLoader workers only fetch the samples they are told to. That makes the batch sequence
exact and resumable, and lets a new world size pick up exactly the samples nobody has seen yet.

1. **Epoch order** (depends on ``seed, epoch`` only): shards in a seeded random order; inside each shard
   the output order of a seeded shuffle buffer of ``buffer`` samples (a full permutation when the buffer
   holds the shard). A sample's id is ``shard.first_id + stored position``.
2. **Remaining positions**: the epoch-order positions not yet consumed (all at epoch start).
3. **Per-rank batches**: the remaining positions are cut into ``world`` contiguous ranges, one per rank,
   each holding the same number ``N`` of batches. ``drop_last=True``: batches of exactly ``B``; the last
   ``n mod (world*B)`` remaining positions (the tail of the epoch order, fewer than ``world*B`` samples;
   different samples every epoch when shuffling) are not used in this epoch. ``drop_last=False``: every
   sample is used, ``N = ceil(max_rank_samples / B)`` and batch sizes vary by at most one.
4. **Worker layout**: a rank's range is split into ``K`` contiguous sub-ranges (``K`` = DataLoader workers);
   consumption position ``q`` is sub-range ``q mod K``'s ``(q div K)``-th batch. That is the round-robin
   order in which a ``DataLoader`` returns batches of ``K`` workers, and each worker reads a contiguous run
   of shards. After skipping ``m`` consumed batches, worker ``p`` gets positions ``m+p, m+p+K, ...``, all in
   one sub-range, so resuming keeps the order exactly.
5. **Length bucketing** (optional): inside a sub-range, windows of ``bucket`` batches are sorted by length,
   re-cut with the same batch sizes, and the window's batches shuffled (seeded).

**Global plan** (elastic; what training uses): steps 3-5 are replaced by a plan that never looks at the
world size. The remaining positions are cut into *global batches* of ``G`` samples in epoch order
(bucketing, if on, sorts windows of global batches, seeded by ``seed, epoch, G``), so step ``s`` trains on
the same samples on any number of ranks. Only then is each global batch split: rank ``r`` of ``W`` takes
the strided share ``batch[r::W]`` (sizes differ by at most one, balanced when bucketed) and cuts it into
``A`` contiguous micro-batches (``A`` = accumulation steps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def buffer_permutation(n: int, buffer: int, rng: np.random.Generator) -> np.ndarray:
    """Output order of a shuffle buffer of ``buffer`` items over the stream 0..n-1.

    Item ``i`` of the output is always one of the first ``buffer + i`` stream items, so a reader that
    streams the shard in stored order never holds more than ``buffer`` samples it cannot yet hand out.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if buffer >= n:
        return rng.permutation(n).astype(np.int64)
    if buffer <= 1:
        return np.arange(n, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    buf = list(range(buffer))
    nxt = buffer
    draws = rng.random(n)
    for i in range(n):
        j = int(draws[i] * len(buf))
        out[i] = buf[j]
        if nxt < n:
            buf[j] = nxt
            nxt += 1
        else:
            buf[j] = buf[-1]
            buf.pop()
    return out


def epoch_order(
    counts: Sequence[int], seed: int, epoch: int, shuffle: bool = True, buffer: int = 1000
) -> np.ndarray:
    """Sample ids in the order of epoch ``epoch`` (ids = shard offset + stored position)."""
    counts = [int(c) for c in counts]
    first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    if not shuffle:
        return np.arange(first[-1], dtype=np.int64)
    shard_order = np.random.default_rng([seed, epoch]).permutation(len(counts))
    parts = []
    for s in shard_order:
        rng = np.random.default_rng([seed, epoch, int(s)])
        parts.append(first[s] + buffer_permutation(counts[s], buffer, rng))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class PlanSpec:
    """The settings that shape batches; a resume is exact when they are unchanged."""

    world: int
    workers: int  # logical workers per rank (max(1, num_workers))
    batch_size: int
    drop_last: bool = True
    bucket: int = 0  # length-bucketing window in batches; 0 = off

    def __post_init__(self) -> None:
        if self.world < 1 or self.workers < 1 or self.batch_size < 1 or self.bucket < 0:
            raise ValueError(f"invalid plan {self}")

    def to_dict(self) -> dict:
        return asdict(self)


class PlanError(ValueError):
    """An epoch cannot be split as asked (e.g. fewer samples than ranks)."""


def batch_sizes(n: int, spec: PlanSpec) -> tuple[int, list[int], list[list[int]]]:
    """(N batches per rank, samples per rank, batch sizes per rank) for ``n`` remaining samples."""
    w, b = spec.world, spec.batch_size
    if spec.drop_last:
        nb = n // (w * b)
        return nb, [nb * b] * w, [[b] * nb for _ in range(w)]
    if n == 0:
        return 0, [0] * w, [[] for _ in range(w)]
    per_rank = [n // w + (1 if r < n % w else 0) for r in range(w)]
    nb = math.ceil(per_rank[0] / b)
    if per_rank[-1] < nb:
        raise PlanError(
            f"{n} samples cannot fill {nb} non-empty batches on each of {w} ranks with batch size {b}; "
            "use drop_last=True or a larger batch size"
        )
    sizes = [[c // nb + (1 if q < c % nb else 0) for q in range(nb)] for c in per_rank]
    return nb, per_rank, sizes


def rank_batches(
    remaining: np.ndarray,
    spec: PlanSpec,
    rank: int,
    *,
    lengths: np.ndarray | None = None,
    order: np.ndarray | None = None,
    seed: int = 0,
    epoch: int = 0,
) -> list[np.ndarray]:
    """Batches of ``rank`` in consumption order, as arrays of epoch-order positions (values of ``remaining``).

    ``lengths`` (frames per sample id) and ``order`` (ids by epoch position) are needed for bucketing.
    """
    if not 0 <= rank < spec.world:
        raise ValueError(f"rank {rank} not in 0..{spec.world - 1}")
    n = len(remaining)
    nb, per_rank, sizes_all = batch_sizes(n, spec)
    start = sum(per_rank[:rank])
    sizes = sizes_all[rank]
    k = spec.workers
    out: list[np.ndarray | None] = [None] * nb
    offset = start
    for s in range(k):
        qs = list(range(s, nb, k))
        sub_sizes = [sizes[q] for q in qs]
        sub = remaining[offset : offset + sum(sub_sizes)]
        offset += sum(sub_sizes)
        batches = _cut(sub, sub_sizes)
        if spec.bucket and lengths is not None and order is not None:
            batches = _bucket(
                batches,
                sub_sizes,
                spec.bucket,
                lengths,
                order,
                np.random.default_rng([seed, epoch, spec.world, rank, s, 7919]),
            )
        for q, batch in zip(qs, batches):
            out[q] = batch
    return out  # type: ignore[return-value]


def _cut(values: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    edges = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return [values[edges[i] : edges[i + 1]] for i in range(len(sizes))]


def _bucket(
    batches: list[np.ndarray],
    sizes: list[int],
    window: int,
    lengths: np.ndarray,
    order: np.ndarray,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for w0 in range(0, len(batches), window):
        group = batches[w0 : w0 + window]
        pos = np.concatenate(group)
        lens = lengths[order[pos]]
        sorted_pos = pos[np.lexsort((pos, lens))]  # by length, ties by position: deterministic
        wsizes = sizes[w0 : w0 + window]
        cut = _cut(sorted_pos, wsizes)
        # shuffle which bucket comes when; a slot keeps its size (sizes differ by at most one)
        pools: dict[int, list[np.ndarray]] = {}
        for i in rng.permutation(len(cut)):
            pools.setdefault(len(cut[i]), []).append(cut[i])
        out.extend(pools[size].pop() for size in wsizes)
    return out


def worker_batches(batches: Sequence[np.ndarray], position: int, workers: int) -> list[list[np.ndarray]]:
    """Split the not-yet-consumed batches over DataLoader workers so the round robin reproduces them."""
    rest = list(batches[position:])
    return [rest[p::workers] for p in range(workers)]


# --- remaining-set bookkeeping (for a changed world size) ------------------------------------------


def to_intervals(positions: np.ndarray) -> list[list[int]]:
    """Sorted unique positions -> [[start, end), ...] (compact state)."""
    if len(positions) == 0:
        return []
    p = np.asarray(positions, dtype=np.int64)
    breaks = np.nonzero(np.diff(p) != 1)[0]
    starts = np.concatenate([[p[0]], p[breaks + 1]])
    ends = np.concatenate([p[breaks] + 1, [p[-1] + 1]])
    return [[int(a), int(b)] for a, b in zip(starts, ends)]


def from_intervals(intervals: Sequence[Sequence[int]]) -> np.ndarray:
    if not intervals:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in intervals])


def consumed_positions(
    remaining: np.ndarray,
    spec: PlanSpec,
    consumed: Sequence[int],
    *,
    lengths: np.ndarray | None = None,
    order: np.ndarray | None = None,
    seed: int = 0,
    epoch: int = 0,
) -> np.ndarray:
    """Epoch positions consumed when rank r has taken ``consumed[r]`` batches of the plan."""
    if len(consumed) != spec.world:
        raise ValueError(f"need one consumed count per rank ({spec.world}), got {len(consumed)}")
    taken = []
    for r in range(spec.world):
        batches = rank_batches(remaining, spec, r, lengths=lengths, order=order, seed=seed, epoch=epoch)
        if consumed[r] > len(batches):
            raise ValueError(f"rank {r} consumed {consumed[r]} batches of a {len(batches)}-batch epoch")
        taken.extend(batches[: consumed[r]])
    return np.sort(np.concatenate(taken)) if taken else np.zeros(0, dtype=np.int64)


# --- the global plan (elastic: independent of ranks and workers) --------------------------------------


@dataclass(frozen=True)
class GlobalPlanSpec:
    """The settings that decide the global batches; the world size and accumulation only split them."""

    global_batch: int
    drop_last: bool = True
    bucket: int = 0  # length-bucketing window in global batches; 0 = off

    def __post_init__(self) -> None:
        if self.global_batch < 1 or self.bucket < 0:
            raise ValueError(f"invalid global plan {self}")

    def to_dict(self) -> dict:
        return asdict(self)


def split_sizes(n: int, parts: int) -> list[int]:
    """``n`` items in ``parts`` parts whose sizes differ by at most one, larger first."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def global_batches(
    remaining: np.ndarray,
    spec: GlobalPlanSpec,
    *,
    lengths: np.ndarray | None = None,
    order: np.ndarray | None = None,
    seed: int = 0,
    epoch: int = 0,
) -> list[np.ndarray]:
    """The epoch's global batches in step order, as arrays of epoch-order positions (values of ``remaining``).

    A function of the remaining positions, ``seed``, ``epoch`` and ``spec`` only. ``drop_last=False`` keeps a
    smaller last global batch. ``lengths``/``order`` (frames per sample id, ids by position) enable bucketing.
    """
    g = spec.global_batch
    full = len(remaining) // g
    sizes = [g] * full
    if not spec.drop_last and len(remaining) % g:
        sizes.append(len(remaining) % g)
    batches = _cut(remaining[: sum(sizes)], sizes)
    if spec.bucket and lengths is not None and order is not None:
        rng = np.random.default_rng([seed, epoch, g, 7919])
        batches = _bucket(batches, sizes, spec.bucket, lengths, order, rng)
    return batches


def micro_batches(batch: np.ndarray, world: int, rank: int, micro_steps: int) -> list[np.ndarray]:
    """Rank ``rank``'s ``micro_steps`` micro-batches of one global batch (its strided share, cut in order)."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} not in 0..{world - 1}")
    share = batch[rank::world]
    if len(share) < micro_steps:
        raise PlanError(
            f"a global batch of {len(batch)} samples gives rank {rank} of {world} only {len(share)} samples, "
            f"fewer than its {micro_steps} micro-batches"
        )
    return _cut(share, split_sizes(len(share), micro_steps))


class RankPlan(Sequence[np.ndarray]):
    """One rank's micro-batches of a global plan as sample ids, in consumption order, without a Python
    object per batch: the full global batches are one (batches, share) matrix, cut on access."""

    def __init__(self, full: np.ndarray, tail: list[np.ndarray], micro_steps: int) -> None:
        self.full, self.tail, self.micro_steps = full, tail, micro_steps
        edges = np.cumsum([0, *split_sizes(full.shape[1], micro_steps)]) if len(full) else np.zeros(1)
        self.edges = [int(e) for e in edges]

    def __len__(self) -> int:
        return len(self.full) * self.micro_steps + len(self.tail)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        g, q = divmod(i, self.micro_steps)
        if g < len(self.full):
            return self.full[g, self.edges[q] : self.edges[q + 1]]
        return self.tail[i - len(self.full) * self.micro_steps]


def rank_plan(
    remaining: np.ndarray,
    spec: GlobalPlanSpec,
    world: int,
    rank: int,
    micro_steps: int,
    order: np.ndarray,
    *,
    lengths: np.ndarray | None = None,
    seed: int = 0,
    epoch: int = 0,
) -> RankPlan:
    """The same micro-batches as :func:`rank_micro_batches` over :func:`global_batches`, as sample ids
    (``order[position]``), built with a few array operations (a 2M-sample epoch in well under a second)."""
    g = spec.global_batch
    if spec.bucket and lengths is not None:
        batches = global_batches(remaining, spec, lengths=lengths, order=order, seed=seed, epoch=epoch)
        full_rows = [b for b in batches if len(b) == g]
        tail_batches = [b for b in batches if len(b) != g]
        full = np.stack(full_rows) if full_rows else np.zeros((0, g), dtype=np.int64)
    else:
        nb = len(remaining) // g
        full = remaining[: nb * g].reshape(nb, g)
        rest = remaining[nb * g :]
        tail_batches = [rest] if len(rest) and not spec.drop_last else []
    if len(full) and g // world < micro_steps:
        micro_batches(full[0], world, rank, micro_steps)  # raises PlanError with the numbers
    shares = order[full[:, rank::world]]
    tail = [order[m] for b in tail_batches for m in micro_batches(b, world, rank, micro_steps)]
    return RankPlan(shares, tail, micro_steps)


def rank_micro_batches(
    batches: Sequence[np.ndarray], world: int, rank: int, micro_steps: int
) -> list[np.ndarray]:
    """This rank's micro-batches of ``batches`` in consumption order (``micro_steps`` per batch)."""
    out: list[np.ndarray] = []
    for b in batches:
        out.extend(micro_batches(b, world, rank, micro_steps))
    return out
