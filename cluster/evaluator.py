"""The distributed evaluator: generate -> joints -> APE/AVE sums on every rank -> one all-reduce -> rank 0.

Generic over ``generate_fn(batch, seeds) -> features``: given a batch (``actiongpt.models.batch``) (single
actions or TEACH pairs) and one seed per sample, it returns UNNORMALISED 135-d features ``(B, T, 135)`` for
motions of the reference lengths (the original protocol generates with the ground-truth durations; pairs
``l_0 + l_1`` with the transition inside ``l_1``). ``cluster.eval_model.model_generate_fn`` wraps the real
backbones; tests use toy generators.

Why the result does not depend on the number of ranks:
- the generation seed of variant ``j`` of sample ``key`` is ``sample_seed(seed, key, j)`` -- never the rank,
  the batch position or the batch composition;
- every metric state is a plain sum (``actiongpt.metrics.MetricSums``); ranks add their sums with ONE
  ``all_reduce(SUM)`` of one float64 vector and rank 0 divides once. Only the order of float64 additions
  changes with the world size (differences ~1e-16 relative).

Samples exactly once: a loader that pads the last batches (so every rank has the same batch count) must
flag the duplicates with a ``valid`` bool (B,) entry; they are dropped before generation. Rank 0 receives
every rank's per-sample records and refuses to report when a key was evaluated twice or, given
``expected_count``, when samples are missing.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from actiongpt.metrics import MetricSums
from actiongpt.metrics_canon import FLOOR_MODES, HEADING_MODES
from actiongpt.models.sampling import derive_seed
from actiongpt.motion.features import FEATURE_DIM, NORM_EPS, denormalize
from actiongpt.motion.joints_fast import MMM21Joints
from actiongpt.motion.mmm import JOINTS_TYPES
from actiongpt.motion.skeleton import Skeleton, bundled_skeleton

log = logging.getLogger(__name__)

GenerateFn = Callable[[Mapping[str, Any], list[int]], Tensor]
# Sees every generated variant: (valid samples' batch, variant, features (B, T, 135), MMM-21 joints, the
# reference's MMM-21 joints, lengths) -- the evaluator-based metrics (cluster.eval_retrieval) reuse them.
Observer = Callable[[Mapping[str, Any], int, Tensor, Tensor, Tensor, Tensor], None]

__all__ = [
    "EvalError",
    "EvalResult",
    "EvalSettings",
    "Evaluator",
    "GenerateFn",
    "Observer",
    "RenderSample",
    "SampleRecord",
    "eval_runtime",
    "evaluate",
    "is_pair_batch",
    "reference_features",
    "sample_seed",
    "select_batch",
]


class EvalError(ValueError):
    """The evaluation cannot produce a trustworthy result; the message names the sample(s) and problem."""


def sample_seed(seed: int, key: str, index: int) -> int:
    """Generation seed of variant ``index`` of sample ``key``: a stable hash, independent of rank/batch."""
    return derive_seed(seed, "eval", key, index)


@contextmanager
def eval_runtime(backend: str = "auto", timeout_s: float = 600.0) -> Iterator[Any]:
    """The training runtime's process group + failure watchdog (``cluster.runtime.Runtime``), for evaluation.

    Rank layout from torchrun / srun / submitit (``cluster.dist_env``); also one rank. An exception on any
    rank of a multi-rank job ends every rank promptly instead of leaving them in the all-reduce. No
    preemption handlers: an evaluation is rerun, not resumed.
    """
    from cluster.runtime import Runtime, RuntimeConfig

    with Runtime(RuntimeConfig(backend, timeout_s, signals=())) as rt:
        yield rt


# ------------------------------------------------------------------------------------------- batches


def is_pair_batch(batch: Mapping[str, Any]) -> bool:
    """TEACH pairs carry ``motion_0``/``motion_1`` (the batch: actiongpt/models/batch.py)."""
    return "motion_0" in batch


def select_batch(batch: Mapping[str, Any], index: Sequence[int]) -> dict[str, Any]:
    """The samples ``index`` of a schema batch: tensors and lists with the batch size are indexed."""
    size = len(batch["keys"])
    idx = list(index)
    out: dict[str, Any] = {}
    for name, value in batch.items():
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == size:
            out[name] = value[torch.as_tensor(idx, dtype=torch.long, device=value.device)]
        elif isinstance(value, list | tuple) and len(value) == size:
            out[name] = [value[i] for i in idx]
        else:
            out[name] = value
    return out


def _lengths(batch: Mapping[str, Any], name: str) -> Tensor:
    value = batch.get(name)
    if not isinstance(value, Tensor) or value.dim() != 1 or value.dtype.is_floating_point:
        raise EvalError(f"batch entry {name!r} must be an int64 (B,) tensor, got {type(value).__name__}")
    return value.long()


def reference_features(batch: Mapping[str, Any], mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
    """Unnormalised reference features (B, T, 135) and their lengths (B,).

    Pairs: action 0 then (transition + action 1), i.e. the whole span the motion was cut from, as the
    original evaluates them against ``forward_seq`` outputs of lengths ``[l_0, l_1 + l_transition]``.
    """
    if is_pair_batch(batch):
        m0, m1 = batch["motion_0"], batch["motion_1"]
        for name, m in (("motion_0", m0), ("motion_1", m1)):
            if not isinstance(m, Tensor) or m.dim() != 3 or m.shape[-1] != FEATURE_DIM:
                shape = tuple(m.shape) if isinstance(m, Tensor) else type(m).__name__
                raise EvalError(f"reference {name} must be (B, T, {FEATURE_DIM}), got {shape}")
        l0, l1 = _lengths(batch, "lengths_0"), _lengths(batch, "lengths_1")
        total = l0 + l1
        (bs, n0, dim), n1 = m0.shape, m1.shape[1]
        t = torch.arange(int(total.max()), device=m0.device)[None, :]  # (1, T)
        b = torch.arange(bs, device=m0.device)[:, None]
        # frame t of sample b: row b * n0 + t of motion_0, else row b * n1 + t - l0 of motion_1 (after
        # motion_0's rows); one row gather (frames past the total length hold some frame: masked later)
        rows = torch.where(
            t >= l0[:, None],
            bs * n0 + b * n1 + (t - l0[:, None]).clamp(0, n1 - 1),
            b * n0 + t.clamp(max=n0 - 1),
        )
        src = torch.cat([m0.reshape(-1, dim), m1.reshape(-1, dim)])
        motion = src.index_select(0, rows.reshape(-1)).view(bs, -1, dim).float()
        # a new tensor: denormalize in place (the same operations as ``denormalize``)
        return motion.mul_(std.to(motion) + NORM_EPS).add_(mean.to(motion)), total
    motion, lengths = batch["motion"], _lengths(batch, "lengths")
    if not isinstance(motion, Tensor) or motion.dim() != 3 or motion.shape[-1] != FEATURE_DIM:
        shape = tuple(motion.shape) if isinstance(motion, Tensor) else type(motion).__name__
        raise EvalError(f"reference motion must be (B, T, {FEATURE_DIM}), got {shape}")
    motion = motion[:, : int(lengths.max())].float()
    return denormalize(motion, mean.to(motion), std.to(motion)), lengths


def _texts(batch: Mapping[str, Any], texts: Mapping[str, Any] | None) -> list[Any]:
    """The action text of each sample (a list of two for pairs): from the batch's ``labels`` (``labels_0``
    and ``labels_1`` for pairs) or ``texts`` entry, else from the given key -> text mapping."""
    keys = batch["keys"]
    n = len(keys)
    first, second = batch.get("labels_0"), batch.get("labels_1")
    if (
        isinstance(first, list | tuple)
        and isinstance(second, list | tuple)
        and len(first) == len(second) == n
    ):
        return [[a, b] for a, b in zip(first, second)]
    for name in ("labels", "texts"):
        value = batch.get(name)
        if isinstance(value, list | tuple) and len(value) == n:
            return [v[0] if isinstance(v, list | tuple) and len(v) == 1 else v for v in value]
    if texts is not None:
        return [texts.get(k) for k in keys]
    return [None] * n


def _key_rank(key: str) -> int:
    """A stable pseudo-random order of keys (render selection that does not depend on the rank layout)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


