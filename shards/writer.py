"""Write WebDataset shards (+ text tables) and ``manifest.json``, in parallel, deterministically, resumably.

Determinism: the examples of a split are sorted by key and permuted with ``seed``; the permuted list is
cut into ``S`` contiguous shards of near-equal counts (the first ``n mod S`` get one more). ``S`` comes
from an exact byte estimate (motion and text sizes are known before anything is read), rounded up to a
multiple of ``shard_multiple`` so shards divide evenly over ranks x workers. Tar headers carry a fixed
mtime/owner, feature statistics are merged per shard in shard order: every byte is a function of the
data and the config, never of the number of builders (``part i/n`` builds work items ``j`` with
``j mod n == i``).

Crash safety: a shard is written under a temporary name and renamed when complete; then its part record
(``.build/<name>.json``: count, bytes, sha256, lengths, stats partial) is written atomically. A rerun skips
items whose record matches the config; the manifest is written only when every item is complete, so a
crash never leaves a half shard that looks whole.
"""

from __future__ import annotations

import os
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actiongpt.io_utils import atomic_write_json, file_sha256
from actiongpt.motion.features import FEATURE_DIM, RunningStats
from actiongpt.text.embedding_store import EmbeddingStore, StoreError
from shards.config import ShardsConfig, digest
from shards.format import (
    META,
    MOTION,
    TEXT_POOLED,
    TEXT_TOK,
    ShardError,
    encode_blocks,
    json_bytes,
    label_key,
    npy_bytes,
    sample_key,
)
from shards.layout import (
    BUILD_DIR,
    TAR_MTIME,
    SplitPlan,
    TextSource,
    plan_split,
    read_record,
    record_path,
    shard_name,
    table_name,
)
from shards.manifest import MANIFEST
from shards.merge import merge_manifest
from shards.source import SampleSource

# --- writing ------------------------------------------------------------------------------------------


class _TarOut:
    """A tar written under a temporary name, renamed into place by ``commit``."""

    def __init__(self, final: Path) -> None:
        import webdataset as wds

        self.final = final
        self.tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
        self.fh = open(self.tmp, "wb")  # noqa: SIM115 - closed by commit() or abort()
        self.writer = wds.TarWriter(
            self.fh, encoder=False, mtime=TAR_MTIME, user="actiongpt", group="actiongpt", mode=0o444
        )

    def write(self, sample: dict[str, Any]) -> None:
        self.writer.write(sample)

    def commit(self) -> tuple[int, str]:
        self.writer.close()
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        size, sha = self.tmp.stat().st_size, file_sha256(self.tmp)
        os.replace(self.tmp, self.final)
        return size, sha

    def abort(self) -> None:
        try:
            self.writer.close()  # finishes the (discarded) tar so nothing writes to a closed file later
        except Exception:
            pass
        finally:
            self.fh.close()
            self.tmp.unlink(missing_ok=True)


def _check_motion(sample: Any, where: str, lengths: list[int], dtype: str) -> np.ndarray:
    motion = np.asarray(sample.motion)
    if motion.ndim != 2 or motion.shape[1] != FEATURE_DIM:
        raise ShardError(f"{where}: motion has shape {motion.shape}, expected (T, {FEATURE_DIM})")
    if motion.shape[0] != sum(lengths):
        raise ShardError(
            f"{where}: motion has {motion.shape[0]} frames, lengths {lengths} sum to {sum(lengths)}"
        )
    if not np.isfinite(motion).all():
        raise ShardError(f"{where}: motion features contain NaN or Inf")
    stored = motion.astype(dtype)
    if not np.isfinite(stored).all():
        raise ShardError(f"{where}: motion features overflow {dtype}")
    return stored


def write_shard(
    plan: SplitPlan,
    s: int,
    source: SampleSource,
    texts: TextSource,
    cfg: ShardsConfig,
    out: Path,
    with_stats: bool,
    label_ids: Mapping[str, int],
) -> dict[str, Any]:
    """Write shard ``s`` of a split; returns its part record."""
    name = shard_name(plan.split, s)
    start, end = plan.shard_range(s)
    tar = _TarOut(out / name)
    stats = RunningStats(FEATURE_DIM) if with_stats else None
    try:
        # Read in source order (records of one motion file are adjacent there: the dataset's motion cache
        # hits), write in shard order. Holds one shard's samples, i.e. about one shard of memory.
        loaded = {
            sid: source.load(plan.order[sid])
            for sid in sorted(range(start, end), key=lambda s: plan.order[s])
        }
        for sid in range(start, end):
            key = sample_key(sid)
            where = f"shard {name}, sample {key} (key {plan.keys[sid]!r})"
            item = loaded.pop(sid)
            if item.key != plan.keys[sid]:
                raise ShardError(f"{where}: the source returned key {item.key!r}")
            if list(item.labels) != plan.labels[sid] or list(item.lengths) != plan.lengths[sid]:
                raise ShardError(
                    f"{where}: labels/lengths changed since planning ({item.labels}, {item.lengths})"
                )
            motion = _check_motion(item, where, plan.lengths[sid], cfg.motion_dtype)
            if stats is not None:
                stats.update(motion.astype(np.float64))
            meta: dict[str, Any] = {
                **item.meta,
                "key": item.key,
                "id": sid,
                "split": plan.split,
                "mode": plan.mode,
                "labels": list(item.labels),
                "lengths": [int(x) for x in item.lengths],
                "num_frames": int(motion.shape[0]),
            }
            sample: dict[str, Any] = {"__key__": key, MOTION: npy_bytes(motion)}
            if cfg.text_storage == "table":
                meta["label_ids"] = [label_ids[lab] for lab in item.labels]
            else:
                try:
                    blocks = [texts.block(lab) for lab in item.labels]
                except (StoreError, ShardError) as exc:
                    raise ShardError(f"{where}: {exc}") from exc
                tok, pooled, layouts = encode_blocks(blocks)
                meta["text"] = layouts
                sample[TEXT_TOK] = tok
                sample[TEXT_POOLED] = pooled
            sample[META] = json_bytes(meta)
            tar.write(sample)
        size, sha = tar.commit()
    except BaseException:
        tar.abort()
        raise
    return {
        "name": name,
        "count": end - start,
        "bytes": size,
        "sha256": sha,
        "first_id": start,
        "lengths": [int(sum(x)) for x in plan.lengths[start:end]],
        "stats": None
        if stats is None
        else {"count": stats.count, "mean": stats.mean.tolist(), "m2": stats.m2.tolist()},
    }


