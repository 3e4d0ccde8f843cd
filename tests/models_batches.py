"""Synthetic batches in the loader's schema for the model tests (no data files needed)."""

from __future__ import annotations

import torch

NFEATS = 135
TEXT_DIM = 16


def single_batch(
    lengths: list[int],
    *,
    agpt: bool = True,
    seed: int = 0,
    text_dim: int = TEXT_DIM,
    pad_to: int | None = None,
    k: int = 4,
) -> dict:
    """A single-action batch: smooth, distinct per-sample motions (normalised scale), zero-padded.

    ``agpt``: the text is the loader's Action-GPT input (per-position mean of k "description" token states
    of different lengths, union mask: longer sequences); else a raw-label-like short embedding (baseline).
    """
    g = torch.Generator().manual_seed(seed)
    bs = len(lengths)
    n = torch.tensor(lengths, dtype=torch.long)
    t_pad = pad_to or max(lengths)
    t = torch.arange(t_pad, dtype=torch.float32)[None, :, None]
    freq = torch.rand(bs, 1, NFEATS, generator=g) * 0.3 + 0.05
    phase = torch.rand(bs, 1, NFEATS, generator=g) * 6.0
    motion = torch.sin(freq * t + phase) * (t < n[:, None, None])
    if agpt:
        width = 12
        states = torch.randn(bs, k, width, text_dim, generator=g)
        desc_len = torch.randint(5, width + 1, (bs, k), generator=g)
        m = torch.arange(width)[None, None, :] < desc_len[..., None]
        # The original aggregator: unmasked per-position mean over the k (zero-padded) descriptions.
        text = (states * m[..., None]).mean(dim=1)
        mask = m.any(dim=1)
    else:
        width = 4
        text = torch.randn(bs, width, text_dim, generator=g)
        mask = torch.ones(bs, width, dtype=torch.bool)
        mask[0, 3:] = False
    pooled = (text * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return {
        "keys": [f"s{seed}-{i}" for i in range(bs)],
        "motion": motion,
        "lengths": n,
        "text": text,
        "text_mask": mask,
        "text_pooled": pooled,
    }


def pairs_batch(
    lengths_0: list[int],
    lengths_1: list[int],
    transitions: list[int],
    *,
    agpt: bool = True,
    seed: int = 0,
    text_dim: int = TEXT_DIM,
) -> dict:
    """A TEACH pairs batch: suffixes _0/_1; ``lengths_1`` includes the transition frames."""
    first = single_batch(lengths_0, agpt=agpt, seed=seed, text_dim=text_dim)
    second = single_batch(lengths_1, agpt=agpt, seed=seed + 1000, text_dim=text_dim)
    batch = {"keys": first["keys"], "transition_lengths": torch.tensor(transitions, dtype=torch.long)}
    for i, part in enumerate((first, second)):
        for key, value in part.items():
            if key != "keys":
                batch[f"{key}_{i}"] = value
    return batch


def identity_stats(model) -> None:
    model.set_feature_stats(torch.zeros(NFEATS), torch.ones(NFEATS))


def realistic_stats(model) -> None:
    """Stats that make normalised features near zero an upright rest pose with small joint rotations."""
    from actiongpt.motion.rotations import matrix_to_rot6d, rotation_about_axis

    mean = torch.zeros(NFEATS)
    std = torch.full((NFEATS,), 0.05)
    mean[0], std[0] = 0.9, 0.02
    std[1:3] = 0.01
    eye6 = matrix_to_rot6d(torch.eye(3))
    root6 = matrix_to_rot6d(rotation_about_axis(torch.tensor(torch.pi / 2), "x"))
    mean[3:9] = root6
    for j in range(1, 22):
        mean[3 + 6 * j : 9 + 6 * j] = eye6
    model.set_feature_stats(mean, std)


def embed_fn_factory(text_dim: int = TEXT_DIM, n_descriptions: int = 4):
    """A deterministic stand-in for phrase -> descriptions -> embeddings -> aggregate.

    Each (phrase, description i) has fixed token states; ``description=j`` returns description j alone,
    otherwise the per-position mean of the first ``k`` descriptions (union mask). Records its calls.
    """
    calls: list[dict] = []

    def states(phrase: str, i: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(sum(map(ord, phrase)) * 31 + i)
        n = 3 + (len(phrase) + i) % 6
        return torch.randn(10, text_dim, generator=g), n

    def embed(phrases, k=None, aggregator=None, description=None):
        calls.append({"phrases": list(phrases), "k": k, "aggregator": aggregator, "description": description})
        toks, masks = [], []
        for p in phrases:
            idx = [description] if description is not None else list(range(k or n_descriptions))
            if description is not None and description >= n_descriptions:
                raise IndexError(f"{p!r} has {n_descriptions} descriptions, asked for {description}")
            parts = [states(p, i) for i in idx]
            m = torch.stack([torch.arange(10) < n for _, n in parts])
            x = torch.stack([s * mi[:, None] for (s, _), mi in zip(parts, m)])
            toks.append(x.mean(0))
            masks.append(m.any(0))
        tokens, mask = torch.stack(toks), torch.stack(masks)
        pooled = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return tokens, mask, pooled

    embed.calls = calls
    return embed
