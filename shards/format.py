"""What one shard sample (and one text-table entry) holds, and how it is encoded and decoded.

A sample is one training example (a segment, a sequence, or a TEACH pair with its transition). Tar members
of sample ``s000000123`` (the number is the sample's id in its split, = shard offset + position):

- ``motion.npy``       (T, 135) unnormalised features, float16 (default) or float32
- ``meta.json``        key, source file, split, fps, labels, lengths (pairs: [len_0, len_transition, len_1]),
                       and either ``label_ids`` into the split's text table or ``text`` (the layout below)
- ``text_tok.npy``     (R, D) float16: the per-token text rows of every action, concatenated (sample storage)
- ``text_pooled.npy``  (P, Dp) float16: the pooled rows of every action (sample storage)

Text rows of one action ("text block"): the k descriptions' tokens one after the other (or their aggregate
when built with ``text.store = aggregate``), then the raw label's tokens. Pooled rows: the k descriptions'
vectors (or their mean), then the label's. No padding is stored anywhere; the layout ``{"desc_len": [...]}``
or ``{"agg_len": G}`` plus ``"label_len"`` says where each text starts.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from actiongpt.text.aggregate import aggregate_pooled, aggregate_tokens
from actiongpt.text.embedding_store import LabelEmbedding

MOTION = "motion.npy"
META = "meta.json"
TEXT_TOK = "text_tok.npy"
TEXT_POOLED = "text_pooled.npy"
TAR_MEMBER_OVERHEAD = 512  # one ustar header per member (+ data padded to 512 bytes)


class ShardError(ValueError):
    """A shard or sample is unusable; the message names the shard file and the sample key."""


def sample_key(sample_id: int) -> str:
    return f"s{sample_id:09d}"


def label_key(label_id: int) -> str:
    return f"l{label_id:07d}"


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


_NPY_MAGIC = b"\x93NUMPY\x01\x00"  # format version 1.0, what np.lib.format.write_array writes for our arrays
# the header dict exactly as numpy writes it for a little-endian float array, C order
_NPY_HEADER = re.compile(
    rb"\{'descr': '<f([248])', 'fortran_order': False, 'shape': \(((?:\d+, )*\d*),?\), \} *\n"
)


def _npy_fast(data: bytes) -> np.ndarray | None:
    """The array of an .npy written by ``npy_bytes`` (v1.0, '<f2'/'<f4'/'<f8', C order), parsed without
    numpy's header machinery (``ast.literal_eval`` costs ~0.1 ms per array); None for anything else, which
    then goes through ``np.lib.format.read_array`` (and its errors)."""
    if data[:8] != _NPY_MAGIC or len(data) < 10:
        return None
    start = 10 + int.from_bytes(data[8:10], "little")
    m = _NPY_HEADER.fullmatch(data, 10, start)
    if m is None:
        return None
    shape = tuple(int(x) for x in m.group(2).split(b", ") if x)
    dtype = np.dtype(f"<f{int(m.group(1))}")
    count = math.prod(shape)
    if len(data) - start < count * dtype.itemsize:
        return None  # truncated: numpy reports it
    return np.frombuffer(data, dtype, count, start).reshape(shape).copy()


def npy_load(data: bytes, where: str) -> np.ndarray:
    fast = _npy_fast(data)
    if fast is not None:
        return fast
    try:
        return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError/EOFError/... for corrupt headers or data
        raise ShardError(f"{where}: cannot decode .npy ({type(exc).__name__}: {exc})") from exc


def all_finite(a: np.ndarray) -> bool:
    """``np.isfinite(a).all()``; float16 from the exponent bits (numpy's float16 isfinite is ~4x slower)."""
    if a.dtype == np.float16:
        return a.size == 0 or int((a.view(np.uint16) & 0x7FFF).max()) < 0x7C00  # exponent all ones: inf/nan
    return bool(np.isfinite(a).all())


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def json_load(data: bytes, where: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardError(f"{where}: cannot decode json ({exc})") from exc


def padded_size(nbytes: int) -> int:
    """Bytes a member occupies in a tar: header + data rounded up to 512."""
    return TAR_MEMBER_OVERHEAD + (nbytes + 511) // 512 * 512


@dataclass
class TextBlock:
    """The stored text of one action: individual descriptions or their aggregate, plus the raw label."""

    label_tokens: np.ndarray  # (n, D)
    label_pooled: np.ndarray  # (Dp,)
    desc_pooled: np.ndarray  # (k, Dp) individual, (1, Dp) aggregate
    desc_tokens: list[np.ndarray] | None = None  # k x (n_i, D)
    agg_tokens: np.ndarray | None = None  # (G, D)
    aggregator: str | None = None  # set for aggregate blocks

    @property
    def k(self) -> int:
        return len(self.desc_tokens) if self.desc_tokens is not None else 0

    def layout(self) -> dict[str, Any]:
        if self.desc_tokens is not None:
            return {
                "desc_len": [int(t.shape[0]) for t in self.desc_tokens],
                "label_len": int(self.label_tokens.shape[0]),
            }
        assert self.agg_tokens is not None
        return {"agg_len": int(self.agg_tokens.shape[0]), "label_len": int(self.label_tokens.shape[0])}

    def rows(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        toks = list(self.desc_tokens) if self.desc_tokens is not None else [self.agg_tokens]
        return [*toks, self.label_tokens], [self.desc_pooled, self.label_pooled[None, :]]


def make_text_block(emb: LabelEmbedding, k: int, store: str, aggregator: str) -> TextBlock:
    """The block of one label for the build options: the first k descriptions, individual or aggregated."""
    if emb.num_descriptions < k:
        raise ShardError(
            f"label {emb.label!r} has {emb.num_descriptions} embedded descriptions, k = {k} requested"
        )
    toks = emb.desc_tokens[:k]
    pooled = emb.desc_pooled[:k]
    if store == "individual":
        return TextBlock(
            emb.label_tokens, emb.label_pooled, pooled.astype(np.float16), desc_tokens=list(toks)
        )
    agg = aggregate_tokens(toks, aggregator).astype(np.float16)
    vec = aggregate_pooled(pooled).astype(np.float16)[None, :]
    return TextBlock(emb.label_tokens, emb.label_pooled, vec, agg_tokens=agg, aggregator=aggregator)


def encode_blocks(blocks: list[TextBlock]) -> tuple[bytes, bytes, list[dict[str, Any]]]:
    """(text_tok.npy bytes, text_pooled.npy bytes, layouts) of one sample's or table entry's blocks."""
    toks: list[np.ndarray] = []
    pools: list[np.ndarray] = []
    for b in blocks:
        t, p = b.rows()
        toks.extend(t)
        pools.extend(p)
    tok = np.concatenate(toks, axis=0).astype(np.float16)
    pooled = np.concatenate(pools, axis=0).astype(np.float16)
    return npy_bytes(tok), npy_bytes(pooled), [b.layout() for b in blocks]


def decode_blocks(
    tok: np.ndarray,
    pooled: np.ndarray,
    layouts: list[dict[str, Any]],
    token_dim: int,
    pooled_dim: int,
    where: str,
    aggregator: str | None = None,
) -> list[TextBlock]:
    """Split stored rows back into blocks, checking shapes against the layouts and finiteness."""
    if tok.ndim != 2 or tok.shape[1] != token_dim:
        raise ShardError(f"{where}: text tokens have shape {tok.shape}, expected (R, {token_dim})")
    if pooled.ndim != 2 or pooled.shape[1] != pooled_dim:
        raise ShardError(f"{where}: pooled text has shape {pooled.shape}, expected (P, {pooled_dim})")
    blocks: list[TextBlock] = []
    r = p = 0
    try:
        for lay in layouts:
            if "desc_len" in lay:
                lens = [int(n) for n in lay["desc_len"]]
                desc = []
                for n in lens:
                    desc.append(tok[r : r + n])
                    r += n
                dpool = pooled[p : p + len(lens)]
                p += len(lens)
                agg = None
            else:
                n = int(lay["agg_len"])
                agg = tok[r : r + n]
                r += n
                desc = None
                dpool = pooled[p : p + 1]
                p += 1
            n_label = int(lay["label_len"])
            label_tok = tok[r : r + n_label]
            r += n_label
            label_pool = pooled[p]
            p += 1
            if min([label_tok.shape[0], *([t.shape[0] for t in desc] if desc else [agg.shape[0]])]) < 1:
                raise ShardError(f"{where}: a stored text has no tokens")
            blocks.append(
                TextBlock(
                    label_tok,
                    label_pool,
                    dpool,
                    desc_tokens=desc,
                    agg_tokens=agg,
                    aggregator=None if desc is not None else aggregator,
                )
            )
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        if isinstance(exc, ShardError):
            raise
        raise ShardError(f"{where}: malformed text layout {layouts!r} ({exc})") from exc
    if r != tok.shape[0] or p != pooled.shape[0]:
        raise ShardError(
            f"{where}: text layout covers {r} token / {p} pooled rows, stored {tok.shape[0]} / "
            f"{pooled.shape[0]}"
        )
    if not (all_finite(tok) and all_finite(pooled)):
        raise ShardError(f"{where}: non-finite text embedding")
    return blocks
