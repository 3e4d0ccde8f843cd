"""Reading shards: stream raw samples with webdataset's tar iterators, decode and check them, and look
labels up in a split's text table by byte offset (no scan, no full read).

Every error names the shard file and the sample key (the last good one when the tar itself breaks).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tarfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shards.format import (
    META,
    MOTION,
    TEXT_POOLED,
    TEXT_TOK,
    ShardError,
    TextBlock,
    all_finite,
    decode_blocks,
    json_load,
    npy_load,
)
from shards.manifest import Manifest, TableEntry

PAIR_MODE = "pairs"


class _NotPlain(Exception):
    """The archive holds something the fast reader does not handle; tarfile reads it instead."""


_BLOCK = 512
_READ_WHOLE = 32 << 20  # shards up to this size are read with one call, larger ones streamed
_ZERO_BLOCK = bytes(_BLOCK)
# webdataset's base_plus_ext (key = path up to the first dot of the basename) and skipped meta members
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_SKIP_META = re.compile(r"__[^/]*__($|/)")


def _header_number(field: bytes) -> int:
    if field[:1] in (b"\x80", b"\xff"):
        raise _NotPlain("base-256 number")
    try:
        return int(field.split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        raise _NotPlain("bad number") from None


def _byte_sum(block: bytes) -> int:
    """Sum of the 512 bytes of a tar header (its checksum) in C: adler32's low half is 1 + the byte sum
    modulo 65521, exact for 256 bytes (at most 255 * 256 = 65280)."""
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def _iter_plain_tar(fh: Any) -> Iterator[tuple[str, dict[str, bytes]]]:
    """What ``group_by_keys(tar_file_iterator(fh))`` yields, for a plain ustar archive of regular files (what
    the writer produces): each 512-byte header parsed directly instead of through ``tarfile`` (~10x less
    Python per member). Anything else -- pax/GNU headers, other member types, a bad checksum, non-ASCII
    names, truncation, a duplicate member -- raises ``_NotPlain`` before the sample it concerns is yielded,
    and the caller re-reads the archive with tarfile (which reports problems as before)."""
    key: str | None = None
    sample: dict[str, bytes] = {}
    first = True
    while True:
        hdr = fh.read(_BLOCK)
        if len(hdr) < _BLOCK or hdr == _ZERO_BLOCK:
            if first or len(hdr) not in (0, _BLOCK):
                raise _NotPlain("empty or truncated")
            break
        first = False
        if hdr[156:157] not in (b"0", b"\0") or hdr[257:263] != b"ustar\0":
            raise _NotPlain("not a plain ustar file member")
        if _header_number(hdr[148:156]) != _byte_sum(hdr) - sum(hdr[148:156]) + 8 * 32:
            raise _NotPlain("checksum")
        try:
            name = hdr[:100].split(b"\0", 1)[0].decode("ascii")
            prefix = hdr[345:500].split(b"\0", 1)[0].decode("ascii")
        except UnicodeDecodeError:
            raise _NotPlain("non-ASCII name") from None
        if prefix:
            name = f"{prefix}/{name}"
        if name.endswith("/"):
            raise _NotPlain("directory")
        size = _header_number(hdr[124:136])
        data = fh.read(size)
        pad = -size % _BLOCK
        if len(data) != size or len(fh.read(pad)) != pad:
            raise _NotPlain("truncated member")
        if ("/" not in name and name.startswith("__") and name.endswith("__")) or _SKIP_META.match(name):
            continue
        m = _KEY_EXT.match(name)
        if m is None:
            continue
        prefix, suffix = m.group(1), m.group(2).lower()
        if prefix != key:
            if key is not None:
                yield key, sample
            key, sample = prefix, {}
        if suffix in sample:
            raise _NotPlain("duplicate member")
        sample[suffix] = data
    if key is not None:
        yield key, sample


def iter_raw(path: str | Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {member extension: bytes}) in stored order. Corrupt or truncated tars raise ShardError.

    Plain ustar archives (what the writer produces) are parsed directly; anything else, and any archive
    the fast reader stops on, is read with webdataset's tar iterators, skipping the samples already
    yielded (identical samples; the errors are tarfile's)."""
    path = Path(path)
    done = 0
    try:
        with open(path, "rb") as fh:
            small = os.fstat(fh.fileno()).st_size <= _READ_WHOLE
            for item in _iter_plain_tar(io.BytesIO(fh.read()) if small else fh):
                yield item
                done += 1
        return
    except FileNotFoundError:
        raise ShardError(f"shard {path.name}: file {path} not found") from None
    except (_NotPlain, OSError):
        pass
    yield from _iter_raw_tarfile(path, skip=done)


