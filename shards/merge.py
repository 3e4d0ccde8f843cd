"""Assemble ``manifest.json`` from the builders' part records (deterministic: merged in shard order)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from actiongpt.motion.features import FEATURE_DIM, RunningStats
from actiongpt.text.embedding_store import EmbeddingStore
from shards.config import ShardsConfig, digest
from shards.format import ShardError
from shards.layout import SplitPlan, read_record, shard_name, table_name
from shards.manifest import FORMAT, VERSION, Manifest, write_manifest

log = logging.getLogger(__name__)


def merge_manifest(
    cfg: ShardsConfig, plans: Mapping[str, SplitPlan], store: EmbeddingStore, config_digest: str
) -> tuple[Path | None, dict[str, Any] | None]:
    """Assemble ``manifest.json`` from the part records if every item is complete (else None)."""
    out = Path(cfg.out)
    splits: dict[str, Any] = {}
    stats: dict[str, Any] | None = None
    for split, plan in plans.items():
        shard_recs = [read_record(out, shard_name(split, s), config_digest) for s in range(plan.num_shards)]
        table_recs = [
            read_record(out, table_name(split, t), config_digest) for t in range(len(plan.table_counts))
        ]
        missing = [r for r in shard_recs + table_recs if r is None]
        if missing:
            log.info(
                "%s: %d of %d files of split %s not finished yet; manifest not written",
                out,
                len(missing),
                len(shard_recs) + len(table_recs),
                split,
            )
            return None, None
        if split == cfg.stats_split:
            acc = RunningStats(FEATURE_DIM)
            for r in shard_recs:
                part = RunningStats(FEATURE_DIM)
                part.count = int(r["stats"]["count"])  # type: ignore[index]
                part.mean = np.asarray(r["stats"]["mean"], np.float64)  # type: ignore[index]
                part.m2 = np.asarray(r["stats"]["m2"], np.float64)  # type: ignore[index]
                acc.merge(part)
            mean, std = acc.finalize()
            stats = {
                "split": split,
                "frames": int(acc.count),
                "mean": [float(x) for x in mean.tolist()],
                "std": [float(x) for x in std.tolist()],
            }
        n = len(plan.order)
        shard_bytes = sum(r["bytes"] for r in shard_recs)  # type: ignore[index]
        table_bytes = sum(r["bytes"] for r in table_recs)  # type: ignore[index]
        frames = sum(sum(x) for x in plan.lengths)
        itemsize = np.dtype(cfg.motion_dtype).itemsize
        splits[split] = {
            "mode": plan.mode,
            "dataset_digest": plan.dataset_digest,
            "num_samples": n,
            "num_labels": len({lab for labs in plan.labels for lab in labs}),
            "shards": [
                {k: r[k] for k in ("name", "count", "bytes", "sha256", "first_id", "lengths")}  # type: ignore[index]
                for r in shard_recs
            ],
            "text_table": None
            if cfg.text_storage != "table"
            else {
                "labels": plan.table_labels,
                "parts": [{k: r[k] for k in ("name", "count", "bytes", "sha256")} for r in table_recs],  # type: ignore[index]
                "entries": [e for r in table_recs for e in r["entries"]],  # type: ignore[index]
            },
            "bytes": {
                "shard_bytes": shard_bytes,
                "table_bytes": table_bytes,
                "per_sample_shards": shard_bytes / n if n else 0.0,
                "per_sample_with_table": (shard_bytes + table_bytes) / n if n else 0.0,
                "per_sample_motion": frames * FEATURE_DIM * itemsize / n if n else 0.0,
            },
        }
    if stats is None:
        previous = _previous_manifest(out)
        if (
            previous is None
            or previous.data.get("config_digest_content") != digest(cfg.content())
            or not previous.data.get("stats")
        ):
            raise ShardError(
                f"{out}: feature statistics come from split {cfg.stats_split!r}; build it first or "
                f"together with {sorted(plans)}"
            )
        stats = previous.data["stats"]
    previous = _previous_manifest(out)
    if (
        previous is not None
        and previous.data.get("config_digest_content") == digest(cfg.content())
        and previous.data.get("embedder_digest") == store.index["embedder_digest"]
    ):
        for split, info in previous.data["splits"].items():
            splits.setdefault(split, info)  # keep splits built earlier with the same options
    data = {
        "format": FORMAT,
        "version": VERSION,
        "config": cfg.content(),
        "config_digest_content": digest(cfg.content()),
        "config_digest": config_digest,
        "embedder": store.embedder,
        "embedder_digest": store.index["embedder_digest"],
        "text": {
            "storage": cfg.text_storage,
            "store": cfg.text_store,
            "k": cfg.k,
            "aggregator": cfg.aggregator if cfg.text_store == "aggregate" else None,
        },
        "motion": {
            "dim": FEATURE_DIM,
            "dtype": cfg.motion_dtype,
            "canonicalize": cfg.canonicalize,
            "fps": float(cfg.data.target_fps),
        },
        "stats": stats,
        "splits": splits,
    }
    path = write_manifest(out, data)
    summary = {
        split: {"samples": s["num_samples"], "shards": len(s["shards"]), **s["bytes"]}
        for split, s in splits.items()
    }
    return path, summary


def _previous_manifest(out: Path) -> Manifest | None:
    try:
        return Manifest.load(out)
    except (FileNotFoundError, ShardError):
        return None


def describe_summary(summary: Mapping[str, Any]) -> str:
    lines = []
    for split, s in summary.items():
        lines.append(
            f"{split}: {s['samples']} samples in {s['shards']} shards; "
            f"bytes/sample {s['per_sample_shards']:.0f} in "
            f"shards + {(s['per_sample_with_table'] - s['per_sample_shards']):.0f} amortised text table = "
            f"{s['per_sample_with_table']:.0f} (motion {s['per_sample_motion']:.0f})"
        )
    return "\n".join(lines)
