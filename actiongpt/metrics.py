"""APE / AVE exactly as the TEACH / Action-GPT evaluation computes them, as additive sums.

Input: generated and reference joint sequences in the **MMM-21 layout** (order in
``actiongpt.metrics_canon.MMM21_JOINTS``) and the original's axis convention (``mmmns``: metres, y up,
``(x, y, z)_mmm = (y, z, -x)_amass``), either as lists of ``(T, 21, 3)`` arrays/tensors or as padded
``(B, T, 21, 3)`` tensors with ``lengths``.

Protocol (``teach/model/metrics/compute.py`` + ``eval.py``), per pair (generated, reference):
- each full sequence is canonicalised on its own (``metrics_canon.canonicalize``: floor removal, yaw and
  trajectory fixed at frame 0), then both are cut to ``L = min(len(generated), len(reference))`` -- the
  floor therefore uses every frame passed, not only the first ``L``;
- APE: summed L2 distance over frames; final value = sum / total frames (frame-weighted);
  root = (traj_x, root_y, traj_z); traj = ground-plane (x, z); pose = the 20 local joints (facing-
  normalised, root excluded); joints = the 21 global joints;
- AVE: per sequence, per-coordinate variance over the L frames with ``T - 1`` in the denominator,
  ``|| var_gen - var_ref ||_2``; final value = sum / sequences (sequence-weighted);
- ``*_mean_pose`` averages the 20 local joints, ``*_mean_joints`` the 21 global ones.

All state is plain sums and counts (``MetricSums``), so results from several ranks or batches combine
exactly: one ``all_reduce(SUM)`` of ``MetricSums.as_tensor()`` and one ``compute()``. Averaging per-rank
metrics instead is wrong whenever ranks hold different numbers of frames or sequences.

Differences from the original, all deliberate:
- **Per-joint AVE fixed.** The original ``regroup_metrics`` loop over ``AVE_joints`` writes the variable
  ``ave`` left over from the ``AVE_pose`` loop, so every ``AVE_joints_<name>`` equals ``AVE_pose_RF`` (the
  last local-pose joint). Here every per-joint entry is its own value. Means were never affected.
- **Sequences with L = 1**: the original divides 0 by ``T - 1 = 0`` and the NaN poisons every AVE. Here
  they count for APE but are left out of AVE (numerators and the AVE denominator ``count_seq_ave``);
  ``compute()`` reports ``num_sequences`` and ``num_sequences_ave`` so the exclusion is visible. For
  sequences with L >= 2 the results are identical.
- float64 throughout (the original ran in float32); the floor only sees valid frames of padded batches
  (the original's per-sample ``eval.py`` never had padding).
- ``floor="min"`` / ``heading="hips_shoulders"`` are corrected alternatives to the original's soft-min
  floor written for millimetres and its knees-and-elbows heading (see ``metrics_canon``); the defaults
  reproduce the original.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from actiongpt.metrics_canon import (
    MMM21_JOINTS,
    MMM21_POSE_JOINTS,
    NUM_JOINTS,
    FloorMode,
    HeadingMode,
    canonical_parts,
    check_modes,
    valid_mask,
)

__all__ = [
    "MAIN_KEYS",
    "MetricSums",
    "SequenceTerms",
    "compute_ape_ave",
    "sequence_terms",
]

# The eight headline numbers, in the original's order.
MAIN_KEYS: tuple[str, ...] = (
    "APE_root", "APE_traj", "APE_mean_pose", "APE_mean_joints",
    "AVE_root", "AVE_traj", "AVE_mean_pose", "AVE_mean_joints",
)  # fmt: skip
NUM_POSE = NUM_JOINTS - 1
_DTYPE = torch.float64

JointsInput = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]


# ----------------------------------------------------------------------------------------------- input


def _as_tensor(x: Any, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise TypeError(f"{what}: expected a torch.Tensor or numpy array, got {type(x).__name__}")


def _check_layout(t: torch.Tensor, what: str) -> None:
    if t.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(
            f"{what}: expected joints in the MMM-21 layout (..., 21, 3), got shape {tuple(t.shape)}; "
            "convert SMPL-H joints with actiongpt.motion.mmm.to_mmm21 first"
        )
    if not t.is_floating_point():
        raise TypeError(f"{what}: expected floating-point joints, got {t.dtype}")


def as_padded(
    x: JointsInput, lengths: Any | None, what: str, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise user input to a padded float64 ``(B, T, 21, 3)`` tensor and int64 lengths ``(B,)``.

    Accepts a list/tuple of ``(T_i, 21, 3)`` arrays (lengths taken from them), a padded ``(B, T, 21, 3)``
    tensor/array with optional ``lengths`` (default: all ``T``), or one ``(T, 21, 3)`` sequence.
    """
    if isinstance(x, list | tuple):
        if lengths is not None:
            raise ValueError(
                f"{what}: lengths are taken from the list items; pass lengths only with a padded tensor"
            )
        seqs = [_as_tensor(s, f"{what}[{i}]") for i, s in enumerate(x)]
        for i, s in enumerate(seqs):
            _check_layout(s, f"{what}[{i}]")
            if s.ndim != 3:
                raise ValueError(f"{what}[{i}]: expected one sequence (T, 21, 3), got shape {tuple(s.shape)}")
        dev = device if device is not None else (seqs[0].device if seqs else torch.device("cpu"))
        if not seqs:
            empty = torch.zeros(0, 1, NUM_JOINTS, 3, dtype=_DTYPE, device=dev)
            return empty, torch.zeros(0, dtype=torch.long, device=dev)
        lens = torch.tensor([s.shape[0] for s in seqs], dtype=torch.long, device=dev)
        padded = torch.nn.utils.rnn.pad_sequence([s.to(dev, _DTYPE) for s in seqs], batch_first=True)
    else:
        t = _as_tensor(x, what)
        _check_layout(t, what)
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4:
            raise ValueError(f"{what}: expected (B, T, 21, 3) or (T, 21, 3), got shape {tuple(t.shape)}")
        dev = device if device is not None else t.device
        padded = t.to(dev, _DTYPE)
        if lengths is None:
            lens = torch.full((t.shape[0],), t.shape[1], dtype=torch.long, device=dev)
        else:
            lens = torch.as_tensor(lengths).to(dev, torch.long).reshape(-1)
            if lens.shape[0] != t.shape[0]:
                raise ValueError(f"{what}: {lens.shape[0]} lengths for a batch of {t.shape[0]} sequences")
            too_long = lens > t.shape[1]
            if bool(too_long.any()):
                i = int(too_long.nonzero()[0])
                raise ValueError(f"{what}: sequence {i} has length {int(lens[i])} > padded size {t.shape[1]}")
    lens = lens.to(padded.device)
    empty = lens < 1
    if bool(empty.any()):
        raise ValueError(f"{what}: sequence {int(empty.nonzero()[0])} has no frames")
    # a NaN/inf coordinate makes its frame's sum non-finite (cheaper than isfinite on every value)
    bad = ~padded.sum((-2, -1)).isfinite() & valid_mask(lens, padded.shape[1])  # (B, T)
    if bool(bad.any()):
        i = int(bad.any(1).nonzero()[0])
        raise ValueError(f"{what}: sequence {i} contains NaN or infinite joint coordinates")
    return padded, lens