def _iter_raw_tarfile(path: Path, skip: int = 0) -> Iterator[tuple[str, dict[str, bytes]]]:
    from webdataset.tariterators import group_by_keys, tar_file_iterator

    last = "(none: the first sample)"
    try:
        with open(path, "rb") as fh:
            files = ({**f, "__url__": str(path)} for f in tar_file_iterator(fh))
            for i, sample in enumerate(group_by_keys(files)):
                key = sample.pop("__key__")
                sample.pop("__url__", None)
                if i >= skip:
                    yield key, sample
                last = key
    except FileNotFoundError:
        raise ShardError(f"shard {path.name}: file {path} not found") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, ShardError):
            raise
        raise ShardError(
            f"shard {path.name}: corrupt or truncated tar after sample {last} ({type(exc).__name__}: {exc})"
        ) from exc


@dataclass
class DecodedSample:
    key: str  # tar key (s000000123)
    sample_id: int
    meta: dict[str, Any]
    motion: np.ndarray  # (T, 135) as stored (float16 / float32)
    blocks: list[TextBlock] | None  # per action (sample storage)
    label_ids: list[int] | None  # per action (table storage)


def decode_sample(
    key: str, raw: dict[str, bytes], shard: str, manifest: Manifest, split: str
) -> DecodedSample:
    """Decode one raw sample and check it against the manifest (shapes, lengths, dims, finiteness)."""
    where = f"shard {shard}, sample {key}"
    for member in (MOTION, META):
        if member not in raw:
            raise ShardError(f"{where}: member {member} missing (has {sorted(raw)})")
    meta = json_load(raw[META], f"{where} {META}")
    if not isinstance(meta, dict):
        raise ShardError(f"{where}: {META} is not an object")
    where = f"{where} (key {meta.get('key')!r})"
    motion = npy_load(raw[MOTION], f"{where} {MOTION}")
    lengths = meta.get("lengths")
    pairs = manifest.mode(split) == PAIR_MODE
    if not isinstance(lengths, list) or len(lengths) != (3 if pairs else 1):
        raise ShardError(f"{where}: lengths {lengths!r} do not fit mode {manifest.mode(split)!r}")
    if motion.ndim != 2 or motion.shape != (sum(lengths), manifest.feature_dim):
        raise ShardError(
            f"{where}: motion shape {motion.shape}, expected ({sum(lengths)}, {manifest.feature_dim})"
        )
    if motion.dtype != np.dtype(manifest.data["motion"]["dtype"]):
        raise ShardError(
            f"{where}: motion dtype {motion.dtype}, manifest says {manifest.data['motion']['dtype']}"
        )
    if not all_finite(motion):
        raise ShardError(f"{where}: motion contains NaN or Inf")
    n_actions = 2 if pairs else 1
    labels = meta.get("labels")
    if not isinstance(labels, list) or len(labels) != n_actions:
        raise ShardError(f"{where}: labels {labels!r}, expected {n_actions}")
    if pairs and (lengths[0] < 1 or lengths[2] < 1):
        raise ShardError(f"{where}: pair with an empty action, lengths {lengths}")
    blocks = label_ids = None
    text = manifest.text
    if text["storage"] == "table":
        label_ids = meta.get("label_ids")
        n_table = len(manifest.table_labels(split) or [])
        if (
            not isinstance(label_ids, list)
            or len(label_ids) != n_actions
            or not all(isinstance(i, int) and 0 <= i < n_table for i in label_ids)
        ):
            raise ShardError(f"{where}: label_ids {label_ids!r} invalid for a text table of {n_table} labels")
    else:
        for member in (TEXT_TOK, TEXT_POOLED):
            if member not in raw:
                raise ShardError(f"{where}: member {member} missing (has {sorted(raw)})")
        layouts = meta.get("text")
        if not isinstance(layouts, list) or len(layouts) != n_actions:
            raise ShardError(f"{where}: text layout {layouts!r}, expected {n_actions} entries")
        tok = npy_load(raw[TEXT_TOK], f"{where} {TEXT_TOK}")
        pooled = npy_load(raw[TEXT_POOLED], f"{where} {TEXT_POOLED}")
        blocks = decode_blocks(
            tok, pooled, layouts, manifest.token_dim, manifest.pooled_dim, where, text.get("aggregator")
        )
        check_blocks(blocks, text, where)
    try:
        sample_id = int(key[1:])
    except ValueError:
        raise ShardError(f"{where}: tar key is not s<number>") from None
    return DecodedSample(key, sample_id, meta, motion, blocks, label_ids)


