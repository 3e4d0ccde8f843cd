"""Statistics of a BABEL + AMASS tree read through the real readers (``actiongpt data stats``, the demo's
stats stage): per split the sequences, minutes of motion, unique labels, the records of every mode (seg, seq,
pairs) and the read report (what was skipped and why). Next to a generated dataset it also checks the counts
against what the generator says it wrote (``provenance.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actiongpt.data.babel import EXTRA_SPLITS, SPLIT_FILES, load_babel_split
from actiongpt.data.errors import DataError, ReadReport
from actiongpt.data.labels import is_excluded_action

STATS_MODES = ("seg", "seq", "pairs")
# Skips that follow from the data's structure (not problems): left out of the summary line.
STRUCTURAL_SKIPS = frozenset({"excluded_action", "no_frame_labels", "has_frame_labels", "no_pairs"})


def dataset_stats(
    babel_dir: str | Path, amass_dir: str | Path, splits: list[str] | None = None, progress: bool = False
) -> dict[str, Any]:
    """Statistics of a BABEL + AMASS tree through the real readers (see the module docstring)."""
    from actiongpt.data.dataset import MotionDataset

    babel_dir, amass_dir = Path(babel_dir), Path(amass_dir)
    if not babel_dir.is_dir():
        raise FileNotFoundError(f"BABEL folder {babel_dir} does not exist")
    if not amass_dir.is_dir():
        raise FileNotFoundError(f"AMASS folder {amass_dir} does not exist")
    known = [*SPLIT_FILES, *EXTRA_SPLITS]
    if splits is None:
        splits = [s for s in known if (babel_dir / f"{s}.json").is_file()]
        if not splits:
            raise FileNotFoundError(
                f"no BABEL split files ({', '.join(f'{s}.json' for s in known)}) in {babel_dir}"
            )
    out: dict[str, Any] = {"babel": str(babel_dir), "amass": str(amass_dir), "splits": {}}
    for split in splits:
        path = babel_dir / f"{split}.json"
        report = ReadReport()
        seqs = load_babel_split(path, report)
        report.loaded = len(seqs)  # the reader counts only what it skips; here "loaded" is its sequences
        labels = set()
        for seq in seqs:
            for ann in (*seq.seq_anns, *(a for a in seq.frame_anns if a is not None)):
                labels.update(
                    lab.proc_label
                    for lab in ann.labels
                    if lab.proc_label is not None and not is_excluded_action(lab.proc_label)
                )
        entry: dict[str, Any] = {
            "sequences": len(seqs),
            "frame_ann_null": sum(s.frame_ann is None for s in seqs),
            "minutes": round(sum(s.dur for s in seqs) / 60.0, 2),
            "unique_labels": len(labels),
            "babel_report": report.to_dict(),
            "modes": {},
        }
        for mode in STATS_MODES:
            ds = _dataset(MotionDataset, babel_dir, amass_dir, split, mode, progress)
            rep = ds.report
            problems = {r: n for r, n in rep.skipped.items() if r in rep.problems}
            entry["modes"][mode] = {
                "records": len(ds),
                "skipped": dict(sorted(rep.skipped.items())),
                "problems": problems,
                "examples": {r: rep.examples.get(r, [])[:1] for r in problems},
                "notes": dict(rep.notes),
            }
        out["splits"][split] = entry
    prov = babel_dir.parent / "provenance.json"
    if prov.is_file() and babel_dir.name == "babel":
        expected = json.loads(prov.read_text())["expected_records"]
        out["matches_generator"] = all(
            out["splits"][s]["modes"][m]["records"] == expected[s][m]
            for s in out["splits"]
            if s in expected
            for m in STATS_MODES
        )
    return out


def _dataset(cls: Any, babel_dir: Path, amass_dir: Path, split: str, mode: str, progress: bool) -> Any:
    try:
        return cls(babel_dir, amass_dir, split=split, mode=mode, strict=False, progress=progress)
    except ValueError as exc:  # an unknown split name, say
        raise DataError(str(exc)) from exc


def format_stats(stats: dict[str, Any]) -> str:
    lines = [
        f"BABEL {stats['babel']}  AMASS {stats['amass']}",
        f"{'split':9s} {'seqs':>5s} {'null':>5s} {'min':>7s} {'labels':>6s} "
        + " ".join(f"{m:>6s}" for m in STATS_MODES)
        + "  skipped (problems)",
    ]
    for split, e in stats["splits"].items():
        skipped = {}
        problems = 0
        for m in STATS_MODES:
            for r, n in e["modes"][m]["skipped"].items():
                if r not in STRUCTURAL_SKIPS:
                    skipped[f"{m}:{r}"] = n
            problems += sum(e["modes"][m]["problems"].values())
        lines.append(
            f"{split:9s} {e['sequences']:5d} {e['frame_ann_null']:5d} {e['minutes']:7.1f} "
            f"{e['unique_labels']:6d} "
            + " ".join(f"{e['modes'][m]['records']:6d}" for m in STATS_MODES)
            + f"  {skipped or 'none'} ({problems})"
        )
        for m in STATS_MODES:
            for reason, ex in e["modes"][m]["examples"].items():
                lines.append(f"    {m} {reason}: {ex[0] if ex else ''}")
    lines.append(
        f"total: {sum(e['sequences'] for e in stats['splits'].values())} sequences, "
        f"{sum(e['minutes'] for e in stats['splits'].values()):.1f} minutes of motion"
    )
    if "matches_generator" in stats:
        lines.append(
            "record counts match provenance.json: " + ("yes" if stats["matches_generator"] else "NO")
        )
    return "\n".join(lines)
