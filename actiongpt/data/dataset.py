"""BABEL + AMASS joined: one sample per training example (segment, sequence or TEACH pair).

Building the index reads every referenced AMASS file once: the real motion length is needed to clip
the annotation frames exactly as TEACH does, and bad motions (NaN, wrong width, ...) are found up
front, so that ``len()`` is exact and a lenient run never fails half-way through an epoch. Loaded
motions stay in a small LRU cache; iterating in order (records of one sequence are adjacent) reads
each file at most once more.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .amass import MIN_SECONDS, TARGET_FPS, AmassMotion, load_amass_npz
from .babel import BabelSequence, amass_candidates, load_babel_split, split_path
from .errors import DataError, ReadReport, Skipped
from .extract import MODES, ExtractConfig, Pair, Segment, records_of

logger = logging.getLogger(__name__)


@dataclass
class BabelDataConfig:
    """Where the real data lives and how to read it. Defaults: TEACH's settings on the embedded dataset."""

    babel_dir: str = "data/embedded/babel"
    amass_dir: str = "data/embedded/amass"
    split: str = "train"
    mode: str = "pairs"  # seg | seq | seg+seq | pairs
    strict: bool = False
    target_fps: float = TARGET_FPS
    min_motion_seconds: float = MIN_SECONDS
    cache_size: int = 64  # motions kept in memory; 0 = none
    allow_outside_amass: bool = (
        False  # true: a feat_p may leave amass_dir (absolute, ../); only trusted BABEL
    )
    extract: ExtractConfig = field(default_factory=ExtractConfig)


