"""What a training forward needs to know about the whole optimizer step, so its result does not depend on
how the global batch is split over ranks and micro-batches.

The trainer activates a :class:`StepContext` around each micro-batch's forward. With one active:

- **losses are normalised over the global batch** (:mod:`actiongpt.models.losses`): each micro-batch
  returns its *share* of the global-batch loss (per-sample terms divided by the global sample count,
  per-frame terms by the global frame count, the padded reconstruction by the global padded size), so the
  shares add up to the loss of the whole global batch computed at once, whatever the split;
- **randomness is per sample**: the VAE sampling noise (:func:`actiongpt.models.sampling.sample_latent`),
  dropout (:class:`KeyedDropout`) and attention dropout (:class:`KeyedMultiheadAttention`) of a sample come
  from generators seeded by (run seed, step, sample key, draw number), never from the rank's generator, so
  which rank processes a sample changes nothing.

Without a context (evaluation, generation, plain ``model(batch)``) every function behaves as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_MASK = (1 << 63) - 1


@dataclass
class StepContext:
    """The global batch of one optimizer step, seen from one micro-batch."""

    seed: int
    step: int
    samples: int  # samples in the whole global batch
    frames: dict[str, int]  # per ``lengths*`` batch key: sum of the lengths over the global batch
    max_len: dict[str, int]  # per ``lengths*`` batch key: the longest sequence of the global batch
    keys: Sequence[str] = ()  # this micro-batch's sample keys, in batch order
    _bases: list[int] = field(default_factory=list, repr=False)
    _draws: int = field(default=0, repr=False)

    def frames_of(self, lengths_key: str) -> int:
        if lengths_key not in self.frames:
            raise KeyError(
                f"no global frame count for batch key {lengths_key!r} (have {sorted(self.frames)})"
            )
        return self.frames[lengths_key]

    def max_len_of(self, lengths_key: str) -> int:
        if lengths_key not in self.max_len:
            raise KeyError(f"no global length for batch key {lengths_key!r} (have {sorted(self.max_len)})")
        return self.max_len[lengths_key]

    def next_seeds(self) -> list[int]:
        """One seed per sample for the next random draw of this forward (draws are numbered in call order,
        which is the same for a sample whatever micro-batch it is in)."""
        if not self._bases:
            self._bases = [_seed(self.seed, "train", self.step, k) for k in self.keys]
        self._draws += 1
        return [_mix(b, self._draws) for b in self._bases]

    def covers(self, batch_size: int) -> bool:
        return len(self.keys) == batch_size and batch_size > 0


_CURRENT: ContextVar[StepContext | None] = ContextVar("actiongpt_step_context", default=None)


def _seed(*parts: object) -> int:
    text = "\x1f".join(map(str, parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & _MASK


def _mix(base: int, n: int) -> int:
    """splitmix64 of ``base + n``: distinct, well-spread seeds for consecutive draws."""
    z = (base + n * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & _MASK


def current() -> StepContext | None:
    """The active step context, or None outside the trainer's training forward."""
    return _CURRENT.get()


@contextlib.contextmanager
def active(ctx: StepContext) -> Iterator[StepContext]:
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


def keyed_uniform(seeds: Sequence[int], shape: tuple[int, ...]) -> Tensor:
    """(len(seeds), *shape) uniform [0, 1) on the CPU, row i from a generator seeded with ``seeds[i]``.

    A row is drawn flat in row-major order, so for batch-first tensors padded along the time axis the values
    at a sample's valid positions do not depend on how long the padded batch is.
    """
    n = 1
    for d in shape:
        n *= d
    g = torch.Generator(device="cpu")
    rows = []
    for s in seeds:
        g.manual_seed(int(s))
        rows.append(torch.rand(n, generator=g))
    return torch.stack(rows).view(len(seeds), *shape)