def check_blocks(blocks: list[TextBlock], text: dict[str, Any], where: str) -> None:
    for b in blocks:
        if text["store"] == "individual" and b.k != int(text["k"]):
            raise ShardError(f"{where}: {b.k} descriptions stored, manifest says k = {text['k']}")
        if text["store"] == "aggregate" and b.agg_tokens is None:
            raise ShardError(f"{where}: individual descriptions stored, manifest says aggregate")


class ByteLRU:
    """A least-recently-used cache bounded by the bytes of its numpy values."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()

    def get(self, key: Any) -> Any | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        self._items.move_to_end(key)
        return hit[0]

    def put(self, key: Any, value: Any, nbytes: int) -> None:
        if nbytes > self.max_bytes or key in self._items:
            return
        self._items[key] = (value, nbytes)
        self.bytes += nbytes
        while self.bytes > self.max_bytes:
            _, (_, n) = self._items.popitem(last=False)
            self.bytes -= n

    def __len__(self) -> int:
        return len(self._items)


def block_nbytes(b: TextBlock) -> int:
    arrays = [
        b.label_tokens,
        b.label_pooled,
        b.desc_pooled,
        *(b.desc_tokens or []),
        *([b.agg_tokens] if b.agg_tokens is not None else []),
    ]
    return sum(a.nbytes for a in arrays)


class TextTable:
    """Random access to a split's text table: label id -> TextBlock, read with pread at manifest offsets.

    Each DataLoader worker opens its own file handles (opened lazily, so the object pickles cheaply).
    A byte-bounded LRU of decoded blocks makes repeated labels (the common case) cheap.
    """

    def __init__(self, manifest: Manifest, split: str, cache_mb: float = 16.0) -> None:
        self.root = manifest.root
        self.split = split
        self.labels = manifest.table_labels(split) or []
        self.entries: list[TableEntry] = manifest.table_entries(split)
        self.parts = [p["name"] for p in manifest.table_parts(split)]
        self.text = manifest.text
        self.token_dim, self.pooled_dim = manifest.token_dim, manifest.pooled_dim
        self.cache_bytes = int(cache_mb * 1e6)
        self._fds: dict[int, int] = {}
        self._cache = ByteLRU(self.cache_bytes)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fds"] = {}
        state["_cache"] = ByteLRU(self.cache_bytes)
        return state

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()

    def _read(self, part: int, span: tuple[int, int], where: str) -> bytes:
        if part not in self._fds:
            path = self.root / self.parts[part]
            try:
                self._fds[part] = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                raise ShardError(f"text table {self.parts[part]}: file {path} not found") from None
        data = os.pread(self._fds[part], span[1], span[0])
        if len(data) != span[1]:
            raise ShardError(
                f"{where}: truncated text table (read {len(data)} of {span[1]} bytes at {span[0]})"
            )
        return data

    def block(self, label_id: int) -> TextBlock:
        hit = self._cache.get(label_id)
        if hit is not None:
            return hit
        e = self.entries[label_id]
        where = f"text table {self.parts[e.part]}, entry l{label_id:07d} (label {self.labels[label_id]!r})"
        tok = npy_load(self._read(e.part, e.tok, where), f"{where} {TEXT_TOK}")
        pooled = npy_load(self._read(e.part, e.pooled, where), f"{where} {TEXT_POOLED}")
        blocks = decode_blocks(
            tok, pooled, [e.layout], self.token_dim, self.pooled_dim, where, self.text.get("aggregator")
        )
        check_blocks(blocks, self.text, where)
        self._cache.put(label_id, blocks[0], block_nbytes(blocks[0]))
        return blocks[0]