# -------------------------------------------------------------------------------------------- result


@dataclass
class SampleRecord:
    """Per-sample errors of one generated variant (frame means over the sample's common frames)."""

    key: str
    index: int  # variant (sample index j < num_samples)
    text: Any
    num_frames: int
    APE_root: float
    APE_traj: float
    APE_mean_pose: float
    APE_mean_joints: float


@dataclass
class RenderSample:
    """Joints of one sample for the renders: variant 0 and the reference, MMM-21 (T, 21, 3), y up."""

    key: str
    text: Any
    generated: Any  # numpy float32
    reference: Any


@dataclass
class EvalResult:
    """Final metrics (rank 0). ``metrics``: every variant pooled; ``per_variant[j]``: variant j alone."""

    metrics: dict[str, float]
    per_variant: list[dict[str, float]]
    samples: list[SampleRecord]
    sums: MetricSums
    world_size: int
    num_samples: int  # variants per text
    seconds: float  # wall time of the slowest rank (loading, generation, joints, metrics)
    rank_seconds: list[float] = field(default_factory=list)
    renders: list[RenderSample] = field(default_factory=list)
    out_dir: Path | None = None  # where the outputs were written (set by cluster.eval_run)

    @property
    def num_sequences(self) -> int:
        return len({r.key for r in self.samples})

    @property
    def samples_per_s(self) -> float:
        """Generated-and-scored sequences per second, over all ranks."""
        return len(self.samples) / self.seconds if self.seconds > 0 else math.inf

    def spread(self) -> dict[str, float]:
        """Standard deviation over variants of each headline metric (0 with one variant)."""
        from actiongpt.metrics import MAIN_KEYS

        if len(self.per_variant) < 2:
            return dict.fromkeys(MAIN_KEYS, 0.0)
        out = {}
        for k in MAIN_KEYS:
            vals = torch.tensor([m[k] for m in self.per_variant], dtype=torch.float64)
            out[k] = float(vals.std(unbiased=True))
        return out


