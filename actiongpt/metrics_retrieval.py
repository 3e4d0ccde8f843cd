"""Text-motion metrics on evaluator embeddings: R-precision, FID, diversity, multimodality, MM-Dist.

The HumanML3D protocol's definitions (Guo et al.), on any (N, E) embeddings given in one global order:

- R-precision top-k: each motion is ranked against its own text and ``batch - 1`` distractor texts; the
  share of motions whose own text is among the k nearest. The distractors are drawn with a seeded generator
  from the items whose text differs from the true one (the same label twice is not a wrong answer), so the
  chance level is k / batch. The same draw ranks each text against its motion and the distractors' motions
  (text->motion, TMR's "guo" protocol). Euclidean distance, as the protocol.
- FID: Frechet distance between Gaussians fitted to generated and reference motion embeddings.
- Diversity: mean distance of ``pairs`` seeded random pairs of different motions.
- Multimodality: mean distance between the generated variants of the same text (all pairs of variants).
- MM-Dist: mean distance between each motion and its own text.

Everything here is a function of the inputs, the order of the items and the seed -- never of the process
that calls it: distributed callers gather every rank's embeddings first (``cluster.eval_embeddings``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from actiongpt.models.sampling import derive_seed

PROTOCOL_BATCH = 32  # one true text among 32 (the protocol's batch_size)
DIVERSITY_PAIRS = 300  # the protocol's diversity_times
TOP_K = (1, 2, 3)


def _generator(seed: int, *parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, "retrieval", *parts))


def distractors(text_ids: Sequence[str], batch: int = PROTOCOL_BATCH, seed: int = 0) -> Tensor:
    """(N, D) indices of D = min(batch - 1, fewest other-text items) distractors per item, seeded.

    Item i's distractors are distinct items whose text differs from item i's. Raises ValueError when some
    item has no other-text item at all (retrieval is undefined on one text).
    """
    if batch < 2:
        raise ValueError(f"retrieval batch must be >= 2, got {batch}")
    _, inverse = np.unique(np.asarray(list(text_ids), dtype=object).astype(str), return_inverse=True)
    ids = torch.from_numpy(inverse.astype(np.int64))
    n = len(ids)
    counts = torch.bincount(ids)
    fewest = int(n - counts.max()) if n else 0
    if fewest < 1:
        raise ValueError(f"retrieval needs at least two different texts; got {n} items of one text")
    d = min(batch - 1, fewest)
    g = _generator(seed, "distractors", n, d)
    out = torch.empty(n, d, dtype=torch.long)
    chunk = max(1, (1 << 22) // max(n, 1))  # rows per draw: bounded (chunk, N) weight matrix
    for start in range(0, n, chunk):
        rows = ids[start : start + chunk]
        weights = (rows[:, None] != ids[None, :]).double()
        out[start : start + chunk] = torch.multinomial(weights, d, replacement=False, generator=g)
    return out


def retrieval_hits(query: Tensor, target: Tensor, others: Tensor, top_k: Sequence[int] = TOP_K) -> Tensor:
    """(len(top_k),) share of queries i whose own target i is among the k nearest of {i} + ``others[i]``.

    A distractor exactly as far as the true target does not push it out (ties count for the true one).
    """
    q, t = query.double(), target.double()
    true = (q - t).norm(dim=-1)  # (N,)
    dist = (q[:, None, :] - t[others]).norm(dim=-1)  # (N, D)
    rank = (dist < true[:, None]).sum(1)  # 0 = the true target is the nearest
    return torch.stack([(rank < k).double().mean() for k in top_k])


def r_precision(
    text: Tensor,
    motion: Tensor,
    text_ids: Sequence[str],
    *,
    batch: int = PROTOCOL_BATCH,
    seed: int = 0,
    top_k: Sequence[int] = TOP_K,
) -> dict[str, float]:
    """Motion->text R-precision (``R_precision_top{k}``) and text->motion recall (``t2m_R{k}``), with
    ``retrieval_batch`` (1 + the distractors actually drawn) and ``chance_top1``."""
    if text.shape != motion.shape or text.dim() != 2:
        raise ValueError(
            f"text and motion embeddings must both be (N, E), got {text.shape} and {motion.shape}"
        )
    others = distractors(text_ids, batch, seed)
    m2t = retrieval_hits(motion, text, others, top_k)
    t2m = retrieval_hits(text, motion, others, top_k)
    out = {f"R_precision_top{k}": float(v) for k, v in zip(top_k, m2t)}
    out.update({f"t2m_R{k}": float(v) for k, v in zip(top_k, t2m)})
    out["retrieval_batch"] = float(others.shape[1] + 1)
    out["chance_top1"] = 1.0 / (others.shape[1] + 1)
    return out


def fid(a: Tensor, b: Tensor) -> float:
    """Frechet distance between Gaussians fitted to two (N, E) sets (sample covariances, float64)."""
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"FID needs two (N, E) sets of one width, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(len(a), len(b)) < 2:
        raise ValueError("FID needs at least two embeddings per set")
    x, y = a.double().numpy(), b.double().numpy()
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    # tr sqrt(s1 s2) = sum of sqrt(eigenvalues) of the symmetric s1^1/2 s2 s1^1/2 (stable; clipped at 0)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    cross = float(np.sqrt(np.clip(inner, 0.0, None)).sum())
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2.0 * cross)
    return max(value, 0.0)


def diversity(emb: Tensor, pairs: int = DIVERSITY_PAIRS, seed: int = 0) -> float:
    """Mean distance of ``pairs`` seeded random pairs (i, j), i != j, of the N embeddings."""
    n = len(emb)
    if n < 2:
        raise ValueError("diversity needs at least two embeddings")
    g = _generator(seed, "diversity", n, pairs)
    i = torch.randint(0, n, (pairs,), generator=g)
    j = (i + torch.randint(1, n, (pairs,), generator=g)) % n  # uniform over the others
    return float((emb[i].double() - emb[j].double()).norm(dim=-1).mean())


def multimodality(variants: Tensor) -> float:
    """(N, S, E) embeddings of S >= 2 generated variants per text -> mean distance over all variant pairs."""
    if variants.dim() != 3 or variants.shape[1] < 2:
        raise ValueError(f"multimodality needs (N, S >= 2, E) variants, got {tuple(variants.shape)}")
    v = variants.double()
    s = v.shape[1]
    i, j = torch.triu_indices(s, s, offset=1)
    return float((v[:, i] - v[:, j]).norm(dim=-1).mean())


def mm_dist(text: Tensor, motion: Tensor) -> float:
    """Mean distance between each motion and its own text."""
    return float((text.double() - motion.double()).norm(dim=-1).mean())
