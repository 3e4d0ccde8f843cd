"""Training examples from BABEL annotations: single segments, sequence labels and TEACH pairs.

Modes of the original (TEACH's `teach/data/babel.py`), reproduced rule by rule:

- ``seg``: every frame label of sequences that have frame labels; ``transition`` and t-/a-pose labels
  are dropped. Sequences with ``frame_ann: null`` give nothing here: TEACH marks them invalid for
  ``seg``; their single action is what ``seq`` is for (use ``seg+seq`` for both, as TEACH's
  ``seg+seq``).
- ``seq``: the first sequence label over the whole motion, only for sequences *without* frame labels
  (TEACH's ``seq``: a sequence with frame labels has more than one action, so its sequence label does
  not describe one action).
- ``pairs``: TEACH's ``separate_pairs``: (action 1, transition, action 2) triples around explicit
  ``transition`` segments plus overlapping/touching action pairs, split into frames exactly as
  ``separate_actions`` does (see `_split_pair`).

All modes share: frame index ``int(t * fps)`` clipped to the motion length, and the duration filter
15 <= frames <= 750 at 30 fps (rejected, not cropped; for pairs ``accept(len(a1))`` and
``accept(len(transition) + len(a2))``). Frame ranges are half-open ``[start, end)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .babel import BabelLabel, BabelSequence, amass_relpath
from .errors import DataError, ReadReport
from .labels import check_label_field, is_excluded_action, is_excluded_pose, is_transition

Mode = Literal["seg", "seq", "seg+seq", "pairs"]
MODES: tuple[str, ...] = ("seg", "seq", "seg+seq", "pairs")

Range = tuple[int, int]


@dataclass
class ExtractConfig:
    """Extraction rules. Defaults are TEACH's (the setting Action-GPT trained with)."""

    label_field: str = "proc_label"  # text handed to the model: "proc_label" (TEACH) or "raw_label"
    min_frames: int = 15  # sampler min_len, frames at reference_fps (0.5 s)
    max_frames: int = 750  # sampler max_len (25 s)
    reference_fps: float = 30.0  # rate at which min/max_frames are counted
    annotator: int = 0  # which annotator of the extra_* files (dense files have one)
    # TEACH does not filter a transition's own neighbours, so two chained transitions give a "pair"
    # whose action is the label "transition". True keeps that (original counts); False drops it.
    keep_transition_actions: bool = True
    # annotation times may overshoot the motion slightly (clipped, as TEACH does); more than this
    # means the annotation does not belong to the motion and the sequence is reported.
    time_tolerance_s: float = 1.0

    def __post_init__(self) -> None:
        check_label_field(self.label_field)
        if not 0 < self.min_frames <= self.max_frames:
            raise ValueError(f"need 0 < min_frames <= max_frames, got {self.min_frames}, {self.max_frames}")

    def accept(self, num_frames: int, fps: float) -> bool:
        """TEACH's ``FrameSampler.accept`` with the bounds converted to the motion's frame rate."""
        n = num_frames * self.reference_fps / fps
        return self.min_frames <= n <= self.max_frames


@dataclass(frozen=True)
class Segment:
    """One action over frames ``[start, end)`` of a motion (``seg``/``seq`` modes)."""

    key: str
    seq_id: str
    feat_p: str
    start: int
    end: int
    label: str
    seg_id: str | None
    kind: Literal["frame", "seq"]
    fps: float = 30.0

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def amass_relpath(self) -> str:
        return amass_relpath(self.feat_p)


@dataclass(frozen=True)
class Pair:
    """Two consecutive actions over ``[start, end)``: action 1, then transition frames, then action 2.

    ``source_ranges`` are the annotated segments the pair came from (a1, [transition,] a2).
    """

    key: str
    seq_id: str
    feat_p: str
    start: int
    length_0: int
    length_transition: int
    length_1: int
    label_0: str
    label_1: str
    seg_ids: tuple[str | None, ...]
    source_ranges: tuple[Range, ...]
    explicit_transition: bool
    fps: float = 30.0

    @property
    def end(self) -> int:
        return self.start + self.length_0 + self.length_transition + self.length_1

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def range_0(self) -> Range:
        return (self.start, self.start + self.length_0)

    @property
    def range_transition(self) -> Range:
        s = self.start + self.length_0
        return (s, s + self.length_transition)

    @property
    def range_1(self) -> Range:
        return (self.end - self.length_1, self.end)

    @property
    def amass_relpath(self) -> str:
        return amass_relpath(self.feat_p)


