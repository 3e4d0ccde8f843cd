"""Renders of a few evaluated samples: generated vs reference stick figures side by side (animated GIF, with
the text as caption) and a top-view plot of both root trajectories.

The samples are the evaluator's ``renders`` (chosen by a hash of the key, so the same ones whatever the number
of ranks). Joints are MMM-21 (y up); ``actiongpt.render`` maps them back to the z-up world for drawing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cluster.evaluator import RenderSample

log = logging.getLogger(__name__)


def text_of(text: Any) -> str:
    """One line for a sample's text (pairs: both actions)."""
    if isinstance(text, list | tuple):
        return " -> ".join(str(t) for t in text)
    return "" if text is None else str(text)


def _short(text: str, n: int = 60) -> str:
    """At most ``n`` characters, cut after a whole word."""
    return text if len(text) <= n else text[: n - 1].rsplit(" ", 1)[0] + " …"


def safe_name(key: str) -> str:
    """A file name for a sample key (keys may hold slashes, e.g. BABEL feat paths)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_") or "sample"


def write_renders(samples: Sequence[RenderSample], out_dir: Path, fps: float = 15.0) -> list[Path]:
    """``<out_dir>/<key>.gif`` and ``<out_dir>/<key>_trajectory.png`` per sample; returns the files."""
    from actiongpt.render import Clip, plot_trajectories, save_gif

    out_dir = Path(out_dir)
    paths: list[Path] = []
    for s in samples:
        text = text_of(s.text)
        name = safe_name(s.key)
        clips = [
            # the renderer wraps or shrinks long captions; on_floor: a fixed-size body on real data sinks
            Clip(s.generated, caption=f"generated: {text}", up="y", on_floor=True),
            Clip(s.reference, caption="reference", up="y", on_floor=True),
        ]
        paths.append(save_gif(clips, out_dir / f"{name}.gif", fps=fps))
        paths.append(
            plot_trajectories(
                [s.generated[:, 0], s.reference[:, 0]],
                ["generated", "reference"],
                out_dir / f"{name}_trajectory.png",
                title=f"{s.key}: {_short(text, 60)}",
                up="y",
            )
        )
    log.info("wrote %d renders to %s", len(samples), out_dir)
    return paths
