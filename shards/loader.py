"""A distributed, stateful loader over the shards, producing ``MotionBatch``es (actiongpt/models/batch.py).

Guarantees (see :mod:`shards.sampler` for how):

- every rank gets the same number of batches per epoch; no sample is seen twice in an epoch;
- per-epoch shuffling of the shard order and a seeded within-shard shuffle buffer; DataLoader workers
  each read a contiguous run of shards; optional length bucketing;
- ``state_dict()`` / ``load_state_dict()``:
  * **same world size, workers, batch size, drop_last and bucketing: exact.** The resumed loader yields
    exactly the batches (same samples, same order, same content) the uninterrupted run would have.
  * **changed world size (or workers / batch size / bucketing): no repeat, no skip.** The samples that no
    rank has consumed yet in the interrupted epoch are re-split over the new ranks; none is repeated and
    none is skipped, except that ``drop_last`` leaves out fewer than ``world * batch_size`` samples at the
    end of the epoch order (as at any epoch end). The batch composition of that epoch differs from any
    uninterrupted run; from the next epoch on the order is exactly that of a run started with the new
    world size. With several per-rank states (``load_state_dict([s0, s1, ...])``) ranks may have
    consumed different counts; a single state means all ranks consumed the same count (lockstep steps).

The state is identical on every rank at a step boundary (rank-independent), so any rank's copy can be
loaded on any rank.

**Global plan** (``set_global_batch(G, A)``, what the trainer uses): the epoch is cut into global batches
of ``G`` samples that depend on the seed, the epoch and ``G`` only; each rank gets its share of every global
batch as ``A`` micro-batches. The state records how many global batches were consumed, so a resume on any
number of ranks continues with exactly the global batches of the uninterrupted run. A different ``G`` on
resume re-plans the unconsumed rest of the epoch (no repeat, no skip).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from shards.collate import Prepared, TextChoice, collate, select_text
from shards.format import ShardError, sample_key
from shards.manifest import Manifest
from shards.reader import PAIR_MODE, ByteLRU, TextTable, decode_sample, iter_raw
from shards.sampler import (
    GlobalPlanSpec,
    PlanError,
    PlanSpec,
    consumed_positions,
    epoch_order,
    from_intervals,
    global_batches,
    rank_batches,
    rank_plan,
    to_intervals,
    worker_batches,
)

log = logging.getLogger(__name__)
STATE_VERSION = 1


@dataclass
class LoaderConfig:
    """The training data loader. Defaults: Action-GPT's 4 samples per GPU, k and aggregator as built."""

    root: str = "data/embedded/shards/pairs-minilm"
    split: str = "train"
    batch_size: int = 4
    num_workers: int = 2
    shuffle: bool = True
    shuffle_buffer: int = 1000  # within-shard shuffle buffer; >= samples per shard = full shard permutation
    drop_last: bool = True
    bucket_batches: int = 0  # length bucketing window in batches (0 = off)
    seed: int = 0
    text_source: str = "descriptions"  # descriptions (Action-GPT) | label (the baseline)
    k: int | None = None  # None = all stored descriptions
    aggregator: str | None = None  # None = "original" (or the stored aggregate)
    pin_memory: bool = False
    prefetch_factor: int = 2
    table_cache_mb: float = 16.0  # decoded text-table entries kept per worker
    text_cache_mb: float = 64.0  # per worker: the selected (aggregated) text of recent labels, float32
    timeout_s: float = 0.0  # DataLoader timeout (0 = wait forever)
    # worker start method: None = the process default (fork on Linux, but "spawn" inside processes started by
    # torch.multiprocessing.spawn, where every worker then re-imports torch); "fork" | "spawn" | "forkserver"
    mp_context: str | None = None


