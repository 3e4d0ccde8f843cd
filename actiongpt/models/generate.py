"""Generation API: action phrases (or precomputed embeddings) + durations -> motions.

``generate(model, phrases, lengths=..., embed_fn=...)`` returns features, rotations + translation and joint
positions. Single actions (TEMOS, MotionCLIP: one motion per phrase) or a sequence of actions (TEACH by
default: the phrases are consecutive actions of one motion). Deterministic given ``seed`` (or ``seeds``):
each output motion's noise comes from its own seed, so it does not depend on batch composition.

Diversity (the paper's section 6): ``num_samples`` variants per input, either by sampling the latent
(``diversity="latent"``, TEMOS/TEACH) or by generating from each individual description instead of the
aggregate (``diversity="descriptions"``: variant j uses description j, through ``embed_fn``).

``embed_fn(phrases, **options) -> TextBatch | (tokens, mask, pooled)`` turns phrases into embeddings
(phrase -> descriptions -> embedder -> aggregator); options passed only when requested: ``k`` (number of
descriptions to aggregate), ``aggregator`` (one of ``actiongpt.text.aggregate.AGGREGATORS``),
``description`` (index of the single description to use).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from actiongpt.models.base import MotionModel
from actiongpt.models.inputs import TextBatch, lengths_to_mask
from actiongpt.models.sampling import derive_seed, per_sample_noise
from actiongpt.models.sequence import AlignMode, YawMode, generate_sequence_features, stitch
from actiongpt.motion.features import rotations_to_features
from actiongpt.motion.fk import forward_kinematics
from actiongpt.motion.skeleton import Skeleton

EmbedFn = Callable[..., Any]
Diversity = Literal["latent", "descriptions"]


@dataclass
class MotionOutput:
    """N generated motions, zero-padded to the longest (T frames).

    ``features`` (N, T, nfeats) physical (unnormalised) features re-encoded from the final rotations and
    translation (``rotations_to_features(..., canonicalize="none")``: for sequences the decoded features no
    longer describe the stitched motion, so every output uses this one definition);
    ``rotmats`` (N, T, 22, 3, 3) root orientation + 21 local joints; ``trans`` (N, T, 3) AMASS translation
    (z up); ``joints`` (N, T, 22, 3) forward kinematics; ``lengths`` (N,); ``starts`` (N, A) first frame
    of each action for sequences.
    """

    features: Tensor
    rotmats: Tensor
    trans: Tensor
    joints: Tensor
    lengths: Tensor
    starts: Tensor | None = None

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def item(self, i: int) -> dict[str, Tensor]:
        """Motion i without padding."""
        n = int(self.lengths[i])
        out = {
            "features": self.features[i, :n],
            "rotmats": self.rotmats[i, :n],
            "trans": self.trans[i, :n],
            "joints": self.joints[i, :n],
        }
        if self.starts is not None:
            out["starts"] = self.starts[i]
        return out


def durations_to_lengths(durations: Sequence[float], fps: float = 30.0) -> list[int]:
    """Seconds -> frames (rounded), as the original demo (``duration × train_fps``)."""
    out = [round(float(d) * fps) for d in durations]
    if any(n < 1 for n in out):
        raise ValueError(f"durations {list(durations)} give motions shorter than one frame at {fps} fps")
    return out


def embed_phrases(
    embed_fn: EmbedFn,
    phrases: Sequence[str],
    *,
    k: int | None = None,
    aggregator: str | None = None,
    description: int | None = None,
) -> TextBatch:
    """Call ``embed_fn`` with only the requested options and check what it returns."""
    options = {
        name: v
        for name, v in (("k", k), ("aggregator", aggregator), ("description", description))
        if v is not None
    }
    text = TextBatch.from_output(embed_fn(list(phrases), **options))
    if len(text) != len(phrases):
        raise ValueError(f"embed_fn returned {len(text)} embeddings for {len(phrases)} phrases")
    return text


# -- low-level, batched (also what the distributed evaluator calls) --------------------------------------
@torch.no_grad()
def generate_features(
    model: MotionModel,
    text: TextBatch,
    lengths: Tensor,
    *,
    seeds: Sequence[int] | None = None,
    mean: bool = False,
    fact: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Single actions: normalised features (B, max(lengths), nfeats), zero after each length.

    ``seeds`` (one per sample) make the latent noise of sample i depend only on ``seeds[i]``; else the noise
    comes from ``generator`` (reproducible, but dependent on the batch), else from the global RNG.
    """
    device = model.feature_mean.device
    text = text.to(device)
    noise = None
    if getattr(model, "variational", False) and not mean:
        if seeds is not None:
            if len(seeds) != len(text):
                raise ValueError(f"{len(seeds)} seeds for {len(text)} texts")
            noise = per_sample_noise([derive_seed(s, "action", 0) for s in seeds], model.latent_dim, device)
        elif generator is not None:
            noise = torch.randn(len(text), model.latent_dim, generator=generator, device=generator.device)
            noise = noise.to(device)
    kwargs = {"mean": mean, "fact": fact, "noise": noise} if model.variational else {}
    z = model.text_to_latent(text, **kwargs)
    return model.decode(z, lengths.to(device))


