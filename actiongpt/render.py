"""Stick-figure rendering of joint sequences: animated GIFs, PNG strips and trajectory plots.

Input joints are world positions ``(T, J, 3)``. ``up="z"`` for AMASS / SMPL-H world coordinates (the
22 body joints, optionally followed by the heel and toe end points of `actiongpt.motion.fk`), ``up="y"``
for MMM-axis joints (``to_mmm21``). Drawing uses Pillow (supersampled for anti-aliasing) so a GIF of a
few clips renders in about a second; the trajectory plot uses matplotlib.

Each panel follows its clip's pelvis horizontally while the floor grid and the pelvis path stay fixed
to the world, so translation stays visible; the floor shadow of every joint shows foot contact. Left
limbs are blue, right limbs red. Captions (and per-frame labels) wrap at word boundaries to the panel
width and shrink when they need more than three lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from actiongpt.motion.skeleton import SMPLH_BODY_JOINTS, SMPLH_BODY_PARENTS

LEFT, RIGHT, CENTRE = (31, 119, 180), (214, 39, 40), (60, 60, 60)

_SMPLH_EDGES = tuple((p, c) for c, p in enumerate(SMPLH_BODY_PARENTS) if p >= 0)
# heel (22, 23) hangs off the ankle, toe tip (24, 25) off the ball ("foot" joint); heel-ball closes the sole.
_END_EDGES = (
    ((7, 22), LEFT),
    ((22, 10), LEFT),
    ((10, 24), LEFT),
    ((8, 23), RIGHT),
    ((23, 11), RIGHT),
    ((11, 25), RIGHT),
)
_MMM_CHAINS = ((0, 1, 2, 3, 4), (3, 5, 6, 7), (3, 8, 9, 10), (0, 11, 12, 13, 14, 15), (0, 16, 17, 18, 19, 20))
MMM21_EDGES = tuple((c[i], c[i + 1]) for c in _MMM_CHAINS for i in range(len(c) - 1))


def _side(name: str) -> tuple[int, int, int]:
    return LEFT if name.startswith("left") else RIGHT if name.startswith("right") else CENTRE


def smplh_edges(num_joints: int) -> tuple[tuple[tuple[int, int], tuple[int, int, int]], ...]:
    """Edges with colours for 22 SMPL-H body joints, or 26 with heel/toe end points appended."""
    if num_joints not in (22, 26):
        raise ValueError(f"SMPL-H stick figures need 22 or 26 joints, got {num_joints}")
    edges = [((p, c), _side(SMPLH_BODY_JOINTS[c])) for p, c in _SMPLH_EDGES]
    if num_joints == 26:
        edges += list(_END_EDGES)
    return tuple(edges)


def mmm_edges() -> tuple[tuple[tuple[int, int], tuple[int, int, int]], ...]:
    colours = {1: LEFT, 2: RIGHT, 3: LEFT, 4: RIGHT}
    out = []
    for ci, chain in enumerate(_MMM_CHAINS):
        for i in range(len(chain) - 1):
            out.append(((chain[i], chain[i + 1]), colours.get(ci, CENTRE)))
    return tuple(out)


@dataclass
class Clip:
    """One motion to draw: joints (T, J, 3), a caption and its frame rate.

    ``up``: "z" (AMASS world) or "y" (MMM axes). ``edges``: ((a, b), rgb) pairs; default by joint count
    (22/26 SMPL-H body, 21 MMM). ``frame_labels``: one text per frame drawn under the caption (e.g. the
    BABEL labels active at that frame). ``on_floor``: lift or lower the whole motion so its lowest point
    over all frames touches the floor (display only, e.g. a fixed-size body posed on another subject's
    motion; APE/AVE remove the floor the same way).
    """

    joints: np.ndarray
    caption: str = ""
    fps: float = 30.0
    up: str = "z"
    edges: tuple | None = None
    frame_labels: Sequence[str] | None = None
    on_floor: bool = False

    def caption_at(self, t: int) -> str:
        """The caption of frame ``t``: the clip's caption, then that frame's label on its own line."""
        if not self.frame_labels:
            return self.caption
        label = self.frame_labels[min(t, len(self.frame_labels) - 1)]
        return "\n".join(x for x in (self.caption, label) if x)

    def world(self) -> np.ndarray:
        """Joints in z-up world coordinates, float64."""
        j = np.asarray(self.joints, dtype=np.float64)
        if j.ndim != 3 or j.shape[-1] != 3 or j.shape[0] == 0:
            raise ValueError(f"clip {self.caption!r}: joints must be (T>0, J, 3), got {j.shape}")
        if self.up == "y":  # MMM (x, y, z) = (y, z, -x) in AMASS -> back to AMASS
            j = np.stack([-j[..., 2], j[..., 0], j[..., 1]], axis=-1)
        elif self.up != "z":
            raise ValueError(f"up must be 'z' or 'y', got {self.up!r}")
        if self.on_floor:
            j = j.copy()
            j[..., 2] -= j[..., 2].min()
        return j

    def edge_list(self) -> tuple:
        if self.edges is not None:
            return self.edges
        n = np.asarray(self.joints).shape[1]
        if n == 21:
            return mmm_edges()
        return smplh_edges(n)


def _facing(world: np.ndarray) -> float:
    """Horizontal facing angle (radians, from +x) at frame 0, from the hip line (or 0 if unknown)."""
    if world.shape[1] >= 22:
        left, right = world[0, 1], world[0, 2]
    elif world.shape[1] == 21:
        left, right = world[0, 11], world[0, 16]
    else:
        return 0.0
    across = left - right  # points to the body's left
    fwd = np.array([across[1], -across[0]])  # z-up: forward = left rotated by -90 deg
    if np.linalg.norm(fwd) < 1e-6:
        return 0.0
    return math.atan2(fwd[1], fwd[0])


class _Camera:
    """Orthographic camera looking at the body from ``azim`` (world angle of the viewer) and ``elev``."""

    def __init__(self, azim: float, elev: float) -> None:
        ca, sa, ce, se = math.cos(azim), math.sin(azim), math.cos(elev), math.sin(elev)
        self.view = np.array([ca * ce, sa * ce, se])  # from target towards the viewer
        self.right = np.array([-sa, ca, 0.0])
        self.up = np.cross(self.view, self.right)

    def project(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.stack([p @ self.right, p @ self.up], axis=-1), p @ self.view


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _wrap(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Greedy word wrap of each line of ``text`` to ``width`` pixels (a single over-long word stays whole)."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            trial = f"{line} {word}" if line else word
            if line and font.getlength(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def fit_caption(
    text: str, width: float, size: int = 13, max_lines: int = 3, min_size: int = 9
) -> tuple[ImageFont.ImageFont | ImageFont.FreeTypeFont, list[str]]:
    """Font and lines for ``text`` in ``width`` pixels: wrapped at word boundaries, the font shrunk until it
    fits in ``max_lines``; if even ``min_size`` does not, the last line ends in an ellipsis after a whole
    word."""
    for sz in range(size, min_size - 1, -1):
        font = _font(sz)
        lines = _wrap(text, font, width)
        if len(lines) <= max_lines and all(font.getlength(x) <= width for x in lines):
            return font, lines
    lines = lines[:max_lines]
    last = lines[-1].split()
    while last and font.getlength(" ".join(last) + " …") > width:
        last.pop()
    lines[-1] = " ".join(last) + " …" if last else "…"
    return font, lines


def _draw_caption(img: Image.Image, text: str, size: int = 13) -> None:
    font, lines = fit_caption(text, img.width - 10, size)
    d = ImageDraw.Draw(img)
    y = 4
    for line in lines:
        d.text((6, y), line, fill=(20, 20, 20), font=font)
        y += int(font.getbbox("Ag")[3]) + 2


def _draw_panel(
    world: np.ndarray,
    t: int,
    edges: tuple,
    cam: _Camera,
    size: tuple[int, int],
    scale: float,
    caption: str,
    ss: int,
) -> Image.Image:
    w, h = size[0] * ss, size[1] * ss
    img = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    pose = world[t]
    centre = np.array([pose[0, 0], pose[0, 1], 0.0])
    px = scale * ss

    def to_px(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xy, depth = cam.project(points - centre)
        return np.stack([w / 2 + xy[..., 0] * px, h * 0.86 - xy[..., 1] * px], axis=-1), depth

    # Floor grid (0.5 m) fixed to the world.
    step, half = 0.5, 3.0
    gx = np.floor(centre[0] / step) * step
    gy = np.floor(centre[1] / step) * step
    for k in np.arange(-half, half + step / 2, step):
        for a, b in (
            ((gx + k, gy - half, 0), (gx + k, gy + half, 0)),
            ((gx - half, gy + k, 0), (gx + half, gy + k, 0)),
        ):
            (pa, pb), _ = to_px(np.array([a, b], dtype=np.float64))
            draw.line([tuple(pa), tuple(pb)], fill=(228, 228, 228), width=ss)
    # Pelvis path on the floor.
    path = world[:, 0].copy()
    path[:, 2] = 0.0
    pp, _ = to_px(path)
    if len(pp) > 1:
        draw.line([tuple(p) for p in pp], fill=(250, 190, 120), width=ss)
    # Shadow of the skeleton on the floor.
    shadow = pose.copy()
    shadow[:, 2] = 0.0
    sp, _ = to_px(shadow)
    for (a, b), _c in edges:
        draw.line([tuple(sp[a]), tuple(sp[b])], fill=(205, 205, 205), width=2 * ss)
    # Skeleton, far limbs first.
    jp, depth = to_px(pose)
    order = sorted(edges, key=lambda e: depth[e[0][0]] + depth[e[0][1]])
    for (a, b), colour in order:
        draw.line([tuple(jp[a]), tuple(jp[b])], fill=colour, width=3 * ss)
    r = 2 * ss
    head = jp[15] if pose.shape[0] >= 22 else jp[4]
    hr = 0.09 * px
    draw.ellipse(
        [head[0] - hr, head[1] - hr * 1.1, head[0] + hr, head[1] + hr * 0.9], outline=CENTRE, width=2 * ss
    )
    for p in jp:
        draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=(30, 30, 30))
    img = img.resize(size, Image.LANCZOS)
    if caption:
        _draw_caption(img, caption)
    return img


def _setup(
    clips: Sequence[Clip], elev_deg: float, azim_offset_deg: float
) -> list[tuple[np.ndarray, tuple, _Camera]]:
    out = []
    for c in clips:
        world = c.world()
        cam = _Camera(_facing(world) + math.radians(azim_offset_deg), math.radians(elev_deg))
        out.append((world, c.edge_list(), cam))
    return out


def render_frames(
    clips: Sequence[Clip],
    fps: float = 15.0,
    panel: tuple[int, int] = (220, 260),
    columns: int | None = None,
    scale: float = 95.0,
    elev_deg: float = 15.0,
    azim_offset_deg: float = 55.0,
    supersample: int = 2,
) -> list[Image.Image]:
    """Frames of a side-by-side animation of ``clips`` resampled to ``fps`` (shorter clips hold their
    last pose). ``scale`` is pixels per metre; the camera looks at each body from its front-left."""
    if not clips:
        raise ValueError("nothing to render: no clips")
    setups = _setup(clips, elev_deg, azim_offset_deg)
    duration = max(c.world().shape[0] / c.fps for c in clips)
    n_out = max(1, round(duration * fps))
    cols = columns or len(clips)
    rows = math.ceil(len(clips) / cols)
    frames = []
    for k in range(n_out):
        sheet = Image.new("RGB", (cols * panel[0], rows * panel[1]), (255, 255, 255))
        for i, (clip, (world, edges, cam)) in enumerate(zip(clips, setups)):
            t = min(int(k / fps * clip.fps), world.shape[0] - 1)
            tile = _draw_panel(world, t, edges, cam, panel, scale, clip.caption_at(t), supersample)
            sheet.paste(tile, ((i % cols) * panel[0], (i // cols) * panel[1]))
        frames.append(sheet)
    return frames


def save_gif(clips: Sequence[Clip], path: str | Path, fps: float = 15.0, colours: int = 32, **kwargs) -> Path:
    """Animated GIF of ``clips`` side by side (see `render_frames` for the options); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = render_frames(clips, fps=fps, **kwargs)
    palette = frames[len(frames) // 2].quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    quant = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    quant[0].save(
        path,
        save_all=True,
        append_images=quant[1:],
        duration=round(1000 / fps),
        loop=0,
        optimize=True,
        disposal=1,
    )
    return path