@dataclass(frozen=True)
class MotionSample:
    """A record with its motion slice: ``poses`` (T, 22, 3) axis-angle, ``trans`` (T, 3), at ``fps``.

    For a `Pair` the slice covers action 1, the transition and action 2 (``record.length_*``).
    """

    record: Segment | Pair
    poses: np.ndarray
    trans: np.ndarray
    fps: float
    source: str  # AMASS file
    gender: str
    betas: np.ndarray
    split: str

    @property
    def key(self) -> str:
        return self.record.key

    @property
    def is_pair(self) -> bool:
        return isinstance(self.record, Pair)

    def part(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """For pairs: ``"0"`` (action 1), ``"transition"``, ``"1"`` (action 2) or ``"1_with_transition"``."""
        if not isinstance(self.record, Pair):
            raise TypeError(f"{self.key} is a single action, not a pair")
        r = self.record
        bounds = {
            "0": r.range_0,
            "transition": r.range_transition,
            "1": r.range_1,
            "1_with_transition": (r.range_transition[0], r.end),
        }
        if name not in bounds:
            raise KeyError(f"unknown pair part {name!r}; expected one of {sorted(bounds)}")
        s, e = (b - r.start for b in bounds[name])
        return self.poses[s:e], self.trans[s:e]


class MotionDataset:
    """Map-style dataset over the records of one BABEL split joined with their AMASS motions.

    ``mode``: ``seg``, ``seq``, ``seg+seq`` or ``pairs`` (see `actiongpt.data.extract`).
    ``strict=False`` skips and counts bad input in ``self.report``; ``strict=True`` raises the first
    `DataError`. Rejections by rule (duration, excluded actions, ...) are counted in both modes.
    """

    def __init__(
        self,
        babel_dir: str | Path,
        amass_dir: str | Path,
        split: str = "train",
        mode: str = "pairs",
        label_field: str = "proc_label",
        strict: bool = False,
        *,
        extract: ExtractConfig | None = None,
        target_fps: float = TARGET_FPS,
        min_motion_seconds: float = MIN_SECONDS,
        cache_size: int = 64,
        progress: bool = True,
        allow_outside_amass: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        if extract is None:
            extract = ExtractConfig(label_field=label_field)
        elif extract.label_field != label_field and label_field != "proc_label":
            raise ValueError("give label_field either directly or in extract, not both differently")
        self.babel_dir, self.amass_dir = Path(babel_dir), Path(amass_dir)
        self.split, self.mode, self.cfg = split, mode, extract
        self.target_fps, self.min_motion_seconds = target_fps, min_motion_seconds
        self.cache_size = max(0, int(cache_size))
        self.allow_outside_amass = allow_outside_amass
        self.report = ReadReport(strict=strict)
        self._cache: OrderedDict[Path, AmassMotion] = OrderedDict()
        self._failed: dict[Path, DataError] = {}
        self._lengths: dict[Path, int] = {}
        self.records: list[Segment | Pair] = []
        self._record_paths: list[Path] = []
        self.sequences: list[BabelSequence] = load_babel_split(split_path(babel_dir, split), self.report)
        self._build(progress)
        logger.info("BABEL %s/%s: %s", split, mode, self.report.summary().replace("\n", "; "))

    @classmethod
    def from_config(cls, cfg: BabelDataConfig, progress: bool = True) -> MotionDataset:
        return cls(
            cfg.babel_dir,
            cfg.amass_dir,
            cfg.split,
            cfg.mode,
            cfg.extract.label_field,
            cfg.strict,
            extract=cfg.extract,
            target_fps=cfg.target_fps,
            min_motion_seconds=cfg.min_motion_seconds,
            cache_size=cfg.cache_size,
            progress=progress,
            allow_outside_amass=cfg.allow_outside_amass,
        )

    # --- index -------------------------------------------------------------------------------------
    def _can_yield(self, seq: BabelSequence) -> bool:
        """False when the mode's first rule already rejects the sequence (no need to read the motion)."""
        has_frames = seq.frame_annotation(self.cfg.annotator) is not None
        if self.mode in ("seg", "pairs"):
            return has_frames
        if self.mode == "seq":
            return not has_frames
        return True

    def _resolve(self, seq: BabelSequence) -> Path:
        """AMASS file of ``seq``: ``feat_p`` without its first component, else ``feat_p`` as is."""
        candidates = amass_candidates(self.amass_dir, seq, self.allow_outside_amass)
        for c in candidates:
            if c.is_file():
                return c
        raise DataError(
            candidates[0],
            f"AMASS file not found (BABEL {seq.source}, feat_p {seq.feat_p!r}; also tried {candidates[1]})",
            record=f"seq {seq.seq_id}",
            reason="missing_amass",
        )

    def _load(self, path: Path) -> AmassMotion:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        if path in self._failed:
            raise self._failed[path]
        try:
            motion = load_amass_npz(path, self.target_fps, self.min_motion_seconds)
        except DataError as exc:
            self._failed[path] = exc
            raise
        if path in self._lengths and self._lengths[path] != motion.num_frames:
            raise DataError(
                path,
                f"motion now has {motion.num_frames} frames, indexed with "
                f"{self._lengths[path]}: file changed while in use",
                reason="bad_motion",
            )
        self._lengths[path] = motion.num_frames
        if self.cache_size:
            self._cache[path] = motion
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return motion

    def _build(self, progress: bool) -> None:
        seen: set[str] = set()
        for seq in tqdm(
            self.sequences, desc=f"BABEL {self.split} ({self.mode})", disable=not progress, unit="seq"
        ):
            if not self._can_yield(seq):
                records_of(seq, self.mode, 0, self.target_fps, self.cfg, self.report)  # counts the skip
                continue
            try:
                path = self._resolve(seq)
                motion = self._load(path)
            except DataError as exc:
                err_type = Skipped if isinstance(exc, Skipped) else DataError
                self.report.problem(
                    err_type(
                        exc.path, exc.problem, record=f"seq {seq.seq_id} ({seq.source})", reason=exc.reason
                    )
                )
                continue
            if motion.kept_source_rate:
                self.report.note(
                    "kept_source_rate",
                    f"{path}: {motion.source_fps:g} fps < {self.target_fps:g} fps, not upsampled",
                )
            for rec in records_of(seq, self.mode, motion.num_frames, motion.fps, self.cfg, self.report):
                if rec.key in seen:
                    self.report.loaded -= 1
                    self.report.problem(
                        DataError(
                            seq.source,
                            f"duplicate key {rec.key!r}",
                            record=f"seq {seq.seq_id}",
                            reason="duplicate_key",
                        )
                    )
                    continue
                seen.add(rec.key)
                self.records.append(rec)
                self._record_paths.append(path)

    # --- access ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def keys(self) -> list[str]:
        return [r.key for r in self.records]

    def __getitem__(self, index: int) -> MotionSample:
        rec = self.records[index]
        path = self._record_paths[index]
        motion = self._load(path)
        end = rec.end
        if end > motion.num_frames:  # cannot happen with an unchanged file (frames are clipped)
            raise DataError(
                path,
                f"record {rec.key} ends at frame {end} beyond {motion.num_frames}",
                reason="segment_outside_motion",
            )
        return MotionSample(
            record=rec,
            poses=motion.poses[rec.start : end],
            trans=motion.trans[rec.start : end],
            fps=motion.fps,
            source=str(path),
            gender=motion.gender,
            betas=motion.betas,
            split=self.split,
        )

    def __iter__(self) -> Iterator[MotionSample]:
        for i in range(len(self)):
            yield self[i]