def write_table_part(plan: SplitPlan, t: int, texts: TextSource, out: Path) -> dict[str, Any]:
    """Write text-table part ``t``: one entry per label (its text block); records member offsets."""
    name = table_name(plan.split, t)
    start, end = plan.table_range(t)
    tar = _TarOut(out / name)
    layouts: list[dict[str, Any]] = []
    try:
        for lid in range(start, end):
            label = plan.table_labels[lid]
            try:
                block = texts.block(label)
            except (StoreError, ShardError) as exc:
                raise ShardError(
                    f"text table {name}, entry {label_key(lid)} (label {label!r}): {exc}"
                ) from exc
            tok, pooled, lay = encode_blocks([block])
            layouts.append(lay[0])
            tar.write(
                {
                    "__key__": label_key(lid),
                    TEXT_TOK: tok,
                    TEXT_POOLED: pooled,
                    META: json_bytes({"label": label, "id": lid, "layout": lay[0]}),
                }
            )
        size, sha = tar.commit()
    except BaseException:
        tar.abort()
        raise
    offsets: dict[str, tuple[int, int]] = {}
    with tarfile.open(out / name) as tf:
        for m in tf.getmembers():
            offsets[m.name] = (m.offset_data, m.size)
    entries = []
    for i, lid in enumerate(range(start, end)):
        k = label_key(lid)
        entries.append(
            {
                "part": t,
                "tok": list(offsets[f"{k}.{TEXT_TOK}"]),
                "pooled": list(offsets[f"{k}.{TEXT_POOLED}"]),
                "layout": layouts[i],
            }
        )
    return {"name": name, "count": end - start, "bytes": size, "sha256": sha, "entries": entries}


# --- orchestration ------------------------------------------------------------------------------------


@dataclass
class BuildResult:
    out: Path
    items_total: int
    items_written: int
    items_reused: int
    seconds: float
    manifest: Path | None
    summary: dict[str, Any] | None


def build_shards(
    cfg: ShardsConfig,
    sources: Mapping[str, SampleSource],
    store: EmbeddingStore,
    *,
    part: int = 0,
    num_parts: int = 1,
    barrier: Callable[[], None] | None = None,
    progress: bool = True,
) -> BuildResult:
    """Build this part's shards and table parts of every split, then the manifest once all are complete."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    (out / BUILD_DIR).mkdir(parents=True, exist_ok=True)
    if not 0 <= part < num_parts:
        raise ValueError(f"part {part} is not in 0..{num_parts - 1}")
    texts = TextSource(store, cfg)
    plans = {split: plan_split(sources[split], texts, cfg) for split in cfg.splits}
    config_digest = digest(
        {
            "content": cfg.content(),
            "embedder": store.index["embedder_digest"],
            "datasets": {s: p.dataset_digest for s, p in plans.items()},
        }
    )
    items: list[tuple[str, str, int]] = []
    for split in cfg.splits:
        items += [("table", split, t) for t in range(len(plans[split].table_counts))]
        items += [("shard", split, s) for s in range(plans[split].num_shards)]
    mine = [it for j, it in enumerate(items) if j % num_parts == part]
    written = reused = 0
    iterator: Any = mine
    if progress and mine:
        from tqdm import tqdm

        iterator = tqdm(mine, desc=f"shards (part {part}/{num_parts})", unit="file")
    for kind, split, idx in iterator:
        plan = plans[split]
        name = table_name(split, idx) if kind == "table" else shard_name(split, idx)
        if read_record(out, name, config_digest) is not None:
            reused += 1
            continue
        if kind == "table":
            rec = write_table_part(plan, idx, texts, out)
        else:
            ids = {lab: i for i, lab in enumerate(plan.table_labels)}
            rec = write_shard(plan, idx, sources[split], texts, cfg, out, split == cfg.stats_split, ids)
        rec["config_digest"] = config_digest
        atomic_write_json(record_path(out, name), rec)
        written += 1
    if barrier is not None:
        barrier()
    manifest = None
    summary = None
    if barrier is None or part == 0:
        manifest, summary = merge_manifest(cfg, plans, store, config_digest)
    if barrier is not None:
        barrier()
        if manifest is None and (out / MANIFEST).is_file():
            manifest = out / MANIFEST
    return BuildResult(out, len(items), written, reused, time.perf_counter() - t0, manifest, summary)