@dataclass(frozen=True)
class _Seg:
    start: int
    end: int
    label: BabelLabel
    index: int  # position in the json label list

    @property
    def range(self) -> Range:
        return (self.start, self.end)


def _structural(label: BabelLabel) -> str | None:
    # TEACH decides transition/t-pose on proc_label; fall back to raw_label for hand-made files.
    return label.proc_label if label.proc_label is not None else label.raw_label


def _key_prefix(seq: BabelSequence, cfg: ExtractConfig) -> str:
    return seq.seq_id if cfg.annotator == 0 else f"{seq.seq_id}-a{cfg.annotator}"


def frame_segments(seq: BabelSequence, num_frames: int, fps: float, cfg: ExtractConfig) -> list[_Seg]:
    """The annotator's frame labels as frame ranges ``(int(start_t*fps), int(end_t*fps))``, clipped.

    Raises `DataError` (reason ``segment_outside_motion``) when a label's times are negative, reversed
    or beyond the motion by more than ``cfg.time_tolerance_s``.
    """
    ann = seq.frame_annotation(cfg.annotator)
    if ann is None:
        return []
    duration = num_frames / fps
    out = []
    for i, lab in enumerate(ann.labels):
        assert lab.start_t is not None and lab.end_t is not None  # guaranteed by the parser
        problem = None
        if lab.start_t < 0 or lab.end_t < lab.start_t:
            problem = f"invalid times {lab.start_t}..{lab.end_t} s"
        elif lab.end_t > duration + cfg.time_tolerance_s:
            problem = (
                f"times {lab.start_t}..{lab.end_t} s are outside the motion "
                f"({num_frames} frames = {duration:.2f} s)"
            )
        if problem:
            raise DataError(
                seq.source,
                f"frame label {i} (seg_id {lab.seg_id}): {problem}",
                record=f"seq {seq.seq_id}",
                reason="segment_outside_motion",
            )
        start = min(int(lab.start_t * fps), num_frames)
        end = min(int(lab.end_t * fps), num_frames)
        out.append(_Seg(start, end, lab, i))
    return out


def _hidden(labels: Iterable[BabelLabel], cfg: ExtractConfig) -> bool:
    return any(lab.text(cfg.label_field) is None or _structural(lab) is None for lab in labels)


def segments_of(
    seq: BabelSequence, num_frames: int, fps: float, cfg: ExtractConfig, report: ReadReport
) -> list[Segment]:
    """``seg`` mode for one sequence (frame labels only; transitions and t/a-poses dropped)."""
    ann = seq.frame_annotation(cfg.annotator)
    if ann is None:
        report.skip("no_frame_labels", f"seq {seq.seq_id}: frame_ann is null (use mode seq)")
        return []
    if _hidden(ann.labels, cfg):
        report.skip("hidden_label", f"seq {seq.seq_id}: {cfg.label_field} is null (test split?)")
        return []
    try:
        segs = frame_segments(seq, num_frames, fps, cfg)
    except DataError as exc:
        report.problem(exc)
        return []
    out, used = [], set()
    prefix = _key_prefix(seq, cfg)
    for s in segs:
        # TEACH checks the duration before the excluded actions; same order keeps its counts comparable.
        if not cfg.accept(s.end - s.start, fps):
            report.skip("duration", f"seq {seq.seq_id} seg {s.index}: {s.end - s.start} frames")
            continue
        if is_excluded_action(_structural(s.label)):
            report.skip("excluded_action", f"seq {seq.seq_id} seg {s.index}: {_structural(s.label)!r}")
            continue
        key = f"{prefix}-{s.label.seg_id}" if s.label.seg_id else f"{prefix}-seg-{s.index}"
        if key in used:
            key = f"{key}-{s.index}"
        used.add(key)
        out.append(
            Segment(
                key=key,
                seq_id=seq.seq_id,
                feat_p=seq.feat_p,
                start=s.start,
                end=s.end,
                label=s.label.text(cfg.label_field) or "",
                seg_id=s.label.seg_id,
                kind="frame",
                fps=fps,
            )
        )
    report.loaded += len(out)
    return out


