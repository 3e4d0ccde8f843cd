"""How a split is laid out in shards: names, the shard count, which example goes where (a pure function of
the data and the config), and the per-item build records in ``<out>/.build``.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actiongpt.motion.features import FEATURE_DIM
from actiongpt.text.embedding_store import EmbeddingStore, LabelEmbedding
from shards.config import ShardsConfig
from shards.format import (
    ShardError,
    TextBlock,
    make_text_block,
    padded_size,
)
from shards.source import SampleSource, source_digest

META_ESTIMATE = 1024  # bytes of meta.json incl. its tar member, for sizing only
BUILD_DIR = ".build"
TAR_MTIME = 0  # fixed header fields: identical bytes for identical content


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.tar"


def table_name(split: str, index: int) -> str:
    return f"{split}-text-{index:06d}.tar"


def choose_shard_count(total_bytes: float, n: int, target_bytes: float, multiple: int) -> int:
    """Smallest multiple of ``multiple`` with shards <= target, at most one shard per sample."""
    if n == 0:
        return 0
    want = max(1, math.ceil(total_bytes / target_bytes))
    count = math.ceil(want / multiple) * multiple
    if (
        count > n
    ):  # fewer samples than the multiple: the largest multiple that still fits, else one per sample
        count = (n // multiple) * multiple or n
    return count


def even_counts(n: int, parts: int) -> list[int]:
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _split_seed(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(split.encode())])


@dataclass
class SplitPlan:
    split: str
    mode: str
    order: list[int]  # source index of each sample id (layout order)
    keys: list[str]
    labels: list[list[str]]
    lengths: list[list[int]]
    shard_counts: list[int]
    table_labels: list[str]  # sorted labels of the split (table storage), else []
    table_counts: list[int]  # labels per table part
    dataset_digest: str

    @property
    def num_shards(self) -> int:
        return len(self.shard_counts)

    def shard_range(self, s: int) -> tuple[int, int]:
        start = sum(self.shard_counts[:s])
        return start, start + self.shard_counts[s]

    def table_range(self, t: int) -> tuple[int, int]:
        start = sum(self.table_counts[:t])
        return start, start + self.table_counts[t]


class TextSource:
    """Text blocks of labels from an embedding store, per the build options; cached per label."""

    def __init__(self, store: EmbeddingStore, cfg: ShardsConfig) -> None:
        self.store, self.cfg = store, cfg
        self._cache: dict[str, TextBlock] = {}

    def embedding(self, label: str) -> LabelEmbedding:
        return self.store.get(label)

    def block(self, label: str) -> TextBlock:
        if label not in self._cache:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[label] = make_text_block(
                self.store.get(label), self.cfg.k, self.cfg.text_store, self.cfg.aggregator
            )
        return self._cache[label]

    def block_bytes(self, label: str) -> tuple[int, int]:
        """(token rows, pooled rows) of a label's block, from token counts only."""
        n_label, n_desc = self.store.token_counts(label)
        if self.cfg.text_store == "individual":
            return sum(n_desc[: self.cfg.k]) + n_label, self.cfg.k + 1
        return max(n_desc[: self.cfg.k]) + n_label, 2


def plan_split(source: SampleSource, texts: TextSource, cfg: ShardsConfig) -> SplitPlan:
    """Assign examples to shards and labels to table parts (pure function of data and config)."""
    n = len(source)
    keys = [source.key(i) for i in range(n)]
    if len(set(keys)) != n:
        from collections import Counter

        dup = next(k for k, c in Counter(keys).items() if c > 1)
        raise ShardError(f"split {source.split}: duplicate sample key {dup!r}")
    by_key = sorted(range(n), key=lambda i: keys[i])
    perm = _split_seed(cfg.seed, source.split).permutation(n)
    order = [by_key[int(p)] for p in perm]
    labels = [source.labels(i) for i in order]
    lengths = [source.lengths(i) for i in order]
    ordered_keys = [keys[i] for i in order]
    # every label must have embedded descriptions before anything is written
    label_set = sorted({lab for labs in labels for lab in labs})
    for lab in label_set:
        if lab not in texts.store:
            where = next(k for k, labs in zip(ordered_keys, labels) if lab in labs)
            raise ShardError(
                f"split {source.split}, sample {where!r}: label {lab!r} has no descriptions in the "
                f"embedding store {texts.store.folder}"
            )
        if texts.store.num_descriptions(lab) < cfg.k:
            raise ShardError(
                f"split {source.split}: label {lab!r} has {texts.store.num_descriptions(lab)} "
                f"descriptions, k = {cfg.k} requested"
            )
    # exact sizes (all data is fp16 except the motion's dtype) for the shard count
    itemsize = np.dtype(cfg.motion_dtype).itemsize
    d, dp = texts.store.token_dim, texts.store.pooled_dim
    block = {lab: texts.block_bytes(lab) for lab in label_set}
    total = 0.0
    for labs, lens in zip(labels, lengths):
        total += padded_size(128 + sum(lens) * FEATURE_DIM * itemsize) + META_ESTIMATE
        if cfg.text_storage == "sample":
            rows = sum(block[lab][0] for lab in labs)
            prow = sum(block[lab][1] for lab in labs)
            total += padded_size(128 + rows * d * 2) + padded_size(128 + prow * dp * 2)
    target = cfg.target_shard_mb * 1e6
    shards = choose_shard_count(total, n, target, cfg.shard_multiple)
    table_labels: list[str] = []
    table_counts: list[int] = []
    if cfg.text_storage == "table" and label_set:
        table_labels = label_set
        table_total = sum(
            padded_size(128 + block[lab][0] * d * 2)
            + padded_size(128 + block[lab][1] * dp * 2)
            + META_ESTIMATE
            for lab in label_set
        )
        parts = min(len(label_set), max(1, math.ceil(table_total / target)))
        table_counts = even_counts(len(label_set), parts)
    return SplitPlan(
        source.split,
        source.mode,
        order,
        ordered_keys,
        labels,
        lengths,
        even_counts(n, shards) if shards else [],
        table_labels,
        table_counts,
        source_digest(source),
    )


def record_path(out: Path, name: str) -> Path:
    return out / BUILD_DIR / f"{name}.json"


def read_record(out: Path, name: str, config_digest: str) -> dict[str, Any] | None:
    import json

    path = record_path(out, name)
    if not path.is_file() or not (out / name).is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if rec.get("config_digest") != config_digest or (out / name).stat().st_size != rec.get("bytes"):
        return None
    return rec
