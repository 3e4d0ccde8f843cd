"""Per-rank evaluator embeddings and physics sums, gathered to rank 0 and scored there in one global order.

Each rank holds the items it evaluated (sizes differ by rank); ``gather_parts`` sends every rank's part to
rank 0 (``gather_object``: any sizes, any backend), which sorts the items by key (and variant) before any
metric that does not decompose into per-rank sums (R-precision batches, FID, diversity, multimodality). So
the numbers depend on the split and the seed only, never on the number of ranks or on which rank held what.
Computing them on a rank's own items instead is the mistake a multi-GPU text-to-motion evaluator once made
(R-precision stayed flat however the model trained); ``tests/test_eval_retrieval_dist.py`` guards it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from actiongpt import metrics_retrieval as R
from actiongpt.metrics_physics import PHYSICS_KEYS, PhysicsSums
from cluster.evaluator import EvalError

RETRIEVAL_KEYS = (
    "R_precision_top1",
    "R_precision_top2",
    "R_precision_top3",
    "FID",
    "diversity",
    "multimodality",
    "MM_dist",
)
EXTRA_KEYS = RETRIEVAL_KEYS + PHYSICS_KEYS


@dataclass
class EmbeddingPart:
    """One rank's items: ``items`` (key, variant) with an embedding each (-1 = the reference motion, text
    embeddings ride with it), and ``sequences`` (key, variant) with physics sums/counts each."""

    items: list[tuple[str, int]] = field(default_factory=list)
    text_ids: list[str] = field(default_factory=list)  # per reference item: the text's identity (label)
    motion: list[Tensor] = field(default_factory=list)  # (n, E) blocks
    text: list[Tensor] = field(default_factory=list)  # (n_ref, E) blocks, reference items only
    sequences: list[tuple[str, int]] = field(default_factory=list)
    physics: list[PhysicsSums] = field(default_factory=list)

    def add_reference(self, keys: list[str], text_ids: list[str], text: Tensor, motion: Tensor) -> None:
        """Reference items: their motion embeddings and their texts' (row i of both is item i)."""
        self.add_generated(keys, -1, motion)
        self.text_ids.extend(text_ids)
        self.text.append(text.detach().float().cpu())

    def add_generated(self, keys: list[str], variant: int, motion: Tensor) -> None:
        self.items.extend((k, variant) for k in keys)
        self.motion.append(motion.detach().float().cpu())

    def add_physics(self, keys: list[str], variant: int, sums: PhysicsSums) -> None:
        self.sequences.extend((k, variant) for k in keys)
        self.physics.append(sums)

    def packed(self) -> dict[str, Any]:
        def cat(blocks: list[Tensor], width: int = 0) -> Tensor:
            return torch.cat(blocks) if blocks else torch.zeros(0, width)

        return {
            "items": self.items,
            "text_ids": self.text_ids,
            "motion": cat(self.motion),
            "text": cat(self.text),
            "sequences": self.sequences,
            "phys_sums": cat([p.sums for p in self.physics], len(PHYSICS_KEYS)).double(),
            "phys_counts": cat([p.counts for p in self.physics], len(PHYSICS_KEYS)).double(),
        }


def gather_parts(part: EmbeddingPart, group: Any = None) -> list[dict[str, Any]] | None:
    """Every rank's packed part on rank 0 (a list in rank order), None on the other ranks. Collective."""
    mine = part.packed()
    if not (dist.is_available() and dist.is_initialized()):
        return [mine]
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    out: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(mine, out, dst=0, group=group)
    return out


def gather_physics(parts: list[dict[str, Any]], num_variants: int) -> dict[int, PhysicsSums]:
    """Variant (-1 = reference) -> per-sequence physics sums, sequences in key order (a fixed sum order)."""
    seqs = [s for p in parts for s in p["sequences"]]
    if len(set(seqs)) != len(seqs):
        raise EvalError("physics: some sequences were scored more than once")
    sums = torch.cat([p["phys_sums"] for p in parts])
    counts = torch.cat([p["phys_counts"] for p in parts])
    physics: dict[int, PhysicsSums] = {}
    for v in range(-1, num_variants):
        rows = sorted((i for i in range(len(seqs)) if seqs[i][1] == v), key=lambda i: seqs[i][0])
        physics[v] = PhysicsSums(sums[rows], counts[rows])
    if num_variants and len(physics[-1].sums) != len(physics[0].sums):
        raise EvalError(
            f"physics: {len(physics[-1].sums)} reference sequences but {len(physics[0].sums)} generated"
        )
    return physics