@dataclass
class EvalSettings:
    """How to score. Defaults reproduce the original protocol (one sample per text, ``mmmns`` joints)."""

    seed: int = 0
    num_samples: int = 1
    floor: str = "original"
    heading: str = "original"
    jointstype: str = "mmmns"

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.floor not in FLOOR_MODES:
            raise ValueError(f"floor must be one of {FLOOR_MODES}, got {self.floor!r}")
        if self.heading not in HEADING_MODES:
            raise ValueError(f"heading must be one of {HEADING_MODES}, got {self.heading!r}")
        if self.jointstype not in JOINTS_TYPES:
            raise ValueError(f"jointstype must be one of {JOINTS_TYPES}, got {self.jointstype!r}")


# ---------------------------------------------------------------------------------------- evaluator


class Evaluator:
    """Per-rank accumulation (``add_batch``) and the collective finish (``finalize``)."""

    def __init__(
        self,
        generate_fn: GenerateFn,
        feature_mean: Tensor,
        feature_std: Tensor,
        *,
        settings: EvalSettings | None = None,
        skeleton: Skeleton | None = None,
        texts: Mapping[str, Any] | None = None,
        device: torch.device | str = "cpu",
        keep_renders: int = 0,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.generate_fn = generate_fn
        self.observers = list(observers)
        self.settings = settings or EvalSettings()
        self.device = torch.device(device)
        self.mean = torch.as_tensor(feature_mean, dtype=torch.float32).to(self.device)
        self.std = torch.as_tensor(feature_std, dtype=torch.float32).to(self.device)
        for name, t in (("mean", self.mean), ("std", self.std)):
            if tuple(t.shape) != (FEATURE_DIM,):
                raise EvalError(f"feature {name} must have shape ({FEATURE_DIM},), got {tuple(t.shape)}")
        self.skeleton = skeleton or bundled_skeleton()
        self._to_joints = MMM21Joints(self.skeleton, self.settings.jointstype)
        self.texts = texts
        s = self.settings
        self.sums = [MetricSums(floor=s.floor, heading=s.heading) for _ in range(s.num_samples)]
        self.records: list[SampleRecord] = []
        self.seconds = 0.0
        # the keep_renders samples with the smallest _key_rank seen here (a max-heap via negated ranks)
        self.keep_renders = keep_renders
        self._render_heap: list[tuple[int, str, RenderSample]] = []

    # -- one batch ---------------------------------------------------------------------------------
    def joints(self, features: Tensor, lengths: Tensor) -> Tensor:
        """Unnormalised features (B, T, 135) -> MMM-21 joints (B, T, 21, 3); zero after each length."""
        # = joints_mmm21(*features_to_rotations(features)), the same numbers (actiongpt.motion.joints_fast);
        # padded frames (zero 6D rotations) are never converted and come out as zeros
        return self._to_joints.padded(features, lengths)

    def add_batch(self, batch: Mapping[str, Any]) -> list[SampleRecord]:
        """Generate every variant of the batch's valid samples, score them, add to this rank's sums."""
        t0 = time.perf_counter()
        keys = batch.get("keys")
        if not isinstance(keys, list | tuple) or not keys:
            raise EvalError("batch has no 'keys' list (see actiongpt/models/batch.py)")
        valid = batch.get("valid")
        if valid is not None:
            flags = torch.as_tensor(valid, dtype=torch.bool).reshape(-1).tolist()
            if len(flags) != len(keys):
                raise EvalError(f"batch 'valid' has {len(flags)} entries for {len(keys)} keys")
            if not all(flags):
                batch = select_batch(batch, [i for i, ok in enumerate(flags) if ok])
                keys = batch["keys"]
                if not keys:
                    return []
        batch = {k: (v.to(self.device) if isinstance(v, Tensor) else v) for k, v in batch.items()}
        ref_feats, ref_len = reference_features(batch, self.mean, self.std)
        ref_joints = self.joints(ref_feats, ref_len)
        texts = _texts(batch, self.texts)
        out: list[SampleRecord] = []
        for j, sums in enumerate(self.sums):
            seeds = [sample_seed(self.settings.seed, k, j) for k in keys]
            gen = self.generate_fn(batch, seeds)
            gen = self._check_generated(gen, keys, ref_len)
            gen_joints = self.joints(gen, ref_len)
            for observe in self.observers:
                observe(batch, j, gen, gen_joints, ref_joints, ref_len)
            terms = sums.update(gen_joints, ref_joints, ref_len, reference_lengths=ref_len)
            if j == 0 and self.keep_renders > 0:
                self._keep_for_renders(keys, texts, gen_joints, ref_joints, ref_len)
            per = {name: v.tolist() for name, v in terms.per_sequence().items()}
            n = terms.lengths.tolist()
            out.extend(
                SampleRecord(
                    key,
                    j,
                    texts[i],
                    int(n[i]),
                    per["APE_root"][i],
                    per["APE_traj"][i],
                    per["APE_mean_pose"][i],
                    per["APE_mean_joints"][i],
                )
                for i, key in enumerate(keys)
            )
        self.records.extend(out)
        self.seconds += time.perf_counter() - t0
        return out

    def _keep_for_renders(
        self, keys: Sequence[str], texts: list[Any], gen: Tensor, ref: Tensor, lengths: Tensor
    ) -> None:
        for i, key in enumerate(keys):
            rank = _key_rank(key)
            heap = self._render_heap
            if len(heap) >= self.keep_renders and -heap[0][0] <= rank:
                continue
            n = int(lengths[i])
            sample = RenderSample(
                key, texts[i], gen[i, :n].float().cpu().numpy(), ref[i, :n].float().cpu().numpy()
            )
            item = (-rank, key, sample)
            if len(heap) < self.keep_renders:
                heapq.heappush(heap, item)
            else:
                heapq.heapreplace(heap, item)

    def _check_generated(self, gen: Any, keys: Sequence[str], lengths: Tensor) -> Tensor:
        if not isinstance(gen, Tensor):
            raise EvalError(
                f"generate_fn must return a tensor (B, T, {FEATURE_DIM}), got {type(gen).__name__}"
            )
        need = (len(keys), int(lengths.max()), FEATURE_DIM)
        if gen.dim() != 3 or gen.shape[0] != need[0] or gen.shape[2] != need[2] or gen.shape[1] < need[1]:
            raise EvalError(
                f"generate_fn returned {tuple(gen.shape)}; expected ({need[0]}, >= {need[1]}, {need[2]}) "
                f"for samples {list(keys)[:3]}..."
            )
        gen = gen[:, : need[1]].to(self.device, torch.float32)
        valid = torch.arange(need[1], device=gen.device)[None, :] < lengths[:, None]
        # a NaN/inf feature makes its frame's sum non-finite: the elementwise check only when a sum is
        bad = ~gen.sum(-1).isfinite() & valid
        if bool(bad.any()):
            bad = ~gen.isfinite().all(-1) & valid  # (a finite frame whose sum overflows is not an error)
        if bool(bad.any()):
            i = int(bad.any(1).nonzero()[0])
            raise EvalError(f"generate_fn produced NaN/inf features for sample {keys[i]!r}")
        return gen

    def run(
        self, batches: Iterable[Mapping[str, Any]], progress: bool = False, total: int | None = None
    ) -> None:
        """``add_batch`` over an iterable (tqdm bar on stderr with ``progress``). The time counted is the
        loop's wall time, so reading and collating the batches is part of the throughput."""
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, total=total, desc="eval", unit="batch", leave=False)
        t0, before = time.perf_counter(), self.seconds
        for batch in batches:
            self.add_batch(batch)
        self.seconds = before + time.perf_counter() - t0

    # -- collective finish ------------------------------------------------------------------------
    def local_vector(self) -> Tensor:
        """All of this rank's sums as one flat float64 vector (num_samples x 89)."""
        return torch.cat([s.as_tensor().cpu() for s in self.sums])

    def finalize(self, expected_count: int | None = None, group: Any = None) -> EvalResult | None:
        """Combine all ranks (collective when a process group is initialised). Returns the result on rank 0,
        None elsewhere. ``expected_count``: number of distinct samples the split holds (checked)."""
        vec = self.local_vector()
        world, rank = 1, 0
        mine = (self.records, self.seconds, [item[2] for item in self._render_heap])
        gathered: list[Any] = [mine]
        if dist.is_available() and dist.is_initialized():
            world, rank = dist.get_world_size(group), dist.get_rank(group)
            device = (
                torch.device("cuda", torch.cuda.current_device())
                if dist.get_backend(group) == "nccl"
                else None
            )
            reduced = vec.to(device) if device is not None else vec.clone()
            dist.all_reduce(reduced, op=dist.ReduceOp.SUM, group=group)  # the one metric all-reduce
            vec = reduced.cpu()
            gathered = [None] * world if rank == 0 else None  # type: ignore[assignment]
            dist.gather_object(mine, gathered, dst=0, group=group)
        if rank != 0:
            return None
        records = [r for recs, _, _ in gathered for r in recs]
        rank_seconds = [float(sec) for _, sec, _ in gathered]
        renders = sorted((r for _, _, rs in gathered for r in rs), key=lambda r: _key_rank(r.key))
        _check_coverage(records, self.settings.num_samples, expected_count)
        records.sort(key=lambda r: (r.key, r.index))
        size = MetricSums().as_tensor().numel()  # one variant's block of the reduced vector
        s = self.settings
        variants = [
            MetricSums.from_tensor(part, floor=s.floor, heading=s.heading) for part in vec.split(size)
        ]
        pooled = sum(variants[1:], variants[0].to("cpu"))
        return EvalResult(
            metrics=pooled.compute(),
            per_variant=[v.compute() for v in variants],
            samples=records,
            sums=pooled,
            world_size=world,
            num_samples=s.num_samples,
            seconds=max(rank_seconds) if rank_seconds else 0.0,
            rank_seconds=rank_seconds,
            renders=renders[: self.keep_renders],
        )


