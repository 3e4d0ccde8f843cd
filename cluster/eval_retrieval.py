"""The evaluator-based metrics of ``actiongpt eval``: R-precision, FID, diversity, multimodality, MM-Dist
(``retrieval``, needs a trained ``model=evaluator`` checkpoint) and foot skating, floor penetration, floating,
jerk (``physics``), for the generated motions and, as the first row, for the reference motions.

Per rank: the generation pass hands every generated variant to ``ExtraMetrics.observe`` (embedded with the
evaluator, physics sums from the MMM-21 joints the APE/AVE pass computed anyway); a second pass over the same
share of the split embeds the reference motions and their texts -- the evaluator's own text (what it was
trained with, the raw label by default), not the generator's, so Default and Action-GPT are scored against
the same texts. TEACH pairs are scored per action: the first action's frames and the second's (after the
transition), each with its own label. Rank 0 gathers everything and scores it in one global order
(``cluster.eval_embeddings``).

The evaluator is trained on the embedded dataset: its numbers compare methods with each other here; they are
not HumanML3D numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from actiongpt import config as cfglib
from actiongpt.metrics_physics import PHYSICS_KEYS, physics_sums
from actiongpt.models.inputs import TextBatch
from cluster.eval_embeddings import (
    EXTRA_KEYS,
    RETRIEVAL_KEYS,
    EmbeddingPart,
    combine,
    gather_parts,
    physics_rows,
    score,
)
from cluster.eval_metrics_config import RetrievalSettings, metric_groups
from cluster.evaluator import EvalError, is_pair_batch, reference_features, select_batch

log = logging.getLogger(__name__)

EXTRA_JSON, EXTRA_TABLE = "extra_metrics.json", "extra_metrics.md"
REFERENCE_KEYS = (*EXTRA_KEYS, "t2m_R1", "t2m_R2", "t2m_R3")
TABLE_KEYS = (*RETRIEVAL_KEYS, "t2m_R1", "t2m_R2", "t2m_R3", *PHYSICS_KEYS)
TABLE_NAMES = {
    "R_precision_top1": "R@1",
    "R_precision_top2": "R@2",
    "R_precision_top3": "R@3",
    "t2m_R1": "t2m R@1",
    "t2m_R2": "t2m R@2",
    "t2m_R3": "t2m R@3",
    "multimodality": "MModality",
    "MM_dist": "MM-Dist",
    "foot_skating": "skate m/s",
    "floor_penetration": "penetr. m",
    "floating": "float m",
    "jerk": "jerk m/s³",
}


def check_evaluator(path: str, manifest: Any) -> dict[str, Any]:
    """The evaluator checkpoint's recorded meta, checked against the shards (before any process group)."""
    from cluster.eval_model import resolve_model

    try:
        meta = resolve_model(path).meta
    except (ValueError, FileNotFoundError) as exc:
        raise cfglib.ConfigError(f"evaluator: {exc}") from exc
    if meta.get("model") != "evaluator":
        raise cfglib.ConfigError(
            f"evaluator: {path} holds model {meta.get('model')!r}, not a text-motion evaluator "
            "(model=evaluator)"
        )
    name, want = meta.get("embedder"), manifest.embedder.get("name")
    if name and want and name != want:
        raise cfglib.ConfigError(
            f"evaluator: {path} was trained on {name!r} text embeddings; these shards hold {want!r}"
        )
    dim = meta.get("text_dim")
    if dim and int(dim) != manifest.token_dim:
        raise cfglib.ConfigError(
            f"evaluator: {path} reads text of width {dim}; these shards' embedder gives {manifest.token_dim}"
        )
    return meta


def _segments(batch: Mapping[str, Any], lengths: Tensor) -> list[tuple[str, Tensor, Tensor, str]]:
    """(item suffix, start, length, text suffix) per action: one for single actions, two for TEACH pairs
    (action 0; action 1 after the transition)."""
    if not is_pair_batch(batch):
        return [("", torch.zeros_like(lengths), lengths, "")]
    l0 = batch["lengths_0"].to(lengths.device).long()
    tr = batch["transition_lengths"].to(lengths.device).long()
    return [("#0", torch.zeros_like(l0), l0, "_0"), ("#1", l0 + tr, lengths - l0 - tr, "_1")]


def _crop(features: Tensor, start: Tensor, length: Tensor) -> Tensor:
    """Rows ``start[i] : start[i] + length[i]`` of each sample, zero-padded to the longest: (B, max, F)."""
    width = max(int(length.max()), 1)
    t = torch.arange(width, device=features.device)[None, :]
    idx = (start[:, None] + t).clamp(max=features.shape[1] - 1)
    out = features.gather(1, idx[..., None].expand(-1, -1, features.shape[-1]))
    return out * (t < length[:, None])[..., None]


