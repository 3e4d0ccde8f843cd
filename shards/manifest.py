"""``manifest.json``: everything a rank needs to know about the shards without reading them.

It records the dataset and config digests, the embedder, the text options (k, individual or aggregate,
the aggregator, table or in-sample storage), the motion format, the feature mean/std of the train split,
and per split every shard's name, sample count, byte size, sha256 and per-sample frame counts (so the
loader can plan an epoch, including length bucketing, from the manifest alone), plus the text table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shards.format import ShardError

MANIFEST = "manifest.json"
FORMAT = "actiongpt-shards"
VERSION = 1


@dataclass(frozen=True)
class ShardInfo:
    name: str
    count: int
    bytes: int
    sha256: str
    first_id: int
    lengths: tuple[int, ...]  # total frames per sample, in stored order


@dataclass(frozen=True)
class TableEntry:
    part: int
    tok: tuple[int, int]  # (offset, size) of text_tok.npy data in the part file
    pooled: tuple[int, int]
    layout: dict[str, Any]


class Manifest:
    """Parsed ``manifest.json`` with typed accessors."""

    def __init__(self, root: str | Path, data: dict[str, Any]) -> None:
        self.root = Path(root)
        self.data = data
        if data.get("format") != FORMAT:
            raise ShardError(f"{self.path}: not an {FORMAT} manifest")
        if data.get("version") != VERSION:
            raise ShardError(
                f"{self.path}: manifest version {data.get('version')}, this code reads {VERSION}"
            )

    @property
    def path(self) -> Path:
        return self.root / MANIFEST

    @classmethod
    def load(cls, root: str | Path) -> Manifest:
        path = Path(root) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: build shards first (actiongpt shards build)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ShardError(f"{path}: not valid json ({exc})") from exc
        return cls(root, data)

    # --- global facts --------------------------------------------------------------------------------
    @property
    def splits(self) -> list[str]:
        return sorted(self.data["splits"])

    @property
    def text(self) -> dict[str, Any]:
        return self.data["text"]

    @property
    def embedder(self) -> dict[str, Any]:
        return self.data["embedder"]

    @property
    def token_dim(self) -> int:
        return int(self.embedder["token_dim"])

    @property
    def pooled_dim(self) -> int:
        return int(self.embedder["pooled_dim"])

    @property
    def feature_dim(self) -> int:
        return int(self.data["motion"]["dim"])

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) float32 of the train split's features."""
        st = self.data.get("stats")
        if not st:
            raise ShardError(f"{self.path}: no feature statistics (the train split was never built)")
        return np.asarray(st["mean"], np.float32), np.asarray(st["std"], np.float32)

    # --- per split -----------------------------------------------------------------------------------
    def split(self, name: str) -> dict[str, Any]:
        try:
            return self.data["splits"][name]
        except KeyError:
            raise ShardError(f"{self.path}: split {name!r} was not built; built: {self.splits}") from None

    def mode(self, split: str) -> str:
        return self.split(split)["mode"]

    def shards(self, split: str) -> list[ShardInfo]:
        return [
            ShardInfo(
                s["name"],
                int(s["count"]),
                int(s["bytes"]),
                s["sha256"],
                int(s["first_id"]),
                tuple(int(x) for x in s["lengths"]),
            )
            for s in self.split(split)["shards"]
        ]

    def counts(self, split: str) -> list[int]:
        return [int(s["count"]) for s in self.split(split)["shards"]]

    def num_samples(self, split: str) -> int:
        return int(self.split(split)["num_samples"])

    def table_labels(self, split: str) -> list[str] | None:
        table = self.split(split).get("text_table")
        return None if table is None else list(table["labels"])

    def table_entries(self, split: str) -> list[TableEntry]:
        table = self.split(split).get("text_table")
        if table is None:
            return []
        return [
            TableEntry(
                int(e["part"]),
                (int(e["tok"][0]), int(e["tok"][1])),
                (int(e["pooled"][0]), int(e["pooled"][1])),
                e["layout"],
            )
            for e in table["entries"]
        ]

    def table_parts(self, split: str) -> list[dict[str, Any]]:
        table = self.split(split).get("text_table")
        return [] if table is None else list(table["parts"])

    def digest(self) -> str:
        """Identity of the built data (changes when any shard changes)."""
        import hashlib

        h = hashlib.sha256()
        for split in self.splits:
            for s in self.split(split)["shards"]:
                h.update(s["sha256"].encode())
            for p in self.table_parts(split):
                h.update(p["sha256"].encode())
        return h.hexdigest()[:16]


def write_manifest(root: str | Path, data: dict[str, Any]) -> Path:
    from actiongpt.io_utils import atomic_write_json

    path = Path(root) / MANIFEST
    atomic_write_json(path, data)
    return path