def _check_coverage(records: list[SampleRecord], num_samples: int, expected: int | None) -> None:
    seen: dict[tuple[str, int], int] = {}
    for r in records:
        seen[(r.key, r.index)] = seen.get((r.key, r.index), 0) + 1
    dup = sorted({k for (k, _), c in seen.items() if c > 1})
    if dup:
        raise EvalError(
            f"{len(dup)} sample(s) were evaluated more than once, e.g. {dup[:5]}: rank shares overlap or "
            "padding duplicates were not flagged valid=False"
        )
    keys = {k for k, _ in seen}
    if expected is not None and len(keys) != expected:
        raise EvalError(
            f"evaluated {len(keys)} distinct samples but the split holds {expected}: "
            + (
                "some were dropped (a loader dropping the remainder?)"
                if len(keys) < expected
                else "unexpected keys"
            )
        )
    if len(seen) != len(keys) * num_samples:
        raise EvalError(
            f"{len(seen)} (key, variant) results for {len(keys)} samples x {num_samples} variants"
        )


def evaluate(
    batches: Iterable[Mapping[str, Any]],
    generate_fn: GenerateFn,
    feature_mean: Tensor,
    feature_std: Tensor,
    *,
    settings: EvalSettings | None = None,
    skeleton: Skeleton | None = None,
    texts: Mapping[str, Any] | None = None,
    expected_count: int | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    total_batches: int | None = None,
    keep_renders: int = 0,
    observers: Sequence[Observer] = (),
) -> EvalResult | None:
    """Evaluate this rank's ``batches``, combine over the process group (if any); rank 0 gets the result."""
    ev = Evaluator(
        generate_fn,
        feature_mean,
        feature_std,
        settings=settings,
        skeleton=skeleton,
        texts=texts,
        device=device,
        keep_renders=keep_renders,
        observers=observers,
    )
    ev.run(batches, progress=progress, total=total_batches)
    return ev.finalize(expected_count)