# --------------------------------------------------------------------------------- per-sequence terms


@dataclass
class SequenceTerms:
    """Per-sequence raw sums for one batch: APE_* summed over frames, AVE_* per sequence (0 when L < 2)."""

    lengths: torch.Tensor  # (B,) int64, L = min(len(gen), len(ref))
    APE_root: torch.Tensor  # (B,)
    APE_traj: torch.Tensor  # (B,)
    APE_pose: torch.Tensor  # (B, 20)
    APE_joints: torch.Tensor  # (B, 21)
    AVE_root: torch.Tensor  # (B,)
    AVE_traj: torch.Tensor  # (B,)
    AVE_pose: torch.Tensor  # (B, 20)
    AVE_joints: torch.Tensor  # (B, 21)

    @property
    def has_ave(self) -> torch.Tensor:
        """(B,) bool: the sequence has L >= 2 frames, so its variances (T - 1 denominator) exist."""
        return self.lengths >= 2

    def per_sequence(self) -> dict[str, torch.Tensor]:
        """Per-sequence frame-mean APEs (B,), e.g. for Action-GPT's ``samplewise_error_values.json``."""
        n = self.lengths.to(_DTYPE)
        return {
            "APE_root": self.APE_root / n,
            "APE_traj": self.APE_traj / n,
            "APE_mean_pose": self.APE_pose.mean(-1) / n,
            "APE_mean_joints": self.APE_joints.mean(-1) / n,
        }