def _labels(batch: Mapping[str, Any], suffix: str) -> list[str]:
    """Each sample's text identity (its label) for the action ``suffix`` ("", "_0" or "_1"): ``labels_0``/
    ``labels_1`` of pair batches, else ``labels`` (one label, or one per action)."""
    labels = batch.get(f"labels{suffix}")
    if isinstance(labels, list | tuple):
        return [str(x) for x in labels]
    labels = batch.get("labels")
    if not isinstance(labels, list | tuple):
        raise EvalError(f"batch has no 'labels{suffix}' list: the text identities retrieval needs")
    j = int(suffix[1:]) if suffix else 0
    return [str(x[j] if isinstance(x, list | tuple) else x) for x in labels]


def _drop_invalid(batch: Mapping[str, Any]) -> Mapping[str, Any]:
    valid = batch.get("valid")
    if valid is None:
        return batch
    flags = torch.as_tensor(valid, dtype=torch.bool).reshape(-1).tolist()
    return batch if all(flags) else select_batch(batch, [i for i, ok in enumerate(flags) if ok])


class ExtraMetrics:
    """One rank's evaluator embeddings and physics sums; ``finish`` gathers and scores them (collective)."""

    def __init__(
        self,
        groups: tuple[str, ...],
        settings: RetrievalSettings,
        *,
        feature_mean: Tensor,
        feature_std: Tensor,
        evaluator: Any = None,
        evaluator_meta: Mapping[str, Any] | None = None,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.retrieval = "retrieval" in groups
        self.physics = "physics" in groups
        if self.retrieval and evaluator is None:
            raise ValueError("retrieval metrics need an evaluator model")
        self.settings = settings
        self.evaluator = evaluator
        self.evaluator_meta = dict(evaluator_meta or {})
        self.device = torch.device(device)
        self.mean, self.std = feature_mean.to(self.device), feature_std.to(self.device)
        self.seed = seed
        self.part = EmbeddingPart()
        self.seconds = 0.0

    # -- the generation pass (cluster.evaluator.Evaluator observer) -----------------------------------
    @torch.no_grad()
    def observe(
        self,
        batch: Mapping[str, Any],
        variant: int,
        features: Tensor,
        joints: Tensor,
        reference_joints: Tensor,
        lengths: Tensor,
    ) -> None:
        """One generated variant of a batch: unnormalised features (B, T, 135), its MMM-21 joints and the
        reference's (computed for APE/AVE anyway: the first variant's call scores the reference physics)."""
        t0 = time.perf_counter()
        keys = list(batch["keys"])
        if self.physics:
            self.part.add_physics(keys, variant, physics_sums(joints, lengths, self.settings.fps))
            if variant == 0:
                self.part.add_physics(keys, -1, physics_sums(reference_joints, lengths, self.settings.fps))
        if self.retrieval:
            for suffix, start, length, _ in _segments(batch, lengths):
                emb = self.evaluator.embed_features(_crop(features, start, length), length)
                self.part.add_generated([k + suffix for k in keys], variant, emb)
        self.seconds += time.perf_counter() - t0

    # -- the reference pass -------------------------------------------------------------------------
    @torch.no_grad()
    def add_reference_batch(self, batch: Mapping[str, Any]) -> None:
        """A batch of the split read with the evaluator's text: reference motion and text embeddings."""
        batch = _drop_invalid(batch)
        if not batch["keys"]:
            return
        batch = {k: (v.to(self.device) if isinstance(v, Tensor) else v) for k, v in batch.items()}
        keys = list(batch["keys"])
        feats, lengths = reference_features(batch, self.mean, self.std)
        if self.retrieval:
            for suffix, start, length, text_suffix in _segments(batch, lengths):
                motion = self.evaluator.embed_features(_crop(feats, start, length), length)
                text = TextBatch(batch[f"text{text_suffix}"], batch[f"text_mask{text_suffix}"])
                self.part.add_reference(
                    [k + suffix for k in keys],
                    _labels(batch, text_suffix),
                    self.evaluator.embed_text(text),
                    motion,
                )

    def reference_pass(self, batches: Any) -> None:
        t0 = time.perf_counter()
        for batch in batches:
            self.add_reference_batch(batch)
        self.seconds += time.perf_counter() - t0

    # -- collective finish ----------------------------------------------------------------------------
    def finish(self, num_variants: int) -> dict[str, Any] | None:
        """Gather every rank's part; rank 0 returns {reference, generated, per_variant, evaluator, ...}."""
        import torch.distributed as dist

        t0 = time.perf_counter()
        seconds = [self.seconds]
        if dist.is_available() and dist.is_initialized():
            gathered_s: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered_s, self.seconds)
            seconds = [float(s) for s in gathered_s]
        parts = gather_parts(self.part)
        if parts is None:
            return None
        out: dict[str, Any]
        if self.retrieval:
            g = combine(parts, num_variants)
            s = self.settings
            out = score(
                g, batch=s.batch, seed=self.seed, diversity_pairs=s.diversity_pairs, physics=self.physics
            )
        else:  # physics alone: the same gathering, without embeddings
            out = physics_rows(parts, num_variants)
        out["evaluator"] = self.evaluator_meta if self.retrieval else None
        out["seconds"] = max(seconds) + time.perf_counter() - t0
        out["groups"] = [g for g, on in (("retrieval", self.retrieval), ("physics", self.physics)) if on]
        return out


