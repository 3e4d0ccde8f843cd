"""Toy evaluation data and generators for the distributed-evaluator tests (schema batches, no files).

Motions are plausible bodies (upright root, swinging limbs, a walk along a turning path) so the MMM-21
joints and APE/AVE behave like real ones. ``SeededToyGenerator`` perturbs the reference motion with noise
drawn from the per-sample seed only, so its output does not depend on the batch or the rank;
``RankSeededToyGenerator`` is the negative control that seeds from the rank (the mistake the evaluator's
per-key seeds avoid).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from actiongpt.motion.features import FEATURE_DIM, feature_stats, normalize, rotations_to_features
from actiongpt.motion.rotations import axis_angle_to_matrix, rotation_about_axis
from cluster.evaluator import reference_features

TEXT_LEN, TEXT_DIM = 6, 8


def _gen(*parts: object) -> torch.Generator:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def toy_motion(key: str, length: int) -> torch.Tensor:
    """Unnormalised features (length, 135) of a walking-like body, determined by ``key``."""
    g = _gen("motion", key)
    t = torch.arange(length, dtype=torch.float32)
    freq = 2 * math.pi / 30 * (0.8 + 0.4 * torch.rand(1, generator=g))
    amp = 0.2 + 0.4 * torch.rand(21, 1, generator=g)
    axis = torch.nn.functional.normalize(torch.randn(21, 3, generator=g), dim=-1)
    phase = 6.0 * torch.rand(21, 1, generator=g)
    local = axis[None] * (amp * torch.sin(freq * t + phase)).T[..., None]  # (T, 21, 3)
    yaw = float(torch.rand(1, generator=g)) * 6.0 + 0.02 * t * float(torch.randn(1, generator=g))
    upright = rotation_about_axis(torch.tensor(math.pi / 2), "x")
    root = rotation_about_axis(yaw, "z") @ upright  # (T, 3, 3)
    rotmats = torch.cat([root[:, None], axis_angle_to_matrix(local)], dim=1)
    speed = 0.02 + 0.03 * float(torch.rand(1, generator=g))
    step = torch.stack([torch.cos(yaw), torch.sin(yaw)], -1) * speed
    trans = torch.cat([torch.cumsum(step, 0), (0.9 + 0.02 * torch.sin(2 * freq * t))[:, None]], -1)
    return rotations_to_features(rotmats, trans)


def toy_dataset(n: int, seed: int = 0, min_len: int = 12, max_len: int = 48) -> list[dict[str, Any]]:
    """``n`` samples {key, features (T, 135), label} with lengths in [min_len, max_len]."""
    out = []
    for i in range(n):
        key = f"val-{seed}-{i:05d}"
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=_gen("len", key)))
        out.append({"key": key, "features": toy_motion(key, length), "label": f"action number {i % 7}"})
    return out


def toy_stats(samples: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    return feature_stats(s["features"] for s in samples)


def collate(
    samples: Sequence[dict[str, Any]],
    mean: torch.Tensor,
    std: torch.Tensor,
    valid: Sequence[bool] | None = None,
    pairs: bool = False,
) -> dict[str, Any]:
    """A schema batch (single actions, or TEACH pairs split at 40 % of each motion)."""
    bs = len(samples)
    text = torch.stack([torch.randn(TEXT_LEN, TEXT_DIM, generator=_gen("text", s["label"])) for s in samples])
    batch: dict[str, Any] = {"keys": [s["key"] for s in samples], "labels": [[s["label"]] for s in samples]}

    def pad(parts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = torch.zeros(bs, max(p.shape[0] for p in parts), FEATURE_DIM)
        for i, p in enumerate(parts):
            out[i, : p.shape[0]] = normalize(p, mean, std)
        return out, torch.tensor([p.shape[0] for p in parts], dtype=torch.int64)

    text_fields = {
        "text": text,
        "text_mask": torch.ones(bs, TEXT_LEN, dtype=torch.bool),
        "text_pooled": text.mean(1),
    }
    if pairs:
        cut = [max(1, int(0.4 * s["features"].shape[0])) for s in samples]
        for suffix, parts in (
            ("_0", [s["features"][:c] for s, c in zip(samples, cut)]),
            ("_1", [s["features"][c:] for s, c in zip(samples, cut)]),
        ):
            batch[f"motion{suffix}"], batch[f"lengths{suffix}"] = pad(parts)
            batch.update({f"{k}{suffix}": v for k, v in text_fields.items()})
        batch["transition_lengths"] = torch.full((bs,), 3, dtype=torch.int64)
        batch["labels"] = [[s["label"], s["label"] + " again"] for s in samples]
    else:
        batch["motion"], batch["lengths"] = pad([s["features"] for s in samples])
        batch.update(text_fields)
    if valid is not None:
        batch["valid"] = torch.tensor(list(valid), dtype=torch.bool)
    return batch


def rank_batches(
    samples: Sequence[dict[str, Any]],
    rank: int,
    world: int,
    batch_size: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    *,
    pad_to_equal: bool = True,
    pairs: bool = False,
) -> Iterator[dict[str, Any]]:
    """Strided share of ``samples`` for ``rank``; with ``pad_to_equal`` every rank gets the same number of
    full batches, the padding being duplicates of its own first samples flagged ``valid=False`` (what a
    loader that needs equal batch counts does)."""
    mine = list(samples[rank::world])
    valid = [True] * len(mine)
    if pad_to_equal:
        per_rank = math.ceil(len(samples) / world)
        n_batches = math.ceil(per_rank / batch_size)
        extra = n_batches * batch_size - len(mine)
        mine += [mine[i % len(mine)] for i in range(extra)]
        valid += [False] * extra
    for i in range(0, len(mine), batch_size):
        yield collate(mine[i : i + batch_size], mean, std, valid[i : i + batch_size], pairs=pairs)


class SeededToyGenerator:
    """Reference motion + smooth noise drawn from each sample's seed (output independent of the batch)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, scale: float = 0.05) -> None:
        self.mean, self.std, self.scale = mean, std, scale
        self.calls = 0

    def noise(self, seed: int, length: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        base = torch.randn(2, FEATURE_DIM, generator=g)
        t = torch.linspace(0, 1, length)[:, None]
        out = self.scale * (base[0] + torch.sin(3 * t + base[1]))
        out[:, 1:3] *= 0.05  # velocities are small numbers
        return out

    def __call__(self, batch: dict[str, Any], seeds: list[int]) -> torch.Tensor:
        self.calls += 1
        feats, lengths = reference_features(batch, self.mean, self.std)
        out = torch.zeros_like(feats)
        for i, (seed, n) in enumerate(zip(seeds, lengths.tolist())):
            out[i, :n] = feats[i, :n] + self.noise(seed, n)
        return out


class RankSeededToyGenerator(SeededToyGenerator):
    """Negative control: noise from a stream seeded by the rank, consumed in batch order."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, rank: int, scale: float = 0.05) -> None:
        super().__init__(mean, std, scale)
        self.stream = torch.Generator().manual_seed(1000 + rank)

    def __call__(self, batch: dict[str, Any], seeds: list[int]) -> torch.Tensor:
        draws = [int(torch.randint(0, 2**62, (1,), generator=self.stream)) for _ in seeds]
        return super().__call__(batch, draws)


# ------------------------------------------------------------------------------------- spawn target


def join_local_job(rank: int, world: int, port: int) -> None:
    """Make this spawned process rank ``rank`` of a ``world``-rank job on 127.0.0.1 (one thread each)."""
    from cluster.dist_env import DistEnv

    os.environ.update(DistEnv(rank, world, rank, world, "127.0.0.1", port, "torchrun").as_env())
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def eval_worker(rank: int, world: int, port: int, out_dir: str, options: dict[str, Any]) -> None:
    """``torch.multiprocessing.spawn`` target: one rank of a real gloo job evaluating the toy split."""
    join_local_job(rank, world, port)
    from cluster.eval_report import write_outputs
    from cluster.evaluator import EvalSettings, eval_runtime, evaluate

    samples = toy_dataset(options["n"], seed=options.get("data_seed", 0))
    mean, std = toy_stats(samples)
    with eval_runtime(backend="gloo", timeout_s=120.0) as rt:
        assert rt.world_size == world and rt.rank == rank
        if options.get("generator") == "rank":
            gen: SeededToyGenerator = RankSeededToyGenerator(mean, std, rank)
        else:
            gen = SeededToyGenerator(mean, std)
        if options.get("fail_rank") == rank:
            raise RuntimeError(f"rank {rank} failed on purpose")
        batches = rank_batches(
            samples,
            rank,
            world,
            options["batch_size"],
            mean,
            std,
            pad_to_equal=options.get("pad", True),
            pairs=options.get("pairs", False),
        )
        if options.get("drop_last_rank_batches") and rank == world - 1:
            batches = iter([])
        settings = EvalSettings(seed=options.get("seed", 0), num_samples=options.get("num_samples", 1))
        result = evaluate(
            batches,
            gen,
            mean,
            std,
            settings=settings,
            expected_count=options["n"] if options.get("check_count", True) else None,
        )
        if rank == 0:
            assert result is not None
            write_outputs(result, Path(out_dir), meta={"world_size": world})
            Path(out_dir, "done.json").write_text(json.dumps({"world_size": result.world_size}))
        else:
            assert result is None


# ------------------------------------------------------------------- real shards + a real checkpoint


def toy_source(n: int, split: str, pairs: bool = True, seed: int = 0) -> Any:
    """A shards ``ListSource`` of plausible motions (labels from the shard tests' embedding store)."""
    import numpy as np

    from shards.source import ListSource, SourceSample
    from tests.dist_helpers.shards_data import LABELS

    samples = []
    for i in range(n):
        key = f"{split}-{seed}-{i:04d}"
        g = _gen("lengths", key)
        if pairs:
            lengths = [
                int(torch.randint(12, 30, (1,), generator=g)),
                int(torch.randint(0, 4, (1,), generator=g)),
                int(torch.randint(12, 30, (1,), generator=g)),
            ]
            labels = [LABELS[i % len(LABELS)], LABELS[(3 * i + 1) % len(LABELS)]]
        else:
            lengths = [int(torch.randint(15, 45, (1,), generator=g))]
            labels = [LABELS[i % len(LABELS)]]
        motion = toy_motion(key, sum(lengths)).numpy().astype(np.float32)
        samples.append(SourceSample(key, motion, labels, lengths, {"source": f"toy/{key}.npz", "fps": 30.0}))
    return ListSource(samples, split, "pairs" if pairs else "seg")


def build_eval_shards(out: Path, n_val: int = 23, n_train: int = 16, pairs: bool = True) -> Path:
    """Tiny shards (train for the statistics, val to evaluate) with the hash embedder; returns the folder."""
    from tests.dist_helpers.shards_data import build, make_store

    store = make_store(Path(out) / "emb", k=4)
    sources = {"train": toy_source(n_train, "train", pairs), "val": toy_source(n_val, "val", pairs)}
    build(Path(out) / "shards", store, sources, shard_multiple=2, target_shard_mb=0.05)
    return Path(out) / "shards"


def export_tiny_model(
    shards: Path,
    path: Path,
    name: str = "teach",
    seed: int = 0,
    preset: str = "tiny",
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """A randomly initialised backbone (``preset`` tiny or paper) with the shards' statistics, in the
    trainer's export format."""
    from actiongpt.models.registry import build_model
    from cluster.eval_model import model_config
    from cluster.export import write_export
    from shards.manifest import Manifest

    m = Manifest.load(shards)
    text_dim = m.pooled_dim if name == "motionclip" else m.token_dim
    torch.manual_seed(seed)
    model = build_model(name, model_config(name, preset), text_dim)
    mean, std = m.stats()
    model.set_feature_stats(torch.from_numpy(mean), torch.from_numpy(std))
    meta = {
        "model": name,
        "preset": preset,
        "model_overrides": {},
        "text_dim": text_dim,
        "step": 0,
        **(extra_meta or {}),
    }
    return write_export(model.state_dict(), meta, path)


def run_eval_worker(rank: int, world: int, port: int, cfg_dict: dict[str, Any]) -> None:
    """``torch.multiprocessing.spawn`` target: ``cluster.eval_run.run_eval`` as one rank of a gloo job."""
    join_local_job(rank, world, port)
    from actiongpt.config import from_dict
    from cluster.eval_config import EvalConfig
    from cluster.eval_run import run_eval

    result = run_eval(from_dict(EvalConfig, cfg_dict))
    assert (result is None) == (rank != 0)
