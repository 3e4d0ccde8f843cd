"""Configuration of the shard build (one dataclass; YAML files under configs/shards/)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from actiongpt.config import ConfigError, to_dict
from actiongpt.data.dataset import BabelDataConfig
from actiongpt.text.aggregate import AGGREGATORS
from actiongpt.text.embed_stage import EmbedConfig


@dataclass
class ShardsConfig:
    """``actiongpt shards build``: dataset split(s) + description embeddings -> WebDataset shards.

    Defaults: TEACH pairs of the embedded dataset, all-MiniLM-L6-v2 embeddings, k = 4 (the paper's), the
    k descriptions stored individually so k (<= 4 here) and the aggregator can be chosen at load time.
    """

    out: str = "data/embedded/shards/pairs-minilm"
    splits: list[str] = field(default_factory=lambda: ["train", "val"])
    data: BabelDataConfig = field(default_factory=BabelDataConfig)  # its ``split`` is replaced per split
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    canonicalize: Literal["original", "heading", "none"] = "original"
    # text storage: "table" = each label's embeddings once per split in <split>-text-NNNNNN.tar, samples
    # reference label ids (small samples); "sample" = each sample carries its own text (self-contained).
    text_storage: Literal["table", "sample"] = "table"
    # "individual" keeps the first k description embeddings (choose k' <= k and the aggregator at load
    # time: the k ablation); "aggregate" stores only their aggregate (smallest; k and aggregator fixed).
    text_store: Literal["individual", "aggregate"] = "individual"
    k: int = 4
    aggregator: str = "original"  # used by text_store=aggregate; one of actiongpt.text.aggregate.AGGREGATORS
    motion_dtype: Literal["float16", "float32"] = "float16"
    target_shard_mb: float = 256.0
    # the shard count is a multiple of this (set it to ranks x DataLoader workers, or a multiple of it)
    shard_multiple: int = 16
    stats_split: str = "train"
    seed: int = 0
    part: str | None = None  # "i/n" builder partition; default: process group / Slurm array / RANK, else 0/1

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        if self.aggregator not in AGGREGATORS:
            raise ConfigError(f"aggregator must be one of {AGGREGATORS}, got {self.aggregator!r}")
        if self.target_shard_mb <= 0:
            raise ConfigError(f"target_shard_mb must be > 0, got {self.target_shard_mb}")
        if self.shard_multiple < 1:
            raise ConfigError(f"shard_multiple must be >= 1, got {self.shard_multiple}")
        if not self.splits:
            raise ConfigError("splits must name at least one split")

    def content(self) -> dict[str, Any]:
        """The options that determine the bytes of the shards (not paths, not the builder count)."""
        return {
            "mode": self.data.mode,
            "data": {
                k: v
                for k, v in to_dict(self.data).items()
                if k not in ("babel_dir", "amass_dir", "split", "cache_size", "strict")
            },
            "canonicalize": self.canonicalize,
            "text_storage": self.text_storage,
            "text_store": self.text_store,
            "k": self.k,
            "aggregator": self.aggregator if self.text_store == "aggregate" else None,
            "motion_dtype": self.motion_dtype,
            "target_shard_mb": self.target_shard_mb,
            "shard_multiple": self.shard_multiple,
            "stats_split": self.stats_split,
            "seed": self.seed,
        }


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