def render_strip(
    clips: Sequence[Clip],
    num_frames: int = 6,
    panel: tuple[int, int] = (150, 190),
    scale: float = 70.0,
    elev_deg: float = 15.0,
    azim_offset_deg: float = 55.0,
    supersample: int = 2,
) -> Image.Image:
    """One row per clip, ``num_frames`` evenly spaced poses per row; the caption heads each row."""
    if not clips:
        raise ValueError("nothing to render: no clips")
    setups = _setup(clips, elev_deg, azim_offset_deg)
    cap_h = 20
    sheet = Image.new("RGB", (num_frames * panel[0], len(clips) * (panel[1] + cap_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(14)
    for r, (clip, (world, edges, cam)) in enumerate(zip(clips, setups)):
        y0 = r * (panel[1] + cap_h)
        draw.text((6, y0 + 3), clip.caption, fill=(10, 10, 10), font=font)
        n = world.shape[0]
        for k, t in enumerate(np.linspace(0, n - 1, num_frames).round().astype(int)):
            tile = _draw_panel(world, int(t), edges, cam, panel, scale, f"{t / clip.fps:.1f}s", supersample)
            sheet.paste(tile, (k * panel[0], y0 + cap_h))
        draw.line(
            [(0, y0 + panel[1] + cap_h - 1), (sheet.width, y0 + panel[1] + cap_h - 1)], fill=(200, 200, 200)
        )
    return sheet


def save_strip(clips: Sequence[Clip], path: str | Path, **kwargs) -> Path:
    """PNG strip of ``clips`` (see `render_strip`); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    render_strip(clips, **kwargs).save(path, optimize=True)
    return path


def plot_trajectories(
    trajectories: Sequence[np.ndarray],
    labels: Sequence[str],
    path: str | Path,
    title: str = "",
    up: str = "z",
) -> Path:
    """Top view of root trajectories (each (T, 3)); the first point of each is marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(trajectories) != len(labels):
        raise ValueError("need one label per trajectory")
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    for traj, label in zip(trajectories, labels):
        p = np.asarray(traj, dtype=np.float64)
        xy = p[:, :2] if up == "z" else np.stack([-p[:, 2], p[:, 0]], axis=-1)
        (line,) = ax.plot(xy[:, 0], xy[:, 1], label=label)
        ax.plot(xy[0, 0], xy[0, 1], "o", color=line.get_color())
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