def build_extra_metrics(cfg: Any, manifest: Any, device: torch.device) -> ExtraMetrics | None:
    """The ExtraMetrics an EvalConfig asks for (None for APE/AVE alone), with the evaluator loaded."""
    groups = metric_groups(cfg)
    if groups == ("ape",):
        return None
    mean, std = (torch.from_numpy(a) for a in manifest.stats())
    model, meta = None, None
    if "retrieval" in groups:
        from cluster.eval_model import load_model
        from shards.collate import TextChoice

        loaded = load_model(cfg.evaluator, device=device)
        model = loaded.model
        choice = TextChoice(
            str(loaded.meta.get("text_source") or "label"),
            loaded.meta.get("k"),
            loaded.meta.get("aggregator"),
        ).resolve(manifest.text)
        meta = {
            "checkpoint": str(loaded.source),
            "step": loaded.meta.get("step"),
            "shards_digest": loaded.meta.get("shards_digest"),
            "embedder": loaded.meta.get("embedder"),
            "text_source": choice.source,
            "k": choice.k,
            "aggregator": choice.aggregator,
            "note": "trained on the embedded dataset: compares methods here; not HumanML3D numbers",
        }
    return ExtraMetrics(
        groups,
        cfg.retrieval,
        feature_mean=mean,
        feature_std=std,
        evaluator=model,
        evaluator_meta=meta,
        device=device,
        seed=cfg.seed,
    )


def reference_loader(cfg: Any, extra: ExtraMetrics, manifest: Any, rank: int, world: int) -> Any:
    """This rank's share of the split, read with the evaluator's text (the generation pass's share)."""
    from shards.loader import LoaderConfig, ShardLoader

    meta = extra.evaluator_meta or {}
    loader_cfg = LoaderConfig(
        root=cfg.shards_dir,
        split=cfg.split,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        shuffle=False,
        drop_last=False,
        bucket_batches=cfg.bucket_batches,
        seed=cfg.seed,
        text_source=meta.get("text_source") or "label",
        k=meta.get("k"),
        aggregator=meta.get("aggregator"),
    )
    loader = ShardLoader(loader_cfg, rank=rank, world_size=world, manifest=manifest)
    if cfg.max_batches:
        import itertools

        return itertools.islice(iter(loader), cfg.max_batches)
    return iter(loader)


def preflight_extra(cfg: Any, manifest: Any, checkpoint_meta: Mapping[str, Any] | None = None) -> None:
    """The metric choice and the evaluator checkpoint, checked before any process group exists."""
    if (checkpoint_meta or {}).get("model") == "evaluator":
        raise cfglib.ConfigError(
            f"checkpoint: {cfg.checkpoint} is the text-motion evaluator, not a motion generator; pass it as "
            "evaluator=... beside a generator's checkpoint"
        )
    if "retrieval" in metric_groups(cfg):
        check_evaluator(cfg.evaluator, manifest)


def run_extra(extra: ExtraMetrics | None, cfg: Any, manifest: Any, rt: Any) -> dict[str, Any] | None:
    """After the generation pass, every rank: the reference pass, then gather and score (rank 0 returns)."""
    if extra is None:
        return None
    if extra.retrieval:  # the texts (the evaluator's) and reference embeddings; physics need no second pass
        extra.reference_pass(reference_loader(cfg, extra, manifest, rt.rank, rt.world_size))
    return extra.finish(cfg.num_samples)