def sequence_of(
    seq: BabelSequence, num_frames: int, fps: float, cfg: ExtractConfig, report: ReadReport
) -> list[Segment]:
    """``seq`` mode for one sequence: its first sequence label over all frames, if it has no frame labels."""
    if seq.frame_annotation(cfg.annotator) is not None:
        report.skip("has_frame_labels", f"seq {seq.seq_id}: has frame labels (use mode seg or pairs)")
        return []
    ann = seq.seq_annotation(cfg.annotator)
    if ann is None or not ann.labels:
        report.skip("no_seq_label", f"seq {seq.seq_id}: no sequence label")
        return []
    lab = ann.labels[0]
    if _hidden([lab], cfg):
        report.skip("hidden_label", f"seq {seq.seq_id}: {cfg.label_field} is null (test split?)")
        return []
    if not cfg.accept(num_frames, fps):
        report.skip("duration", f"seq {seq.seq_id}: {num_frames} frames")
        return []
    if is_excluded_action(_structural(lab)):
        report.skip("excluded_action", f"seq {seq.seq_id}: {_structural(lab)!r}")
        return []
    prefix = _key_prefix(seq, cfg)
    key = f"{prefix}-{lab.seg_id}" if lab.seg_id else f"{prefix}-seq"
    report.loaded += 1
    return [
        Segment(
            key=key,
            seq_id=seq.seq_id,
            feat_p=seq.feat_p,
            start=0,
            end=num_frames,
            label=lab.text(cfg.label_field) or "",
            seg_id=lab.seg_id,
            kind="seq",
            fps=fps,
        )
    ]


def _timeline_overlaps(seg: Range, others: list[Range]) -> tuple[list[Range], list[Range]]:
    """TEACH ``timeline_overlaps``: segments overlapping/touching ``seg``'s start (before) or end (after)."""
    l, r = seg
    before, after = [], []
    for s in others:
        if (s[0] > l and s[0] > r) or (s[1] < l and s[1] < r):
            continue
        if s[0] < l and s[1] < r and s[1] >= l:
            before.append(s)
        if s[0] > l and s[0] <= r and s[1] > r:
            after.append(s)
    return before, after


def candidate_pairs(segs: list[_Seg], cfg: ExtractConfig) -> list[tuple[tuple[Range, ...], tuple[_Seg, ...]]]:
    """Steps 2-4 of TEACH's pair extraction: unique (a1, a2) and (a1, transition, a2) range tuples.

    Quirks kept on purpose (they shape the published pair counts): segments are keyed by their frame
    range, so two labels with the same range collapse into one (the later label in json order wins);
    duplicates are removed keeping the first occurrence.
    """
    ordered = sorted(segs, key=lambda s: (s.range, s.index))
    kept = [s for s in ordered if not is_excluded_pose(_structural(s.label))]
    by_range: dict[Range, _Seg] = {}
    for s in kept:
        by_range[s.range] = s  # last wins, as TEACH's dict(zip(ranges, labels))
    ranges = [s.range for s in kept]
    overlaps: dict[Range, tuple[list[Range], list[Range]]] = {}
    for r in ranges:
        overlaps[r] = _timeline_overlaps(r, [x for x in ranges if x != r])

    def is_tr(r: Range) -> bool:
        return is_transition(_structural(by_range[r].label))

    found: list[tuple[Range, ...]] = []
    for r, (before, after) in overlaps.items():
        if is_tr(r):
            if not cfg.keep_transition_actions:
                before = [x for x in before if not is_tr(x)]
                after = [x for x in after if not is_tr(x)]
            if r[0] != 0 and before and after:
                for a, b in itertools.product(before, after):
                    a, b = sorted((a, b), key=lambda x: x[0])
                    found.append((a, r, b))
        else:
            before = [x for x in before if not is_tr(x)]
            after = [x for x in after if not is_tr(x)]
            cur = [(b, r) for b in before] + [(r, a) for a in after]
            found.extend(tuple(sorted(p, key=lambda x: x[0])) for p in cur)
    unique = list(dict.fromkeys(found))  # first occurrence kept, like more_itertools.unique_everseen
    return [(p, tuple(by_range[r] for r in p)) for p in unique]