def _wsum(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Sum over frames of (B, T, J) weighted by the (B, T) valid-frame mask -> (B, J), as one bmm."""
    return torch.bmm(w[:, None, :], v).squeeze(1)


def _variance(w: torch.Tensor, v: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Variance over valid frames with the T - 1 denominator (B, T, J) -> (B, J); 0 where n < 2."""
    dev = v - (_wsum(w, v) / n[:, None])[:, None, :]
    return _wsum(w, dev * dev) / (n - 1).clamp_min(1)[:, None]


def _norm(*parts: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(sum(p * p for p in parts))  # type: ignore[arg-type]


def sequence_terms(
    generated: JointsInput,
    reference: JointsInput,
    lengths: Any | None = None,
    *,
    reference_lengths: Any | None = None,
    floor: FloorMode = "original",
    heading: HeadingMode = "original",
) -> SequenceTerms:
    """Canonicalise both sides and return per-sequence APE/AVE sums (see the module docstring).

    ``lengths`` are the valid frames of each *generated* sequence when ``generated`` is a padded tensor;
    ``reference_lengths`` those of the reference (default: the same ``lengths`` if ``reference`` is
    padded the same way, else all of its frames). With lists, lengths come from the items.
    """
    check_modes(floor, heading)
    if reference_lengths is None and lengths is not None and not isinstance(reference, list | tuple):
        reference_lengths = lengths
    gen, gen_len = as_padded(generated, lengths, "generated")
    ref, ref_len = as_padded(reference, reference_lengths, "reference", device=gen.device)
    if gen.shape[0] != ref.shape[0]:
        raise ValueError(f"{gen.shape[0]} generated sequences but {ref.shape[0]} reference sequences")
    cg = canonical_parts(gen, gen_len, floor=floor, heading=heading)
    cr = canonical_parts(ref, ref_len, floor=floor, heading=heading)

    n_int = torch.minimum(gen_len, ref_len)  # length alignment AFTER the transform
    t_c = int(n_int.max()) if n_int.numel() else 1
    w = valid_mask(n_int, t_c).to(_DTYPE)  # (B, Tc)
    n = n_int.to(_DTYPE)
    g = [c[:, :t_c] for c in cg]  # x, y, z (B, Tc, 21), local_x, local_z (B, Tc, 20)
    r = [c[:, :t_c] for c in cr]
    dx, dy, dz, dlx, dlz = (a - b for a, b in zip(g, r))

    # root = (traj_x, root_y, traj_z) is joint 0 of the canonical joints; trajectory = its (x, z)
    ape_joints = _wsum(w, _norm(dx, dy, dz))
    ape_traj = _wsum(w, _norm(dx[..., :1], dz[..., :1]))[:, 0]
    ape_pose = _wsum(w, _norm(dlx, dy[..., 1:], dlz))

    vg = [_variance(w, c, n) for c in g]
    vr = [_variance(w, c, n) for c in r]
    vdx, vdy, vdz, vdlx, vdlz = (a - b for a, b in zip(vg, vr))
    has_ave = (n_int >= 2).to(_DTYPE)
    ave_joints = _norm(vdx, vdy, vdz) * has_ave[:, None]
    ave_traj = _norm(vdx[:, 0], vdz[:, 0]) * has_ave
    ave_pose = _norm(vdlx, vdy[:, 1:], vdlz) * has_ave[:, None]
    return SequenceTerms(
        lengths=n_int,
        APE_root=ape_joints[:, 0].clone(),
        APE_traj=ape_traj,
        APE_pose=ape_pose,
        APE_joints=ape_joints,
        AVE_root=ave_joints[:, 0].clone(),
        AVE_traj=ave_traj,
        AVE_pose=ave_pose,
        AVE_joints=ave_joints,
    )


# ---------------------------------------------------------------------------------------------- sums


def _zero() -> torch.Tensor:
    return torch.zeros((), dtype=_DTYPE)


def _zero_pose() -> torch.Tensor:
    return torch.zeros(NUM_POSE, dtype=_DTYPE)


def _zero_joints() -> torch.Tensor:
    return torch.zeros(NUM_JOINTS, dtype=_DTYPE)


_SUM_FIELDS = (
    "APE_root",
    "APE_traj",
    "APE_pose",
    "APE_joints",
    "AVE_root",
    "AVE_traj",
    "AVE_pose",
    "AVE_joints",
)


@dataclass
class MetricSums:
    """Additive APE/AVE state (float64 tensors). Combine with ``+``/``merge`` or one all-reduce(SUM).

    ``count`` = total frames (APE denominator), ``count_seq`` = sequences, ``count_seq_ave`` = sequences
    with at least 2 frames (AVE denominator; equals ``count_seq`` unless some L = 1).
    ``floor``/``heading`` record the canonicalisation options; sums made with different options refuse to
    combine.
    """

    APE_root: torch.Tensor = field(default_factory=_zero)
    APE_traj: torch.Tensor = field(default_factory=_zero)
    APE_pose: torch.Tensor = field(default_factory=_zero_pose)
    APE_joints: torch.Tensor = field(default_factory=_zero_joints)
    AVE_root: torch.Tensor = field(default_factory=_zero)
    AVE_traj: torch.Tensor = field(default_factory=_zero)
    AVE_pose: torch.Tensor = field(default_factory=_zero_pose)
    AVE_joints: torch.Tensor = field(default_factory=_zero_joints)
    count: torch.Tensor = field(default_factory=_zero)
    count_seq: torch.Tensor = field(default_factory=_zero)
    count_seq_ave: torch.Tensor = field(default_factory=_zero)
    floor: str = "original"
    heading: str = "original"

    def __post_init__(self) -> None:
        check_modes(self.floor, self.heading)

    # -- layout of the flat vector, in field order
    @classmethod
    def tensor_fields(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name not in ("floor", "heading")]

    @property
    def device(self) -> torch.device:
        return self.count.device

    def to(self, device: torch.device | str) -> MetricSums:
        return MetricSums(
            **{k: getattr(self, k).to(device) for k in self.tensor_fields()},
            floor=self.floor,
            heading=self.heading,
        )

    def as_tensor(self) -> torch.Tensor:
        """One flat float64 vector (89 values) holding every sum and count, for a single all_reduce(SUM)."""
        return torch.cat([getattr(self, k).reshape(-1) for k in self.tensor_fields()])

    @classmethod
    def from_tensor(
        cls, vec: torch.Tensor, *, floor: str = "original", heading: str = "original"
    ) -> MetricSums:
        """Inverse of ``as_tensor`` (e.g. after the all-reduce)."""
        proto = cls()
        sizes = [getattr(proto, k).numel() for k in cls.tensor_fields()]
        if vec.ndim != 1 or vec.numel() != sum(sizes):
            raise ValueError(f"expected a flat vector of {sum(sizes)} values, got shape {tuple(vec.shape)}")
        parts = torch.split(vec.to(_DTYPE), sizes)
        kw = {k: p.reshape(getattr(proto, k).shape).clone() for k, p in zip(cls.tensor_fields(), parts)}
        return cls(**kw, floor=floor, heading=heading)

    def _check_compatible(self, other: MetricSums) -> None:
        if not isinstance(other, MetricSums):
            raise TypeError(f"cannot combine MetricSums with {type(other).__name__}")
        if (self.floor, self.heading) != (other.floor, other.heading):
            raise ValueError(
                f"cannot combine metric sums made with floor={self.floor!r}, heading={self.heading!r} and "
                f"floor={other.floor!r}, heading={other.heading!r}"
            )

    def merge(self, other: MetricSums) -> MetricSums:
        """Add ``other`` into ``self`` in place; returns ``self``."""
        self._check_compatible(other)
        for k in self.tensor_fields():
            setattr(self, k, getattr(self, k) + getattr(other, k).to(self.device))
        return self

    def __add__(self, other: MetricSums) -> MetricSums:
        return self.to(self.device).merge(other)

    def __radd__(self, other: Any) -> MetricSums:
        if isinstance(other, int) and other == 0:  # so that sum([...]) works
            return self.to(self.device)
        return NotImplemented

    def add_terms(self, terms: SequenceTerms) -> MetricSums:
        """Accumulate a batch of per-sequence terms; returns ``self``."""
        dev = self.device
        ave = terms.has_ave.to(dev)
        self.count = self.count + terms.lengths.to(dev, _DTYPE).sum()
        self.count_seq = self.count_seq + float(terms.lengths.numel())
        self.count_seq_ave = self.count_seq_ave + ave.to(_DTYPE).sum()
        for k in _SUM_FIELDS:
            setattr(self, k, getattr(self, k) + getattr(terms, k).to(dev, _DTYPE).sum(0))
        return self

    def update(
        self,
        generated: JointsInput,
        reference: JointsInput,
        lengths: Any | None = None,
        *,
        reference_lengths: Any | None = None,
    ) -> SequenceTerms:
        """Canonicalise and accumulate one batch (arguments as ``sequence_terms``).

        Returns the batch's per-sequence terms (``.per_sequence()`` gives per-sample APEs) so an
        evaluator need not recompute them.
        """
        terms = sequence_terms(
            generated,
            reference,
            lengths,
            reference_lengths=reference_lengths,
            floor=self.floor,
            heading=self.heading,
        )
        self.add_terms(terms)
        return terms

    def compute(self) -> dict[str, float]:
        """Final metrics with the original key names, plus true per-joint values and the counts.

        Keys: ``APE_root, APE_traj, APE_mean_pose, APE_mean_joints, AVE_root, AVE_traj, AVE_mean_pose,
        AVE_mean_joints``; ``APE_pose_<name>`` / ``AVE_pose_<name>`` for the 20 local joints,
        ``APE_joints_<name>`` / ``AVE_joints_<name>`` for the 21 global joints (names from MMM21_JOINTS);
        ``num_frames``, ``num_sequences``, ``num_sequences_ave``. Values in metres.
        """
        count, count_seq, count_ave = float(self.count), float(self.count_seq), float(self.count_seq_ave)
        if count_seq == 0 or count == 0:
            raise ValueError("no sequences were accumulated; APE/AVE are undefined")
        if count_ave == 0:
            raise ValueError(
                f"all {int(count_seq)} sequences have a single common frame; "
                "AVE (variance over T - 1) is undefined"
            )
        out: dict[str, float] = {
            "APE_root": float(self.APE_root) / count,
            "APE_traj": float(self.APE_traj) / count,
            "APE_mean_pose": float(self.APE_pose.mean()) / count,
            "APE_mean_joints": float(self.APE_joints.mean()) / count,
            "AVE_root": float(self.AVE_root) / count_ave,
            "AVE_traj": float(self.AVE_traj) / count_ave,
            "AVE_mean_pose": float(self.AVE_pose.mean()) / count_ave,
            "AVE_mean_joints": float(self.AVE_joints.mean()) / count_ave,
        }
        ape_pose, ape_joints = (self.APE_pose / count).tolist(), (self.APE_joints / count).tolist()
        ave_pose, ave_joints = (self.AVE_pose / count_ave).tolist(), (self.AVE_joints / count_ave).tolist()
        out.update({f"APE_pose_{n}": v for n, v in zip(MMM21_POSE_JOINTS, ape_pose)})
        out.update({f"APE_joints_{n}": v for n, v in zip(MMM21_JOINTS, ape_joints)})
        out.update({f"AVE_pose_{n}": v for n, v in zip(MMM21_POSE_JOINTS, ave_pose)})
        out.update({f"AVE_joints_{n}": v for n, v in zip(MMM21_JOINTS, ave_joints)})
        out.update({"num_frames": count, "num_sequences": count_seq, "num_sequences_ave": count_ave})
        return out


def compute_ape_ave(
    generated: JointsInput,
    reference: JointsInput,
    lengths: Any | None = None,
    *,
    reference_lengths: Any | None = None,
    floor: FloorMode = "original",
    heading: HeadingMode = "original",
) -> dict[str, float]:
    """Score generated motions against references with TEACH's APE/AVE; returns ``MetricSums.compute()``.

    Args:
        generated, reference: MMM-21 joints (order ``MMM21_JOINTS``), metres, y up, ground plane (x, z)
            -- TEACH's ``mmmns`` joints. Either lists of ``(T_i, 21, 3)`` arrays/tensors (pairs matched by
            position; generated and reference lengths may differ), padded ``(B, T, 21, 3)`` tensors, or a
            single ``(T, 21, 3)`` sequence each.
        lengths: valid frames per generated sequence for a padded tensor (default: all frames); also used
            for a padded ``reference`` unless ``reference_lengths`` is given.
        floor: ``"original"`` (TEACH's soft minimum, needed to compare with published numbers) or
            ``"min"`` (plain minimum foot height; the formula was designed for millimetres).
        heading: ``"original"`` (knees + elbows, what the original code computes) or
            ``"hips_shoulders"`` (what it intended).

    Each pair is canonicalised on its full sequences, then cut to the shorter of the two.

    Example::

        metrics = compute_ape_ave([gen0, gen1], [ref0, ref1])
        metrics["APE_root"], metrics["AVE_mean_joints"], metrics["APE_joints_LW"]
    """
    sums = MetricSums(floor=floor, heading=heading)
    sums.update(generated, reference, lengths, reference_lengths=reference_lengths)
    return sums.compute()
