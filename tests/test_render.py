"""Stick-figure rendering: GIF and PNG strips of joint sequences, trajectory plots."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from actiongpt.motion.fk import forward_kinematics
from actiongpt.motion.rotations import rotation_about_axis
from actiongpt.motion.skeleton import bundled_skeleton
from actiongpt.render import (
    LEFT,
    RIGHT,
    Clip,
    fit_caption,
    plot_trajectories,
    render_frames,
    render_strip,
    save_gif,
    save_strip,
)


def _standing(frames: int = 20, heading: float = 0.0, walk: float = 0.0, ends: bool = True) -> np.ndarray:
    """A T-posed body standing upright in AMASS axes (optionally sliding forward to test following)."""
    skel = bundled_skeleton()
    rot = torch.eye(3).repeat(frames, 22, 1, 1)
    rot[:, 0] = rotation_about_axis(torch.tensor(heading), "z") @ rotation_about_axis(
        torch.tensor(np.pi / 2), "x"
    )
    trans = torch.zeros(frames, 3)
    trans[:, 2] = skel.standing_trans_z()
    trans[:, 0] = torch.linspace(0, walk, frames)
    return forward_kinematics(rot, trans, skel, with_end_points=ends).numpy()


def _count(img: Image.Image, rgb: tuple[int, int, int], tol: int = 40) -> int:
    a = np.asarray(img.convert("RGB")).astype(int)
    return int((np.abs(a - np.array(rgb)).sum(-1) < tol).sum())


def test_render_frames_side_by_side_with_fps_resampling() -> None:
    clips = [Clip(_standing(30), "a", fps=30.0), Clip(_standing(60, ends=False), "b", fps=60.0)]
    frames = render_frames(clips, fps=10.0, panel=(120, 150))
    assert len(frames) == 10  # both clips last 1 s
    assert frames[0].size == (240, 150)
    grid = render_frames(clips + clips[:1], fps=5.0, panel=(100, 120), columns=2)
    assert grid[0].size == (200, 240)


def test_left_limbs_are_blue_and_right_limbs_red() -> None:
    frame = render_frames([Clip(_standing(2), "")], fps=1.0, panel=(200, 240), azim_offset_deg=0.0)[0]
    assert _count(frame, LEFT) > 50 and _count(frame, RIGHT) > 50
    # seen from the front, the body's left arm is on the viewer's right
    a = np.asarray(frame.convert("RGB")).astype(int)
    cols_left = np.nonzero((np.abs(a - np.array(LEFT)).sum(-1) < 40).any(0))[0]
    cols_right = np.nonzero((np.abs(a - np.array(RIGHT)).sum(-1) < 40).any(0))[0]
    assert cols_left.mean() > cols_right.mean()


def test_save_gif_writes_an_animation(tmp_path) -> None:
    path = save_gif(
        [Clip(_standing(24, walk=1.0), "walk"), Clip(_standing(24, heading=1.0), "turned")],
        tmp_path / "out" / "a.gif",
        fps=12.0,
        panel=(100, 120),
    )
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 10 and im.size == (200, 120)  # 0.8 s at 12 fps


def test_save_strip_layout(tmp_path) -> None:
    path = save_strip(
        [Clip(_standing(10), "one"), Clip(_standing(10), "two")],
        tmp_path / "s.png",
        num_frames=4,
        panel=(80, 100),
    )
    with Image.open(path) as im:
        assert im.size == (4 * 80, 2 * (100 + 20))
    strip = render_strip([Clip(_standing(10), "x")], num_frames=3, panel=(80, 100))
    assert strip.size == (240, 120)


def test_mmm21_joints_in_y_up_axes_render() -> None:
    j = _standing(4, ends=False)
    mmm_idx = [0, 3, 9, 12, 15, 16, 18, 20, 17, 19, 21, 1, 4, 7, 7, 10, 2, 5, 8, 8, 11]
    mmm = j[:, mmm_idx][..., [1, 2, 0]] * np.array([1.0, 1.0, -1.0])  # AMASS -> MMM axes (y up)
    frame = render_frames([Clip(mmm, "mmm", up="y")], fps=2.0, panel=(120, 150))[0]
    assert _count(frame, LEFT) > 20


def test_bad_input_is_an_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="no clips"):
        render_frames([])
    with pytest.raises(ValueError, match="22 or 26"):
        render_frames([Clip(np.zeros((3, 5, 3)), "bad")])
    with pytest.raises(ValueError, match="joints must be"):
        render_frames([Clip(np.zeros((0, 22, 3)), "empty")])
    with pytest.raises(ValueError, match="up must be"):
        render_frames([Clip(_standing(2), "x", up="x")])
    with pytest.raises(ValueError, match="one label per"):
        plot_trajectories([np.zeros((3, 3))], [], tmp_path / "t.png")


def test_plot_trajectories(tmp_path) -> None:
    t = np.linspace(0, 2 * np.pi, 50)
    circle = np.stack([np.cos(t), np.sin(t), np.ones_like(t)], -1)
    path = plot_trajectories(
        [circle, circle * 0.5], ["reference", "generated"], tmp_path / "traj.png", title="x"
    )
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200


def _text_rows(img: Image.Image, right_of: int = 0) -> np.ndarray:
    """Image rows holding dark caption text (the body is drawn lower down, the grid is light)."""
    a = np.asarray(img.convert("L"))[:, right_of:]
    return np.nonzero((a < 90).any(axis=1))[0]


def test_long_captions_wrap_at_words_instead_of_being_cut() -> None:
    text = "generated: punch with left hand -> turn around and walk back to the start"
    font, lines = fit_caption(text, 210)
    assert len(lines) > 1 and " ".join(lines) == text  # every word kept, none split
    assert all(font.getlength(line) <= 210 for line in lines)
    # drawn: the text spans several lines inside the panel, nothing runs past its right edge
    frame = render_frames([Clip(_standing(2), text)], fps=1.0, panel=(220, 260))[0]
    rows = _text_rows(frame.crop((0, 0, 220, 60)))
    assert rows.max() - rows.min() > 25
    # far too long for three lines: the font shrinks, then the last line ends after a whole word
    words = [f"w{i}" for i in range(200)]
    font, lines = fit_caption(" ".join(words), 200)
    assert len(lines) == 3 and lines[-1].endswith(" …") and font.size < 13
    kept = " ".join(lines)[: -len(" …")].split()
    assert kept == words[: len(kept)]


def test_frame_labels_are_drawn_under_the_caption() -> None:
    clip = Clip(_standing(4), "file.npz", fps=2.0, frame_labels=["walk", "walk", "", "turn around"])
    assert clip.caption_at(0) == "file.npz\nwalk" and clip.caption_at(2) == "file.npz"
    assert clip.caption_at(9) == "file.npz\nturn around"  # past the end: the last label
    frames = render_frames([clip], fps=2.0, panel=(200, 240))
    two_lines, one_line = (_text_rows(frames[k].crop((0, 0, 200, 50))) for k in (0, 2))
    assert two_lines.max() > one_line.max() + 8


def test_on_floor_lifts_a_sunken_motion_for_display() -> None:
    sunk = _standing(3)
    sunk[..., 2] -= 0.12  # a fixed-size body posed on a shorter subject's motion
    clip = Clip(sunk, "x", on_floor=True)
    assert abs(clip.world()[..., 2].min()) < 1e-9
    assert abs(Clip(sunk, "x").world()[..., 2].min() + 0.12) < 1e-6  # off by default
    assert sunk[..., 2].min() < -0.1  # the caller's array is untouched