class KeyedDropout(nn.Dropout):
    """``nn.Dropout`` whose mask for each sample comes from that sample's keyed generator under a step
    context (batch-first input); exactly ``nn.Dropout`` otherwise. Same parameters and state dict."""

    def forward(self, x: Tensor) -> Tensor:
        ctx = current()
        if not self.training or self.p == 0 or ctx is None or x.dim() < 2 or not ctx.covers(x.shape[0]):
            return super().forward(x)
        keep = keyed_uniform(ctx.next_seeds(), tuple(x.shape[1:])).to(x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


class KeyedMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose attention-probability dropout is keyed per sample under a step
    context (batch-first, packed projections); exactly the parent otherwise. Same parameters.

    A sample's keep-mask is drawn as (queries, heads, valid keys), so the values at its valid positions do
    not depend on how far the micro-batch is padded.
    """

    def forward(  # type: ignore[override]
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        ctx = current()
        plain = (
            not self.training
            or self.dropout == 0
            or ctx is None
            or need_weights
            or is_causal
            or not self.batch_first
            or not self._qkv_same_embed_dim
            or self.bias_k is not None
            or self.add_zero_attn
            or not ctx.covers(query.shape[0])
        )
        if plain:
            return super().forward(
                query,
                key,
                value,
                key_padding_mask=key_padding_mask,
                need_weights=need_weights,
                attn_mask=attn_mask,
                average_attn_weights=average_attn_weights,
                is_causal=is_causal,
            )
        assert ctx is not None
        b, t, e = query.shape
        s, h = key.shape[1], self.num_heads
        hd = e // h
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        q = F.linear(query, wq, bq).view(b, t, h, hd).transpose(1, 2)
        k = F.linear(key, wk, bk).view(b, s, h, hd).transpose(1, 2)
        v = F.linear(value, wv, bv).view(b, s, h, hd).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)  # (B, H, T, S)
        if attn_mask is not None:
            m = attn_mask.view(b, h, t, s) if attn_mask.dim() == 3 else attn_mask
            scores = scores.masked_fill(m, float("-inf")) if m.dtype == torch.bool else scores + m
        valid = torch.ones(b, s, dtype=torch.bool, device=query.device)
        if key_padding_mask is not None:
            kpm = key_padding_mask
            if kpm.dtype == torch.bool:
                valid = ~kpm
                scores = scores.masked_fill(kpm[:, None, None, :], float("-inf"))
            else:
                valid = ~torch.isneginf(kpm)
                scores = scores + kpm[:, None, None, :].to(scores.dtype)
        attn = scores.softmax(dim=-1)
        keep = torch.ones(b, h, t, s, dtype=attn.dtype)
        counts = valid.sum(dim=1).tolist()
        prefix = bool(
            (valid == (torch.arange(s, device=valid.device)[None, :] < valid.sum(1, keepdim=True))).all()
        )
        for i, seed in enumerate(ctx.next_seeds()):
            u = keyed_uniform([seed], (t, h, counts[i]))[0].permute(1, 0, 2) >= self.dropout
            if prefix:  # the usual layout: padding at the end
                keep[i, :, :, : counts[i]] = u
            else:
                keep[i][:, :, valid[i].nonzero().flatten().cpu()] = u.to(attn.dtype)
        attn = attn * keep.to(attn.device) / (1.0 - self.dropout)
        out = (attn @ v).transpose(1, 2).reshape(b, t, e)
        return self.out_proj(out), None


def make_dropout_keyed(model: nn.Module) -> int:
    """Turn every ``nn.Dropout`` and ``nn.MultiheadAttention`` of ``model`` into its keyed form
    (:class:`KeyedDropout`, :class:`KeyedMultiheadAttention`) in place; returns how many modules changed."""
    n = 0
    for m in model.modules():
        if type(m) is nn.Dropout:
            m.__class__ = KeyedDropout
            n += 1
        elif type(m) is nn.MultiheadAttention:
            m.__class__ = KeyedMultiheadAttention
            n += 1
    return n