@torch.no_grad()
def generate_sequences(
    model: MotionModel,
    texts: Sequence[TextBatch],
    lengths: Tensor,
    *,
    seeds: Sequence[int] | None = None,
    mean: bool = False,
    fact: float = 1.0,
    slerp_window: int | None = 8,
    align: AlignMode = "full",
    yaw: YawMode = "original",
    skeleton: Skeleton | None = None,
) -> MotionOutput:
    """B sequences of A actions (``texts[a]``: action a of each sequence; ``lengths`` (B, A) frames)."""
    bs, n_actions = lengths.shape
    noise = None
    if not mean and seeds is not None:
        if len(seeds) != bs:
            raise ValueError(f"{len(seeds)} seeds for {bs} sequences")
        flat = [derive_seed(s, "action", a) for s in seeds for a in range(n_actions)]
        noise = per_sample_noise(flat, model.latent_dim, model.feature_mean.device).view(bs, n_actions, -1)
    feats = generate_sequence_features(
        model, texts, lengths, slerp_window=slerp_window, mean=mean, fact=fact, noise=noise
    )
    rotmats, trans = model.features_to_motion(feats)
    totals = lengths.sum(dim=1)
    rotmats, trans = stitch(rotmats, trans, lengths.to(rotmats.device), slerp_window, align, yaw)
    starts = torch.cumsum(lengths, dim=1) - lengths
    return _output(model, rotmats, trans, totals, skeleton, starts=starts)


def motion_from_features(
    model: MotionModel, features: Tensor, lengths: Tensor, skeleton: Skeleton | None = None
) -> MotionOutput:
    """Normalised decoded features (B, T, nfeats) -> MotionOutput."""
    rotmats, trans = model.features_to_motion(features)
    return _output(model, rotmats, trans, lengths, skeleton)


def _output(
    model: MotionModel,
    rotmats: Tensor,
    trans: Tensor,
    lengths: Tensor,
    skeleton: Skeleton | None,
    starts: Tensor | None = None,
) -> MotionOutput:
    lengths = lengths.to(rotmats.device)
    mask = lengths_to_mask(lengths, rotmats.shape[1])
    eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
    # Padding: identity rotations and zero translation, so no garbage leaks past a motion's end.
    rotmats = torch.where(mask[..., None, None, None], rotmats, eye)
    trans = trans * mask[..., None]
    joints = forward_kinematics(rotmats, trans, skeleton or model.skeleton) * mask[..., None, None]
    # Features consistent with the final (possibly stitched) rotations, in the model's physical layout.
    features = rotations_to_features(rotmats, trans, canonicalize="none") * mask[..., None]
    return MotionOutput(
        features=features, rotmats=rotmats, trans=trans, joints=joints, lengths=lengths, starts=starts
    )


