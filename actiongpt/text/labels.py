"""Collect the unique action labels to describe.

Sources: BABEL json files (every sequence and frame label of every annotator, read with
``actiongpt.data.babel``; hidden test labels are skipped) or text files with one label per line.
BABEL label text is kept exactly as written, because the loader looks descriptions up by that text.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from actiongpt.data.babel import BabelSequence, load_babel_split


def labels_of_sequences(seqs: Iterable[BabelSequence], label_field: str = "proc_label") -> list[str]:
    """Unique labels of BABEL sequences in first-seen order."""
    seen: dict[str, None] = {}
    for seq in seqs:
        for ann in (*seq.seq_anns, *seq.frame_anns):
            if ann is None:
                continue
            for lab in ann.labels:
                text = lab.text(label_field)
                if text is not None and text.strip():
                    seen.setdefault(text, None)
    return list(seen)


def read_label_file(path: str | Path) -> list[str]:
    """One label per line; blank lines are skipped, surrounding whitespace is removed."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file ({exc})") from exc
    seen: dict[str, None] = {}
    for line in lines:
        if line.strip():
            seen.setdefault(line.strip(), None)
    return list(seen)


def collect_labels(paths: Iterable[str | Path], label_field: str = "proc_label") -> list[str]:
    """Unique labels from BABEL ``*.json`` files and label text files, sorted.

    Sorting makes the request order (and the cache file of a single process) independent of the
    order in which files were given.
    """
    out: set[str] = set()
    any_path = False
    for p in map(Path, paths):
        any_path = True
        if not p.is_file():
            raise FileNotFoundError(f"label source {p} does not exist")
        if p.suffix == ".json":
            out.update(labels_of_sequences(load_babel_split(p), label_field))
        else:
            out.update(read_label_file(p))
    if not any_path:
        raise ValueError("no label source given (BABEL json files or a text file with one label per line)")
    return sorted(out)