def physics_rows(parts: list[dict[str, Any]], num_variants: int) -> dict[str, Any]:
    """The physics metrics alone (no evaluator): reference row, generated row (mean over variants)."""
    physics = gather_physics(parts, num_variants)
    per_variant = [physics[v].pooled() for v in range(num_variants)]
    return {
        "reference": physics[-1].pooled(),
        "generated": _mean(per_variant),
        "per_variant": per_variant,
        "num_items": len(physics[-1].sums),
    }


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]} if rows else {}


@dataclass
class Gathered:
    """All ranks' items in the global order: sorted by (key, variant)."""

    ref_keys: list[str]
    text_ids: list[str]
    text: Tensor  # (N, E)
    reference: Tensor  # (N, E)
    generated: dict[int, Tensor]  # variant -> (N, E), rows in ref_keys order
    physics: dict[int, PhysicsSums]  # variant (-1 = reference) -> (N_seq, 4) in key order


def combine(parts: list[dict[str, Any]], num_variants: int) -> Gathered:
    """Concatenate, sort by (key, variant) and check that every item is there exactly once."""
    items = [it for p in parts for it in p["items"]]
    motion = torch.cat([p["motion"] for p in parts if len(p["motion"])]) if items else torch.zeros(0, 0)
    index = {it: i for i, it in enumerate(items)}
    if len(index) != len(items):
        dup = sorted({it for it in items if items.count(it) > 1})[:5]
        raise EvalError(f"evaluator embeddings: items embedded more than once, e.g. {dup}")
    ref_pos = [i for i, (_, v) in enumerate(items) if v < 0]
    ref_keys_unsorted = [items[i][0] for i in ref_pos]
    text_all = torch.cat([p["text"] for p in parts if len(p["text"])]) if ref_pos else torch.zeros(0, 0)
    ids_all = [t for p in parts for t in p["text_ids"]]
    order = sorted(range(len(ref_pos)), key=lambda i: ref_keys_unsorted[i])
    ref_keys = [ref_keys_unsorted[i] for i in order]
    if not ref_keys:
        raise EvalError("evaluator embeddings: no reference motions were embedded (empty split?)")
    generated: dict[int, Tensor] = {}
    for v in range(num_variants):
        missing = [k for k in ref_keys if (k, v) not in index]
        extra = {k for k, vv in items if vv == v} - set(ref_keys)
        if missing or extra:
            raise EvalError(
                f"evaluator embeddings of variant {v}: {len(missing)} reference item(s) without a generated "
                f"motion (e.g. {missing[:3]}), {len(extra)} generated without a reference (e.g. "
                f"{sorted(extra)[:3]})"
            )
        generated[v] = motion[[index[(k, v)] for k in ref_keys]]
    physics = gather_physics(parts, num_variants)
    return Gathered(
        ref_keys=ref_keys,
        text_ids=[ids_all[i] for i in order],
        text=text_all[order],
        reference=motion[[ref_pos[i] for i in order]],
        generated=generated,
        physics=physics,
    )


def score(
    g: Gathered, *, batch: int, seed: int, diversity_pairs: int, physics: bool = True
) -> dict[str, Any]:
    """The reference row and the generated row (variants as replications: metric per variant, then the mean;
    multimodality across the variants of each text). Reference FID is 0 by definition and not reported."""

    def row(motion: Tensor) -> dict[str, float]:
        rp = R.r_precision(g.text, motion, g.text_ids, batch=batch, seed=seed)
        return {
            **{f"R_precision_top{k}": rp[f"R_precision_top{k}"] for k in R.TOP_K},
            **{f"t2m_R{k}": rp[f"t2m_R{k}"] for k in R.TOP_K},
            "diversity": R.diversity(motion, diversity_pairs, seed),
            "MM_dist": R.mm_dist(g.text, motion),
            "retrieval_batch": rp["retrieval_batch"],
        }

    def phys(v: int) -> dict[str, float]:
        return g.physics[v].pooled() if physics else {}

    reference = {**row(g.reference), **phys(-1)}
    per_variant = [{**row(emb), "FID": R.fid(emb, g.reference), **phys(v)} for v, emb in g.generated.items()]
    generated = _mean(per_variant)
    if len(g.generated) >= 2:
        generated["multimodality"] = R.multimodality(torch.stack(list(g.generated.values()), 1))
    elif per_variant:
        generated["multimodality"] = float("nan")  # one sample per text: undefined
    return {
        "reference": reference,
        "generated": generated,
        "per_variant": per_variant,
        "num_items": len(g.ref_keys),
        "chance_top1": 1.0 / reference["retrieval_batch"],
    }