class _Fetcher:
    """Worker side: reads the shards, decodes the samples a batch list asks for, collates batches."""

    def __init__(
        self, manifest: Manifest, split: str, choice: TextChoice, table_cache_mb: float, text_cache_mb: float
    ) -> None:
        self.manifest = manifest
        self.split = split
        self.pairs = manifest.mode(split) == PAIR_MODE
        self.shards = manifest.shards(split)
        self.first_ids = [s.first_id for s in self.shards]
        self.mean, self.std = manifest.stats()
        self.choice = choice
        self.table = (
            TextTable(manifest, split, table_cache_mb) if manifest.text["storage"] == "table" else None
        )
        # A label's selected text is a pure function of its stored block and the choice: aggregate once.
        self.text_cache = ByteLRU(int(text_cache_mb * 1e6))

    def shard_of(self, sid: int) -> int:
        s = bisect.bisect_right(self.first_ids, sid) - 1
        if s < 0 or sid >= self.first_ids[s] + self.shards[s].count:
            raise ShardError(f"sample id {sid} is outside the shards of split {self.split}")
        return s

    def _prepare(self, key: str, raw: dict[str, bytes], shard: str) -> Prepared:
        d = decode_sample(key, raw, shard, self.manifest, self.split)
        texts = []
        for j, label in enumerate(d.meta["labels"]):
            hit = self.text_cache.get(label)
            if hit is None:
                block = d.blocks[j] if d.blocks is not None else self.table.block(d.label_ids[j])  # type: ignore
                hit = select_text(block, self.choice)
                self.text_cache.put(label, hit, hit[0].nbytes + hit[1].nbytes)
            texts.append(hit)
        return Prepared(
            key=d.meta["key"],
            motion=d.motion,  # as stored: collate normalises the batch at once
            lengths=[int(x) for x in d.meta["lengths"]],
            labels=list(d.meta["labels"]),
            texts=texts,
        )

    def batches(self, plan: Sequence[np.ndarray]) -> Iterator[dict[str, Any]]:
        """Yield the collated batches of ``plan`` (arrays of sample ids), reading each shard at most once."""
        needed: dict[int, set[int]] = {}
        for batch in plan:
            for sid in batch:
                needed.setdefault(self.shard_of(int(sid)), set()).add(int(sid))
        streams: dict[int, Iterator[tuple[str, dict[str, bytes]]]] = {}
        cursor: dict[int, int] = {}  # next expected id per open shard
        pending: dict[int, Prepared] = {}
        try:
            for batch in plan:
                samples = []
                for sid in (int(x) for x in batch):
                    if sid not in pending:
                        self._advance(sid, needed, streams, cursor, pending)
                    samples.append(pending.pop(sid))
                    s = self.shard_of(sid)
                    needed[s].discard(sid)
                    if not needed[s] and s in streams:
                        streams.pop(s).close()  # type: ignore[attr-defined]
                yield collate(samples, self.pairs, self.mean, self.std)
        finally:
            for it in streams.values():
                it.close()  # type: ignore[attr-defined]

    def _advance(
        self,
        sid: int,
        needed: dict[int, set[int]],
        streams: dict,
        cursor: dict[int, int],
        pending: dict[int, Prepared],
    ) -> None:
        s = self.shard_of(sid)
        info = self.shards[s]
        if s not in streams:
            streams[s] = iter_raw(self.manifest.root / info.name)
            cursor[s] = info.first_id
        for key, raw in streams[s]:
            want = sample_key(cursor[s])
            if key != want:
                raise ShardError(
                    f"shard {info.name}: found sample {key} where {want} was expected "
                    "(the shard does not match the manifest)"
                )
            current = cursor[s]
            cursor[s] += 1
            if current == sid:
                pending[sid] = self._prepare(key, raw, info.name)
                return
            if current in needed[s]:
                pending[current] = self._prepare(key, raw, info.name)
        raise ShardError(
            f"shard {info.name}: ended after {cursor[s] - info.first_id} samples before sample "
            f"{sample_key(sid)}; the manifest says {info.count} (truncated shard?)"
        )