def _split_pair(p: tuple[Range, ...]) -> tuple[int, int, int, int]:
    """TEACH ``separate_actions`` + its duration bookkeeping -> (start, len_0, len_transition, len_1).

    - triple, a1 ends before a2 starts: a1 = [a1.s .. tr.s] (inclusive), transition = [tr.s+1 .. a2.s-1],
      a2 = [a2.s .. a2.e) ;
    - triple whose a1 and a2 overlap: no transition, split at ``int(e0 + over/2)`` with
      ``over = s1 - e0 <= 0``, i.e. the overlap midpoint;
    - pair without transition: split at ``int(e0 + over/2)`` with ``over = e0 - s1 >= 0``: half the
      overlap *after* a1's end, not the midpoint (TEACH's rule, reproduced because the published pair
      counts depend on it).
    The frames of the pair are always ``[a1.s, a2.e)``.
    """
    if len(p) == 3:
        a1, tr, a2 = p
        if a1[1] < a2[0]:
            final = [(a1[0], tr[0]), (tr[0] + 1, a2[0] - 1), (a2[0], a2[1])]
        else:
            over = a2[0] - a1[1]
            final = [(a1[0], int(a1[1] + over / 2)), (int(a1[1] + over / 2 + 1), a2[1])]
    else:
        a1, a2 = p
        over = a1[1] - a2[0]
        final = [(a1[0], int(a1[1] + over / 2)), (int(a1[1] + over / 2 + 1), a2[1])]
    durations = [e - s + 1 for s, e in final]
    durations[-1] -= 1  # the last range is end-exclusive
    if len(durations) == 2:
        durations.insert(1, 0)
    len_0, len_tr, len_1 = durations
    assert len_0 + len_tr + len_1 == p[-1][1] - p[0][0]
    return p[0][0], len_0, len_tr, len_1


def pairs_of(
    seq: BabelSequence, num_frames: int, fps: float, cfg: ExtractConfig, report: ReadReport
) -> list[Pair]:
    """``pairs`` mode for one sequence (TEACH ``separate_pairs``). Keys: ``<seq_id>-pair-<i>`` with ``i``
    the index among the sequence's unique candidates (before the duration filter), as TEACH numbers them."""
    ann = seq.frame_annotation(cfg.annotator)
    if ann is None:
        report.skip("no_frame_labels", f"seq {seq.seq_id}: frame_ann is null, no pairs possible")
        return []
    if _hidden(ann.labels, cfg):
        report.skip("hidden_label", f"seq {seq.seq_id}: {cfg.label_field} is null (test split?)")
        return []
    try:
        segs = frame_segments(seq, num_frames, fps, cfg)
    except DataError as exc:
        report.problem(exc)
        return []
    candidates = candidate_pairs(segs, cfg)
    if not candidates:
        report.skip("no_pairs", f"seq {seq.seq_id}: no overlapping, touching or transition-linked actions")
        return []
    prefix = _key_prefix(seq, cfg)
    out = []
    for i, (ranges, parts) in enumerate(candidates):
        start, len_0, len_tr, len_1 = _split_pair(ranges)
        if not (cfg.accept(len_0, fps) and cfg.accept(len_1 + len_tr, fps)):
            report.skip("duration", f"seq {seq.seq_id} pair {i}: {len_0} + {len_tr} + {len_1} frames")
            continue
        a1, a2 = parts[0].label, parts[-1].label
        out.append(
            Pair(
                key=f"{prefix}-pair-{i}",
                seq_id=seq.seq_id,
                feat_p=seq.feat_p,
                start=start,
                length_0=len_0,
                length_transition=len_tr,
                length_1=len_1,
                label_0=a1.text(cfg.label_field) or "",
                label_1=a2.text(cfg.label_field) or "",
                seg_ids=tuple(s.label.seg_id for s in parts),
                source_ranges=ranges,
                explicit_transition=len(ranges) == 3,
                fps=fps,
            )
        )
    report.loaded += len(out)
    return out


def records_of(
    seq: BabelSequence, mode: str, num_frames: int, fps: float, cfg: ExtractConfig, report: ReadReport
) -> list[Segment] | list[Pair]:
    """Records of one sequence for ``mode`` in ``MODES``."""
    if mode == "seg":
        return segments_of(seq, num_frames, fps, cfg, report)
    if mode == "seq":
        return sequence_of(seq, num_frames, fps, cfg, report)
    if mode == "seg+seq":
        if seq.frame_annotation(cfg.annotator) is None:
            return sequence_of(seq, num_frames, fps, cfg, report)
        return segments_of(seq, num_frames, fps, cfg, report)
    if mode == "pairs":
        return pairs_of(seq, num_frames, fps, cfg, report)
    raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
