"""Latent sampling with reproducible noise.

Training draws the noise of each sample from its own keyed generator under the trainer's step context
(:mod:`actiongpt.models.step_context`), else from the global RNG (reparameterised ``rsample``).
Generation takes noise from a per-sample seed, so that a sample's output depends only on its seed (derived
from its key), never on which other samples share its batch or which rank runs it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.distributions import Normal

from actiongpt.models.step_context import current

_SEED_MASK = (1 << 63) - 1


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from a base seed and any labels (sample key, action index, variant number)."""
    text = "\x1f".join([str(int(seed)), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & _SEED_MASK


def seed_from_key(key: str, base_seed: int = 0) -> int:
    """The generation seed of the sample called ``key`` (the distributed evaluator's per-sample seed)."""
    return derive_seed(base_seed, "key", key)


def per_sample_noise(
    seeds: Sequence[int], dim: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Tensor:
    """(len(seeds), dim) standard-normal noise, row i drawn from a CPU generator seeded with ``seeds[i]``.

    Drawn on the CPU so that the numbers are the same on every device type.
    """
    rows = []
    for s in seeds:
        g = torch.Generator(device="cpu")
        g.manual_seed(int(s))
        rows.append(torch.randn(dim, generator=g))
    if not rows:
        return torch.zeros(0, dim, device=device, dtype=dtype)
    return torch.stack(rows).to(device=device, dtype=dtype)


def sample_latent(
    dist: Normal,
    *,
    mean: bool = False,
    fact: float = 1.0,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``loc`` (``mean``), or ``loc + fact · scale · eps`` (the original's ``fact`` rescales the noise).

    ``eps`` is ``noise`` if given, else drawn from ``generator``, else per sample under a step context, else
    from the global RNG (training: the reparameterisation trick, gradients flow through loc and scale).
    """
    if mean:
        return dist.loc
    ctx = current()
    if (
        noise is None
        and generator is None
        and ctx is not None
        and dist.loc.dim() == 2
        and ctx.covers(len(dist.loc))
    ):
        noise = per_sample_noise(ctx.next_seeds(), dist.loc.shape[1], dist.loc.device, dist.loc.dtype)
    if noise is None:
        if generator is None:
            noise = torch.randn_like(dist.loc)
        else:
            noise = torch.randn(dist.loc.shape, generator=generator, device=generator.device).to(dist.loc)
    elif noise.shape != dist.loc.shape:
        raise ValueError(f"noise {tuple(noise.shape)} does not match the latent {tuple(dist.loc.shape)}")
    return dist.loc + fact * dist.scale * noise