class _PlanDataset(IterableDataset):
    """Each DataLoader worker yields the collated batches of its own batch list."""

    def __init__(self, fetcher: _Fetcher, per_worker: list[list[np.ndarray]]) -> None:
        self.fetcher = fetcher
        self.per_worker = per_worker

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        wid = 0 if info is None else info.id
        yield from self.fetcher.batches(self.per_worker[wid])


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _one_line_errors(batches: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A DataLoader worker's ``ShardError`` comes back carrying the worker's traceback in its message:
    re-raise it with the original one line (shard and sample)."""
    try:
        yield from batches
    except ShardError as exc:
        text = str(exc)
        if "\nOriginal Traceback" not in text:
            raise
        last = text.rstrip().splitlines()[-1]
        raise ShardError(last.split("ShardError: ", 1)[-1]) from None


class ShardLoader:
    """Iterate batches of one split for this rank; ``for batch in loader`` runs (the rest of) one epoch.

    After an epoch is exhausted the next ``iter()`` starts the following epoch. ``set_epoch(e)`` restarts at
    the beginning of epoch ``e`` (cluster.loader_protocol): call it to start an epoch, never right after
    ``load_state_dict`` (that would discard the restored position).
    """

    def __init__(
        self,
        cfg: LoaderConfig,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        manifest: Manifest | None = None,
    ) -> None:
        if rank is None or world_size is None:
            rank, world_size = _dist_rank_world()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.cfg = cfg
        self.rank, self.world_size = rank, world_size
        self.manifest = manifest or Manifest.load(Path(cfg.root))
        self.split = cfg.split
        self.counts = self.manifest.counts(cfg.split)
        self.num_samples = sum(self.counts)
        self.lengths = np.asarray(
            [x for s in self.manifest.shards(cfg.split) for x in s.lengths], dtype=np.int64
        )
        self.choice = TextChoice(cfg.text_source, cfg.k, cfg.aggregator).resolve(self.manifest.text)
        self.spec = PlanSpec(
            world_size, max(1, cfg.num_workers), cfg.batch_size, cfg.drop_last, cfg.bucket_batches
        )
        self.epoch = 0
        self.position = 0  # batches of the current plan already handed out
        self.remaining: np.ndarray | None = None  # epoch positions still to plan (None = all)
        self._fetcher = _Fetcher(self.manifest, cfg.split, self.choice, cfg.table_cache_mb, cfg.text_cache_mb)
        self._cached: tuple[Any, np.ndarray | None, list[np.ndarray]] | None = None
        self.gspec: GlobalPlanSpec | None = None  # set_global_batch: the elastic global plan
        self.micro_steps = 1
        if self.batches_per_epoch == 0:
            raise ShardError(
                f"split {cfg.split} has {self.num_samples} samples: not one batch of {cfg.batch_size} "
                f"for each of {world_size} ranks"
            )

    # --- planning ------------------------------------------------------------------------------------
    def _order(self, epoch: int) -> np.ndarray:
        return epoch_order(self.counts, self.cfg.seed, epoch, self.cfg.shuffle, self.cfg.shuffle_buffer)

    def _remaining(self) -> np.ndarray:
        return np.arange(self.num_samples, dtype=np.int64) if self.remaining is None else self.remaining

    def set_global_batch(self, global_batch: int, micro_steps: int) -> None:
        """Switch to the global plan: global batches of ``global_batch`` samples, ``micro_steps``
        micro-batches per rank each. Call it at a step boundary, before ``set_epoch``/``load_state_dict``."""
        spec = GlobalPlanSpec(int(global_batch), self.cfg.drop_last, self.cfg.bucket_batches)
        if global_batch < self.world_size * micro_steps:
            raise PlanError(
                f"a global batch of {global_batch} cannot give each of {self.world_size} ranks "
                f"{micro_steps} non-empty micro-batches"
            )
        steps = self.position // self.micro_steps
        self.gspec, self.micro_steps = spec, int(micro_steps)
        self.position = steps * self.micro_steps
        self._cached = None
        if self.batches_per_epoch == 0:
            raise ShardError(
                f"split {self.split} has {self.num_samples} samples: not one global batch of {global_batch}"
            )

    def _global_plan(
        self, order: np.ndarray, remaining: np.ndarray, spec: GlobalPlanSpec
    ) -> list[np.ndarray]:
        return global_batches(
            remaining, spec, lengths=self.lengths, order=order, seed=self.cfg.seed, epoch=self.epoch
        )

    def _plan(self) -> list[np.ndarray]:
        """This rank's batches of the current plan, as sample ids."""
        c = self._cached
        key = (self.epoch, self.spec, self.gspec, self.micro_steps)
        # remaining is replaced, never mutated: identity tells whether the plan is still current
        if c is None or c[0] != key or c[1] is not self.remaining:
            order = self._order(self.epoch)
            if self.gspec is not None:
                plan = rank_plan(
                    self._remaining(),
                    self.gspec,
                    self.world_size,
                    self.rank,
                    self.micro_steps,
                    order,
                    lengths=self.lengths,
                    seed=self.cfg.seed,
                    epoch=self.epoch,
                )
                self._cached = (key, self.remaining, plan)  # type: ignore[assignment]
                return self._cached[2]
            positions = rank_batches(
                self._remaining(),
                self.spec,
                self.rank,
                lengths=self.lengths,
                order=order,
                seed=self.cfg.seed,
                epoch=self.epoch,
            )
            self._cached = (key, self.remaining, [order[p] for p in positions])
        return self._cached[2]

    def _roll_epoch_if_done(self) -> None:
        if self.position >= len(self._plan()):
            self.epoch += 1
            self.position = 0
            self.remaining = None

    @property
    def batches_per_epoch(self) -> int:
        """Batches per rank in a full epoch with the current settings."""
        from shards.sampler import batch_sizes

        if self.gspec is not None:
            g = self.gspec.global_batch
            full = self.num_samples // g
            partial = not self.gspec.drop_last and self.num_samples % g
            return (full + (1 if partial else 0)) * self.micro_steps
        return batch_sizes(self.num_samples, self.spec)[0]

    def __len__(self) -> int:
        plan = self._plan()
        return len(plan) - self.position if self.position < len(plan) else self.batches_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its beginning (its order depends only on the seed and ``epoch``)."""
        self.epoch, self.position, self.remaining = int(epoch), 0, None

    # --- iteration -----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._roll_epoch_if_done()
        plan = self._plan()
        if self.cfg.num_workers <= 0:
            source: Any = self._fetcher.batches(plan[self.position :])
        else:
            per_worker = worker_batches(plan, self.position, self.spec.workers)
            source = DataLoader(
                _PlanDataset(self._fetcher, per_worker),
                batch_size=None,
                num_workers=self.cfg.num_workers,
                pin_memory=self.cfg.pin_memory and torch.cuda.is_available(),
                prefetch_factor=self.cfg.prefetch_factor,
                timeout=self.cfg.timeout_s,
                persistent_workers=False,
                multiprocessing_context=self.cfg.mp_context,
            )
        for batch in _one_line_errors(source):
            self.position += 1  # counted when handed out: a state saved after this step includes it
            yield batch

    # --- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.gspec is not None:
            return {
                **self._identity(),
                "version": STATE_VERSION,
                "mode": "global",
                "epoch": self.epoch,
                "steps": self.position // self.micro_steps,  # global batches consumed in this plan
                "position": self.position,
                "plan": self.gspec.to_dict(),
                "remaining": None if self.remaining is None else to_intervals(self.remaining),
                "rank": self.rank,
            }
        return {
            "version": STATE_VERSION,
            "split": self.split,
            "manifest": self.manifest.digest(),
            "num_samples": self.num_samples,
            "seed": self.cfg.seed,
            "shuffle": self.cfg.shuffle,
            "shuffle_buffer": self.cfg.shuffle_buffer,
            "epoch": self.epoch,
            "position": self.position,
            "plan": self.spec.to_dict(),
            "remaining": None if self.remaining is None else to_intervals(self.remaining),
            "rank": self.rank,
        }

    def _identity(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "manifest": self.manifest.digest(),
            "num_samples": self.num_samples,
            "seed": self.cfg.seed,
            "shuffle": self.cfg.shuffle,
            "shuffle_buffer": self.cfg.shuffle_buffer,
        }

    def load_state_dict(self, state: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
        """Resume from a state (or the list of all old ranks' states); see the module docstring."""
        states = [state] if isinstance(state, dict) else list(state)
        if not states:
            raise ValueError("empty loader state")
        s0 = states[0]
        if s0.get("version") != STATE_VERSION:
            raise ValueError(f"loader state version {s0.get('version')}, expected {STATE_VERSION}")
        for field in ("split", "manifest", "num_samples", "seed", "shuffle", "shuffle_buffer"):
            mine = {
                "split": self.split,
                "manifest": self.manifest.digest(),
                "num_samples": self.num_samples,
                "seed": self.cfg.seed,
                "shuffle": self.cfg.shuffle,
                "shuffle_buffer": self.cfg.shuffle_buffer,
            }[field]
            if s0.get(field) != mine:
                raise ValueError(
                    f"loader state has {field} = {s0.get(field)!r}, this loader {mine!r}: the epoch order "
                    "would differ, so the position cannot be resumed"
                )
        for s in states[1:]:
            if (s["epoch"], s["plan"], s["remaining"]) != (s0["epoch"], s0["plan"], s0["remaining"]):
                raise ValueError("per-rank loader states disagree on epoch or plan")
        if s0.get("mode") == "global":
            self._load_global(s0, states)
            return
        old = PlanSpec(**s0["plan"])
        self.epoch = int(s0["epoch"])
        self.remaining = None if s0["remaining"] is None else from_intervals(s0["remaining"])
        self._cached = None
        if old == self.spec:
            positions = {int(s["position"]) for s in states}
            if len(positions) > 1:
                raise ValueError(f"ranks consumed different batch counts {sorted(positions)} under one plan")
            self.position = positions.pop()
            return
        # A different plan: drop what any rank consumed, re-split the rest.
        if len(states) == 1:
            consumed = [int(s0["position"])] * old.world
        else:
            by_rank = {int(s["rank"]): int(s["position"]) for s in states}
            if sorted(by_rank) != list(range(old.world)):
                raise ValueError(f"need the states of all {old.world} old ranks, got ranks {sorted(by_rank)}")
            consumed = [by_rank[r] for r in range(old.world)]
        rem = self._remaining()
        order = self._order(self.epoch)
        if self.gspec is not None:
            log.info(
                "loader: continuing a per-rank plan %s with global batches of %d",
                old,
                self.gspec.global_batch,
            )
        done = consumed_positions(
            rem, old, consumed, lengths=self.lengths, order=order, seed=self.cfg.seed, epoch=self.epoch
        )
        self.remaining = np.setdiff1d(rem, done, assume_unique=True)
        self.position = 0
        log.info(
            "loader: plan changed %s -> %s in epoch %d; %d samples consumed, %d re-split over %d ranks",
            old,
            self.spec,
            self.epoch,
            len(done),
            len(self.remaining),
            self.spec.world,
        )

    def _load_global(self, s0: dict[str, Any], states: list[dict[str, Any]]) -> None:
        """Resume a global-plan state: the same global batches at any world size; a new ``G``
        re-plans the rest of the epoch."""
        if len({int(s["steps"]) for s in states}) > 1:
            raise ValueError("per-rank loader states disagree on the consumed global batches")
        if self.gspec is None:
            raise ValueError(
                "the state is of a global plan: call set_global_batch() before load_state_dict()"
            )
        old = GlobalPlanSpec(**s0["plan"])
        self.epoch = int(s0["epoch"])
        self.remaining = None if s0["remaining"] is None else from_intervals(s0["remaining"])
        self._cached = None
        steps = int(s0["steps"])
        if old == self.gspec:
            self.position = steps * self.micro_steps
            return
        rem = self._remaining()
        done_batches = self._global_plan(self._order(self.epoch), rem, old)[:steps]
        done = np.sort(np.concatenate(done_batches)) if done_batches else np.zeros(0, dtype=np.int64)
        self.remaining = np.setdiff1d(rem, done, assume_unique=True)
        self.position = 0
        log.info(
            "loader: global batch %d -> %d in epoch %d; %d samples consumed, %d re-planned",
            old.global_batch,
            self.gspec.global_batch,
            self.epoch,
            len(done),
            len(self.remaining),
        )