# -- the one call ----------------------------------------------------------------------------------------
def generate(
    model: MotionModel,
    phrases: Sequence[str] | None = None,
    *,
    text: TextBatch | None = None,
    lengths: Sequence[int] | None = None,
    durations: Sequence[float] | None = None,
    fps: float = 30.0,
    embed_fn: EmbedFn | None = None,
    k: int | None = None,
    aggregator: str | None = None,
    num_samples: int = 1,
    diversity: Diversity = "latent",
    mean: bool | None = None,
    fact: float = 1.0,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    sequence: bool | None = None,
    slerp_window: int | None = 8,
    align: AlignMode = "full",
    yaw: YawMode = "original",
    skeleton: Skeleton | None = None,
) -> MotionOutput:
    """Generate motions for action phrases (through ``embed_fn``) or precomputed ``text`` embeddings.

    - ``lengths`` (frames) or ``durations`` (seconds at ``fps``), one per phrase.
    - ``sequence``: the phrases are consecutive actions of one motion (default: True for TEACH); else each
      phrase gives its own motion. Sequences use ``slerp_window``, ``align`` and ``yaw`` (see sequence.py).
    - ``num_samples`` variants per phrase (per sequence), by ``diversity``: ``"latent"`` (different noise) or
      ``"descriptions"`` (variant j from description j alone; needs ``embed_fn``).
    - ``mean``: decode the distribution mean (default: True for ``"descriptions"``, False for ``"latent"``;
      MotionCLIP is always deterministic). ``fact`` scales the noise (the original's ``fact``).
    - ``seeds``: one per output motion; default derived from ``seed``. Same seeds, same motions.

    Output order: single actions phrase-major (phrase i, variant j at index ``i * num_samples + j``);
    sequences: variant j at index j.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if diversity not in ("latent", "descriptions"):
        raise ValueError(f"unknown diversity {diversity!r} (use 'latent' or 'descriptions')")
    variational = getattr(model, "variational", False)
    if mean is None:
        mean = diversity == "descriptions" or not variational
    if not variational and not mean:
        raise ValueError(f"{model.name} is deterministic: use mean=True and diversity='descriptions'")
    if not variational and diversity == "latent" and num_samples > 1:
        raise ValueError(f"{model.name} has no latent sampling; use diversity='descriptions' for variants")
    if sequence is None:  # a backbone trained on pairs generates them as one sequence (TEACH)
        from actiongpt.models.registry import BACKBONES

        sequence = model.name in BACKBONES and BACKBONES[model.name].pairs

    # Texts: one TextBatch per variant (the aggregate repeated, or description j for variant j).
    if (phrases is None) == (text is None):
        raise ValueError("give either phrases (with embed_fn) or precomputed text embeddings")
    if text is not None:
        if diversity == "descriptions":
            raise ValueError(
                "diversity='descriptions' needs phrases and embed_fn, not precomputed embeddings"
            )
        n_inputs = len(text)
        variant_texts = [text] * num_samples
    else:
        if embed_fn is None:
            raise ValueError("phrases need an embed_fn (phrases -> embeddings)")
        if not phrases:
            raise ValueError("no phrases given")
        n_inputs = len(phrases)
        if diversity == "descriptions":
            variant_texts = [
                embed_phrases(embed_fn, phrases, aggregator=aggregator, description=j)
                for j in range(num_samples)
            ]
        else:
            variant_texts = [embed_phrases(embed_fn, phrases, k=k, aggregator=aggregator)] * num_samples

    if (lengths is None) == (durations is None):
        raise ValueError("give either lengths (frames) or durations (seconds)")
    frames = list(lengths) if lengths is not None else durations_to_lengths(durations, fps)
    if len(frames) != n_inputs:
        raise ValueError(f"{len(frames)} lengths for {n_inputs} phrases")
    if any(int(n) < 1 for n in frames):
        raise ValueError(f"lengths must be >= 1 frame, got {frames}")

    n_out = num_samples if sequence else n_inputs * num_samples
    if seeds is None:
        seeds = [derive_seed(seed, "motion", i) for i in range(n_out)]
    elif len(seeds) != n_out:
        raise ValueError(f"{len(seeds)} seeds for {n_out} output motions")
    device = model.feature_mean.device
    model.require_feature_stats("generation")
    was_training = model.training
    model.eval()  # dropout off: generation must be deterministic
    try:
        return _run(
            model,
            variant_texts,
            frames,
            n_inputs,
            num_samples,
            sequence,
            seeds,
            mean,
            fact,
            slerp_window,
            align,
            yaw,
            skeleton,
            device,
        )
    finally:
        model.train(was_training)


def _run(
    model: MotionModel,
    variant_texts: list[TextBatch],
    frames: list[int],
    n_inputs: int,
    num_samples: int,
    sequence: bool,
    seeds: Sequence[int],
    mean: bool,
    fact: float,
    slerp_window: int | None,
    align: AlignMode,
    yaw: YawMode,
    skeleton: Skeleton | None,
    device: torch.device,
) -> MotionOutput:
    if sequence:
        # texts[a]: action a of every variant.
        texts = [_stack([vt.select([a]) for vt in variant_texts]) for a in range(n_inputs)]
        seq_lengths = torch.tensor([frames] * num_samples, dtype=torch.long)
        return generate_sequences(
            model,
            texts,
            seq_lengths,
            seeds=seeds,
            mean=mean,
            fact=fact,
            slerp_window=slerp_window,
            align=align,
            yaw=yaw,
            skeleton=skeleton,
        )
    order = [(i, j) for i in range(n_inputs) for j in range(num_samples)]
    batch_text = _stack([variant_texts[j].select([i]) for i, j in order])
    batch_lengths = torch.tensor([int(frames[i]) for i, _ in order], dtype=torch.long, device=device)
    with torch.no_grad():
        feats = generate_features(model, batch_text, batch_lengths, seeds=seeds, mean=mean, fact=fact)
        return motion_from_features(model, feats, batch_lengths, skeleton)


def _stack(parts: Sequence[TextBatch]) -> TextBatch:
    """Concatenate TextBatches along the batch, padding token sequences to the longest."""
    tokens = mask = pooled = None
    if parts[0].tokens is not None:
        width = max(p.tokens.shape[1] for p in parts)
        tokens = torch.cat(
            [torch.nn.functional.pad(p.tokens, (0, 0, 0, width - p.tokens.shape[1])) for p in parts]
        )
        mask = torch.cat([torch.nn.functional.pad(p.mask, (0, width - p.mask.shape[1])) for p in parts])
    if parts[0].pooled is not None:
        pooled = torch.cat([p.pooled for p in parts])
    return TextBatch(tokens, mask, pooled)