def attach_extra(result: Any, extras: Mapping[str, Any], run_meta: dict[str, Any]) -> None:
    """Rank 0: the generated row's metrics into ``result.metrics`` (metrics.json, comparisons); the reference
    row, the evaluator checkpoint and the extra time into the run's meta."""
    gen = extras["generated"]
    result.metrics.update({k: v for k, v in gen.items() if k in EXTRA_KEYS and math.isfinite(v)})
    run_meta["evaluator"] = extras.get("evaluator")
    run_meta["reference_metrics"] = {k: v for k, v in extras["reference"].items() if k in REFERENCE_KEYS}
    run_meta["extra_metrics"] = {
        "groups": extras["groups"],
        "seconds": extras["seconds"],
        "generated": extras["generated"],
        "per_variant": extras["per_variant"],
        "items": extras["num_items"],
    }


def extra_table(extras: Mapping[str, Any], label: str, digits: int = 3) -> str:
    """A Markdown table: the reference motions (the ceiling) first, then the generated ones."""
    from actiongpt.io_utils import markdown_table

    cols = [k for k in TABLE_KEYS if k in extras["generated"] or k in extras["reference"]]

    def cell(row: Mapping[str, Any], k: str) -> str:
        v = row.get(k)
        return "–" if v is None or v != v else f"{v:.{digits}f}"

    table = markdown_table(
        ["motions", *(TABLE_NAMES.get(k, k) for k in cols)],
        [
            [name, *(cell(row, k) for k in cols)]
            for name, row in (("reference", extras["reference"]), (label, extras["generated"]))
        ],
    )
    note = ""
    if extras.get("evaluator"):
        ev = extras["evaluator"]
        note = (
            f"\n\nEvaluator {ev['checkpoint']} (step {ev.get('step')}, text {ev.get('text_source')}); "
            f"chance R@1 = {extras['chance_top1']:.3f}. It is trained on the embedded dataset: these numbers "
            "compare methods here; they are not HumanML3D numbers."
        )
    return table + note


def write_extra(extras: Mapping[str, Any], out: Path, label: str) -> None:
    """``extra_metrics.json`` (both rows, per variant, the evaluator) and ``extra_metrics.md`` in ``out``."""
    import json

    from actiongpt.io_utils import atomic_write_text

    def finite(x: Any) -> Any:  # NaN (undefined, e.g. multimodality of one sample) -> null
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [finite(v) for v in x]
        return x

    out = Path(out)
    atomic_write_text(out / EXTRA_JSON, json.dumps(finite(dict(extras)), indent=2))
    atomic_write_text(out / EXTRA_TABLE, extra_table(extras, label) + "\n")


def evaluator_quality(cfg: Any, splits: list[str]) -> dict[str, dict[str, Any]] | None:
    """The evaluator's own retrieval quality on the reference motions of each split: text->motion and
    motion->text R@1/2/3 in batches of ``retrieval.batch`` (TMR's "guo" protocol). Every rank calls it; rank
    0 returns {split: scores}. Uses ``evaluator``, ``shards_dir``, the loader and the retrieval fields."""
    from cluster.evaluator import eval_runtime
    from shards.manifest import Manifest

    if not cfg.evaluator:
        raise cfglib.ConfigError("evaluator: not set (a model=evaluator checkpoint)")
    manifest = Manifest.load(Path(cfg.shards_dir))
    for split in splits:
        manifest.mode(split)  # names the built splits when one is missing
    check_evaluator(cfg.evaluator, manifest)
    out: dict[str, dict[str, Any]] = {}
    with eval_runtime(cfg.backend, cfg.dist_timeout_s) as rt:
        device = torch.device(cfg.device) if cfg.device != "auto" else (rt.pg.device if rt.pg else "cpu")
        for split in splits:
            scfg = dataclasses.replace(cfg, split=split, metrics=["retrieval"])
            extra = build_extra_metrics(scfg, manifest, torch.device(device))
            assert extra is not None
            extra.reference_pass(reference_loader(scfg, extra, manifest, rt.rank, rt.world_size))
            scores = extra.finish(num_variants=0)
            if scores is not None:
                out[split] = scores
    return out if rt.rank == 0 else None


def quality_table(scores: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per split: text->motion and motion->text R@1/2/3 and the chance level."""
    head = "| split | items | t2m R@1 | t2m R@2 | t2m R@3 | m2t R@1 | m2t R@2 | m2t R@3 | chance R@1 |"
    rows = [head, "|---|---:|" + "---:|" * 7]
    for split, s in scores.items():
        r = s["reference"]
        vals = [r[f"t2m_R{k}"] for k in (1, 2, 3)] + [r[f"R_precision_top{k}"] for k in (1, 2, 3)]
        rows.append(
            f"| {split} | {s['num_items']} | "
            + " | ".join(f"{v:.3f}" for v in vals)
            + f" | {s['chance_top1']:.3f} |"
        )
    return "\n".join(rows)
