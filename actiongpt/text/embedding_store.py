"""On-disk store of description embeddings: per label, its own text and its k descriptions, embedded once.

Layout of a store folder (written by :mod:`actiongpt.text.embed_stage`):

- ``chunk-NNNNNN.tok.npy``    (R, D) float16: the token states of every text of the chunk, concatenated
- ``chunk-NNNNNN.pooled.npy`` (N, Dp) float16: one pooled vector per text
- ``chunk-NNNNNN.json``       labels of the chunk, per-text token counts, the input and embedder digests;
  written last, so a chunk is complete exactly when its json exists
- ``index.json``              the embedder, the chunk list and the overall input digest; written by the merge

Texts of one label, in order: the label itself (the baseline's text), then descriptions i = 0..K-1.
Plain ``.npy`` files keep the bytes deterministic (a chunk's content depends only on its labels, never on
which rank embedded it) and allow memory-mapped random access.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actiongpt.io_utils import atomic_write_bytes, atomic_write_json

STORE_FORMAT = "actiongpt-embeddings"
STORE_VERSION = 1


class StoreError(ValueError):
    """A store is missing, incomplete or inconsistent; the message names the file and label."""


@dataclass
class LabelEmbedding:
    """Everything embedded for one label: its own text and its descriptions (float16, unpadded)."""

    label: str
    label_tokens: np.ndarray  # (n, D)
    label_pooled: np.ndarray  # (Dp,)
    desc_tokens: list[np.ndarray]  # k x (n_i, D)
    desc_pooled: np.ndarray  # (k, Dp)

    @property
    def num_descriptions(self) -> int:
        return len(self.desc_tokens)


def chunk_name(index: int) -> str:
    return f"chunk-{index:06d}"


def chunk_input_digest(items: Sequence[tuple[str, Sequence[str]]], embedder_digest: str) -> str:
    """Digest of what a chunk embeds: (label, descriptions) in order, and the embedder."""
    h = hashlib.sha256(embedder_digest.encode())
    h.update(json.dumps([[label, list(descs)] for label, descs in items], ensure_ascii=False).encode())
    return h.hexdigest()


def npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def write_chunk(
    folder: Path,
    index: int,
    labels: Sequence[str],
    num_desc: Sequence[int],
    tokens: Sequence[np.ndarray],
    pooled: np.ndarray,
    input_digest: str,
    embedder: Mapping[str, Any],
    embedder_digest: str,
    spec: Mapping[str, Any] | None,
) -> None:
    """Write one chunk: the arrays first, the json (completeness marker) last, each atomically."""
    name = chunk_name(index)
    dim = tokens[0].shape[1]
    tok = np.concatenate(tokens, axis=0) if tokens else np.zeros((0, dim), np.float16)
    atomic_write_bytes(folder / f"{name}.tok.npy", npy_bytes(tok.astype(np.float16)), fsync=True)
    atomic_write_bytes(folder / f"{name}.pooled.npy", npy_bytes(pooled.astype(np.float16)), fsync=True)
    atomic_write_json(
        folder / f"{name}.json",
        {
            "labels": list(labels),
            "num_desc": [int(n) for n in num_desc],
            "tok_len": [int(t.shape[0]) for t in tokens],
            "input_digest": input_digest,
            "embedder_digest": embedder_digest,
            "embedder": dict(embedder),
            "spec": dict(spec) if spec is not None else None,
        },
    )


def read_chunk_meta(folder: Path, index: int) -> dict[str, Any] | None:
    path = Path(folder) / f"{chunk_name(index)}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # torn by a crash: the chunk is redone


class EmbeddingStore:
    """Read access to a merged store: ``store.get(label) -> LabelEmbedding``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        index_path = self.folder / "index.json"
        if not index_path.is_file():
            raise StoreError(
                f"{index_path} not found: the embedding store is missing or was not merged "
                "(run `actiongpt shards embed`)"
            )
        self.index = json.loads(index_path.read_text())
        if self.index.get("format") != STORE_FORMAT:
            raise StoreError(f"{index_path} is not an {STORE_FORMAT} index")
        self.embedder: dict[str, Any] = self.index["embedder"]
        self._where: dict[str, tuple[int, int, int]] = {}  # label -> (chunk, first text, num descriptions)
        self._offsets: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        self._names: list[str] = []  # file stem of the c-th chunk of the index (named by its chunk id)
        for c, entry in enumerate(self.index["chunks"]):
            self._names.append(chunk_name(int(entry["id"])))
            meta = read_chunk_meta(self.folder, int(entry["id"]))
            if meta is None or meta["input_digest"] != entry["input_digest"]:
                raise StoreError(
                    f"{self.folder / self._names[c]}.json is missing or does not match index.json"
                )
            lengths = np.asarray(meta["tok_len"], dtype=np.int64)
            self._lengths.append(lengths)
            self._offsets.append(np.concatenate([[0], np.cumsum(lengths)]))
            text = 0
            for label, n in zip(meta["labels"], meta["num_desc"]):
                self._where[label] = (c, text, int(n))
                text += 1 + int(n)
        self._tok: dict[int, np.ndarray] = {}
        self._pooled: dict[int, np.ndarray] = {}

    @property
    def labels(self) -> list[str]:
        return sorted(self._where)

    @property
    def token_dim(self) -> int:
        return int(self.embedder["token_dim"])

    @property
    def pooled_dim(self) -> int:
        return int(self.embedder["pooled_dim"])

    def __contains__(self, label: str) -> bool:
        return label in self._where

    def __len__(self) -> int:
        return len(self._where)

    def num_descriptions(self, label: str) -> int:
        return self._where[label][2]

    def token_counts(self, label: str) -> tuple[int, list[int]]:
        """(label token count, description token counts) without reading the arrays."""
        c, first, n = self._lookup(label)
        lengths = self._lengths[c][first : first + 1 + n]
        return int(lengths[0]), [int(x) for x in lengths[1:]]

    def _lookup(self, label: str) -> tuple[int, int, int]:
        try:
            return self._where[label]
        except KeyError:
            raise StoreError(
                f"label {label!r} is not in the embedding store {self.folder} "
                "(no descriptions were generated for it)"
            ) from None

    def _arrays(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        if c not in self._tok:
            name = self._names[c]
            self._tok[c] = np.load(self.folder / f"{name}.tok.npy", mmap_mode="r")
            self._pooled[c] = np.load(self.folder / f"{name}.pooled.npy", mmap_mode="r")
        return self._tok[c], self._pooled[c]

    def get(self, label: str) -> LabelEmbedding:
        c, first, n = self._lookup(label)
        tok, pooled = self._arrays(c)
        off = self._offsets[c]
        texts = [np.array(tok[off[first + j] : off[first + j + 1]]) for j in range(1 + n)]
        vecs = np.array(pooled[first : first + 1 + n])
        for j, t in enumerate(texts):
            if not (np.isfinite(t).all() and np.isfinite(vecs[j]).all()):
                what = "label text" if j == 0 else f"description {j - 1}"
                raise StoreError(
                    f"{self.folder / self._names[c]}: non-finite embedding for label {label!r} ({what})"
                )
        return LabelEmbedding(
            label=label,
            label_tokens=texts[0],
            label_pooled=vecs[0],
            desc_tokens=texts[1:],
            desc_pooled=vecs[1:],
        )
