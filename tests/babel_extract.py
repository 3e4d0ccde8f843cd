"""BABEL records of many sequences at once, for tests: the product builds them one sequence at a time
(``actiongpt.data.extract.records_of``, called while the shards are written)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from actiongpt.data.babel import BabelSequence
from actiongpt.data.errors import ReadReport
from actiongpt.data.extract import ExtractConfig, Pair, Segment, records_of


def _extract(
    seqs: Iterable[BabelSequence],
    mode: str,
    cfg: ExtractConfig | None,
    lengths: Mapping[str, int] | None,
    fps: float,
    report: ReadReport | None,
) -> list:
    cfg = cfg or ExtractConfig()
    report = report if report is not None else ReadReport(strict=True)
    out: list = []
    for seq in seqs:
        # Without motions, the motion length is estimated from BABEL's duration (may differ by a frame).
        n = lengths[seq.seq_id] if lengths is not None and seq.seq_id in lengths else int(seq.dur * fps)
        out.extend(records_of(seq, mode, n, fps, cfg, report))
    return out


def extract_segments(
    seqs: Iterable[BabelSequence],
    cfg: ExtractConfig | None = None,
    *,
    lengths: Mapping[str, int] | None = None,
    fps: float = 30.0,
    report: ReadReport | None = None,
) -> list[Segment]:
    """``seg`` records of all sequences. ``lengths``: motion frames per ``seq_id`` (default ``int(dur*fps)``).
    Without ``report`` bad annotations raise `DataError`; rejections are counted in ``report``."""
    return _extract(seqs, "seg", cfg, lengths, fps, report)


def extract_sequences(
    seqs: Iterable[BabelSequence],
    cfg: ExtractConfig | None = None,
    *,
    lengths: Mapping[str, int] | None = None,
    fps: float = 30.0,
    report: ReadReport | None = None,
) -> list[Segment]:
    """``seq`` records (sequences without frame labels, first sequence label) of all sequences."""
    return _extract(seqs, "seq", cfg, lengths, fps, report)


def extract_pairs(
    seqs: Iterable[BabelSequence],
    cfg: ExtractConfig | None = None,
    *,
    lengths: Mapping[str, int] | None = None,
    fps: float = 30.0,
    report: ReadReport | None = None,
) -> list[Pair]:
    """TEACH pairs of all sequences (see `pairs_of`)."""
    return _extract(seqs, "pairs", cfg, lengths, fps, report)
