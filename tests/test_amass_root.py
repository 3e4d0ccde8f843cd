"""Real-AMASS placement of the bundled body: SMPL-H's root convention, the floor fit and the file preview.

AMASS-layout files are built here from a known SMPL-H-like subject: a rest skeleton of another size and
other proportions than the bundled body, with its own rest pelvis offset. The embedded generator's own
solver poses that subject (so its feet are on the floor and ``trans`` follows SMPL-H's convention for *its*
rest pelvis), and the files go through the real reader. No real AMASS file is used (their licence forbids
redistribution).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from actiongpt.data.amass import load_amass_npz
from actiongpt.data.amass_preview import amass_preview, frame_labels
from actiongpt.data.babel import parse_sequence
from actiongpt.data.synth.body import body_geometry
from actiongpt.data.synth.catalogue import ACTIONS
from actiongpt.data.synth.common import Ctx
from actiongpt.data.synth.solver import solve_many
from actiongpt.data.synth.writers import amass_arrays
from actiongpt.metrics import compute_ape_ave
from actiongpt.motion.features import (
    feature_stats,
    features_to_rotations,
    normalize,
    rotations_to_features,
)
from actiongpt.motion.fk import forward_kinematics
from actiongpt.motion.joints_fast import MMM21Joints
from actiongpt.motion.mmm import joints_mmm21
from actiongpt.motion.rotations import axis_angle_to_matrix
from actiongpt.motion.skeleton import (
    JOINT_INDEX,
    SMPLH_REST_PELVIS,
    STATURE_M,
    Skeleton,
    bundled_skeleton,
)
from actiongpt.motion.stature import fit_stature

SOLE = slice(22, 26)  # heels and toe tips appended by forward_kinematics(with_end_points=True)
LEG_JOINTS = [JOINT_INDEX[f"{s}_{j}"] for s in ("left", "right") for j in ("knee", "ankle", "foot")]
ACTION_NAMES = ("walk_forward", "jump_in_place", "squat", "stand_still")


def subject_skeleton(stature: float, leg_stretch: float, pelvis: tuple[float, float, float]) -> Skeleton:
    """A body of ``stature`` metres with legs ``leg_stretch`` times as long relative to the trunk and its own
    rest pelvis offset: SMPL-H-like (same tree, absolute rest joints, pelvis below the model origin)."""
    b = bundled_skeleton()
    k = stature / STATURE_M
    rest, ends = b.rest_joints.double() * k, b.end_points.double() * k
    hip_y = float(rest[JOINT_INDEX["left_hip"], 1])
    for t in (rest, ends):  # stretch everything below the hips downwards
        below = t[:, 1] < hip_y
        t[below, 1] = hip_y - (hip_y - t[below, 1]) * leg_stretch
    shift = rest[0] - torch.tensor(pelvis, dtype=torch.float64)
    rest, ends = rest - shift, ends - shift
    return Skeleton(rest.float(), ends.float(), b.end_point_names, b.end_point_parents, name="subject")


def subject_files(tmp: Path, subject: Skeleton, fps: float = 60.0) -> list[tuple[Path, object]]:
    """One AMASS-layout file per action, posed on ``subject`` by the generator's solver."""
    geo = body_geometry(subject)
    specs = [a for a in ACTIONS if a.name in ACTION_NAMES]
    models = [s.model(Ctx(geo, fps, np.random.default_rng(7 + i))) for i, s in enumerate(specs)]
    solved = solve_many([(m.targets, fps) for m in models], geo)
    out = []
    for spec, s in zip(specs, solved):
        path = tmp / "SUBJ" / "s01" / f"{spec.name}_poses.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **amass_arrays(s.poses.reshape(len(s.poses), -1), s.trans.numpy(), fps, "female"))
        out.append((path, s))
    return out


SUBJECTS = {
    "short": (1.58, 1.04, (-0.001, -0.22, 0.027)),
    "tall": (1.92, 0.97, (0.003, -0.255, 0.03)),
}


_BUILT: dict[str, tuple[Skeleton, float, list]] = {}


def _built(name: str, tmp_path_factory) -> tuple[Skeleton, float, list]:
    if name not in _BUILT:
        stature, stretch, pelvis = SUBJECTS[name]
        sk = subject_skeleton(stature, stretch, pelvis)
        _BUILT[name] = (sk, stature, subject_files(tmp_path_factory.mktemp(name), sk))
    return _BUILT[name]


@pytest.fixture(scope="module", params=sorted(SUBJECTS))
def subject(request, tmp_path_factory) -> tuple[Skeleton, float, list]:
    return _built(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def short_subject(tmp_path_factory) -> tuple[Skeleton, float, list]:
    return _built("short", tmp_path_factory)


def _read(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    m = load_amass_npz(path)
    return axis_angle_to_matrix(torch.as_tensor(m.poses, dtype=torch.float64)), torch.as_tensor(
        m.trans, dtype=torch.float64
    )


def test_bundled_pelvis_follows_smplh_root_convention() -> None:
    """The pelvis lands at trans + J_pelvis_rest, the rest offset not rotated, whatever the root rotation."""
    sk = bundled_skeleton()
    torch.testing.assert_close(sk.rest_joints[0], torch.tensor(SMPLH_REST_PELVIS), atol=1e-6, rtol=0)
    g = torch.Generator().manual_seed(0)
    rot = axis_angle_to_matrix(torch.randn(9, 22, 3, generator=g))
    trans = torch.randn(9, 3, generator=g)
    pelvis = forward_kinematics(rot, trans, sk)[:, 0]
    torch.testing.assert_close(pelvis, trans + sk.rest_joints[0], atol=1e-6, rtol=0)
    # scaling about the model origin scales the rest pelvis offset too
    torch.testing.assert_close(sk.scaled(0.9).rest_joints[0], 0.9 * sk.rest_joints[0])


def test_subject_files_land_where_the_body_was(subject) -> None:
    """Pelvis and feet of a known SMPL-H-like subject, read back from AMASS-layout files and posed on the
    bundled body scaled by the floor fit: the pelvis within 3 cm of the subject's (the old pelvis-at-trans
    convention was 20+ cm off), the soles never more than 3 cm through the floor and on it (within 4 cm)
    when the subject's feet are, while the unscaled 1.75 m body sinks or floats."""
    sk, stature, files = subject
    bundled = bundled_skeleton().to(dtype=torch.float64)
    rot_all, trans_all, truth_all = [], [], []
    for path, _ in files:
        rot, trans = _read(path)
        rot_all.append(rot), trans_all.append(trans)
        truth_all.append(forward_kinematics(rot, trans, sk.to(dtype=torch.float64), with_end_points=True))
    rot, trans, truth = torch.cat(rot_all), torch.cat(trans_all), torch.cat(truth_all)
    assert float(truth[..., 2].min()) > -2e-3  # the subject itself stands on the floor

    fit = fit_stature(rot, trans)
    # the fitted height is the bundled body's that reaches the floor; other leg proportions move it a bit
    assert abs(fit.stature_m - stature) < 0.05 * stature, fit.describe()
    posed = forward_kinematics(rot, trans, fit.skeleton.to(dtype=torch.float64), with_end_points=True)
    torch.testing.assert_close(posed[:, 0], trans + fit.skeleton.rest_joints[0].double(), atol=1e-6, rtol=0)
    assert float((posed[:, 0] - truth[:, 0]).norm(dim=-1).max()) < 0.03
    assert float((trans - truth[:, 0]).norm(dim=-1).min()) > 0.2  # what pelvis == trans would give

    low = posed[:, SOLE, 2].min(dim=1).values
    true_low = truth[:, SOLE, 2].min(dim=1).values
    grounded = true_low < 0.005
    assert float(low.min()) > -0.03
    assert float((low[grounded]).abs().max()) < 0.04
    assert fit.max_sink_m < 0.03

    fixed = forward_kinematics(rot, trans, bundled, with_end_points=True)[:, SOLE, 2].min(dim=1).values
    miss = float(fixed[grounded].median())
    assert abs(miss) > 0.05, miss  # sinks (short subject) or floats (tall one) without the fit
    assert (miss < 0) == (stature < STATURE_M)


def test_fit_without_floor_contact_keeps_the_body_and_says_so() -> None:
    sk = bundled_skeleton()
    rot = torch.eye(3).repeat(5, 22, 1, 1)
    rot[:, 0] = axis_angle_to_matrix(torch.tensor([np.pi / 2, 0.0, 0.0]))
    lying = torch.eye(3).repeat(5, 22, 1, 1)  # body axis horizontal: no point far below the origin
    fit = fit_stature(lying, torch.tensor([[0.0, 0.0, 0.1]]).repeat(5, 1))
    assert fit.frames_used == 0 and fit.scale == 1.0 and "kept" in fit.describe()
    hover = torch.tensor([[0.0, 0.0, sk.standing_trans_z() + 5.0]]).repeat(5, 1)  # 5 m up: a 10 m body
    fit = fit_stature(rot, hover)
    assert fit.clamped and abs(fit.stature_m - 2.10) < 1e-9 and "clamped" in fit.describe()


def _embedded(n: int = 4) -> list:
    geo = body_geometry()
    specs = [a for a in ACTIONS if a.name in ("walk_forward", "jump_forward", "turn_around", "kick_right")]
    models = [s.model(Ctx(geo, 30.0, np.random.default_rng(11 + i))) for i, s in enumerate(specs[:n])]
    return solve_many([(m.targets, 30.0) for m in models], geo)


def test_embedded_features_and_metrics_do_not_move_with_the_root_convention() -> None:
    """The embedded generator now writes trans = pelvis - J_pelvis_rest. Against the previous convention
    (pelvis at the origin of the rest pose, trans = pelvis) the joints, the normalised 135-d features and
    APE/AVE of generated-vs-reference pairs agree to float32 noise."""
    new_sk = bundled_skeleton()
    c = new_sk.rest_joints[0]
    old_sk = Skeleton(
        new_sk.rest_joints - c, new_sk.end_points - c, new_sk.end_point_names, new_sk.end_point_parents
    )
    solved = _embedded()
    feats = {"new": [], "old": []}
    for s in solved:
        old_trans = s.trans + c  # what the previous generator wrote: the pelvis position
        j_new = forward_kinematics(s.rotmats, s.trans, new_sk, with_end_points=True)
        j_old = forward_kinematics(s.rotmats, old_trans, old_sk, with_end_points=True)
        torch.testing.assert_close(j_new, j_old, atol=2e-6, rtol=0)
        feats["new"].append(rotations_to_features(s.rotmats, s.trans))
        feats["old"].append(rotations_to_features(s.rotmats, old_trans))
    # raw features: only the root height moves, by the rest pelvis's forward (world-vertical) component
    for fn, fo in zip(feats["new"], feats["old"]):
        torch.testing.assert_close(fn[:, 0] + c[2], fo[:, 0], atol=2e-6, rtol=0)
        torch.testing.assert_close(fn[:, 1:], fo[:, 1:], atol=2e-6, rtol=0)
    stats = {k: feature_stats(v) for k, v in feats.items()}
    normed = {k: [normalize(f, *stats[k]) for f in v] for k, v in feats.items()}
    for a, b in zip(normed["new"], normed["old"]):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=0)

    def mmm(features: torch.Tensor, sk: Skeleton) -> torch.Tensor:
        ref = joints_mmm21(*features_to_rotations(features), sk)
        torch.testing.assert_close(MMM21Joints(sk)(features), ref, atol=1e-5, rtol=0)  # the evaluator's path
        return ref

    metrics = {}
    for key, sk in (("new", new_sk), ("old", old_sk)):
        j = [mmm(f, sk) for f in feats[key]]
        # generated = each motion scored against the next one (lengths differ; the metric cuts)
        metrics[key] = compute_ape_ave(j, j[1:] + j[:1])
    assert metrics["new"].keys() == metrics["old"].keys()
    for k, v in metrics["new"].items():
        assert abs(v - metrics["old"][k]) <= 1e-5 * max(1.0, abs(v)), k


# --- the preview command ---------------------------------------------------------------------------------


def _babel(tmp: Path, path: Path, fps_frames: int) -> Path:
    dur = fps_frames / 30.0
    rec = {
        "babel_sid": 4242,
        "dur": dur,
        "url": "x",
        "feat_p": "SUBJ/SUBJ/s01/" + path.name,
        "seq_ann": {
            "babel_lid": "a",
            "anntr_id": "b",
            "labels": [{"raw_label": "walk", "proc_label": "walk", "seg_id": "s0", "act_cat": ["walk"]}],
        },
        "frame_ann": {
            "babel_lid": "c",
            "anntr_id": "d",
            "labels": [
                {
                    "raw_label": "walk",
                    "proc_label": "walk",
                    "seg_id": "f0",
                    "act_cat": ["walk"],
                    "start_t": 0.0,
                    "end_t": dur / 2,
                },
                {
                    "raw_label": "turn",
                    "proc_label": "turn around",
                    "seg_id": "f1",
                    "act_cat": ["turn"],
                    "start_t": dur / 2,
                    "end_t": dur,
                },
            ],
        },
    }
    out = tmp / "val.json"
    out.write_text(json.dumps({"seq1": rec}))
    return out


def test_frame_labels_follow_babel_times() -> None:
    rec = {
        "babel_sid": 1, "dur": 2.0, "url": "", "feat_p": "a/b.npz",
        "seq_ann": {"labels": [{"raw_label": "x", "proc_label": "x", "seg_id": "0"}]},
        "frame_ann": {"labels": [
            {"raw_label": "a", "proc_label": "a", "seg_id": "1", "start_t": 0.0, "end_t": 1.0},
            {"raw_label": "b", "proc_label": "b", "seg_id": "2", "start_t": 0.5, "end_t": 2.0},
        ]},
    }  # fmt: skip
    labels = frame_labels(parse_sequence("s", rec), 60, 30.0)
    assert labels[0] == "a" and labels[20] == "a + b" and labels[45] == "b"
    # no frame labels: the sequence labels on every frame
    assert frame_labels(parse_sequence("s", {**rec, "frame_ann": None}), 3, 30.0) == ["x"] * 3


def test_preview_of_one_file_with_babel_labels(short_subject, tmp_path) -> None:
    path = short_subject[2][0][0]
    babel = _babel(tmp_path, path, load_amass_npz(path).num_frames)
    pv = amass_preview(path, babel)  # record found by its feat_p
    assert pv.record is not None and pv.record.babel_sid == 4242
    assert pv.frame_labels[0] == "walk" and pv.frame_labels[-1] == "turn around"
    assert pv.joints.shape == (pv.motion.num_frames, 26, 3)
    assert float(pv.joints[..., 2].min()) > -0.03 and "fitted" in pv.body_note
    fixed = amass_preview(path, babel, sid=4242, stature_m=STATURE_M)
    assert "1.75 m" in fixed.body_note


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from launch.cli import main

    rc = main(["data", "render", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_render_command_previews_one_amass_file(short_subject, tmp_path, capsys) -> None:
    from PIL import Image

    path = short_subject[2][0][0]
    babel = _babel(tmp_path, path, load_amass_npz(path).num_frames)
    out = tmp_path / "preview.gif"
    rc, stdout, stderr = _cli(
        capsys, "--amass", str(path), "--babel", str(babel), "--sid", "4242", "--out", str(out)
    )
    assert rc == 0, stderr
    assert "fitted to the floor" in stdout and out.is_file()
    with Image.open(out) as im:
        assert im.n_frames > 5
    # bad input: exit 2, the message names the problem, nothing written
    bad = tmp_path / "bad.gif"
    rc, _, stderr = _cli(capsys, "--amass", str(path), "--babel", str(babel), "--sid", "7", "--out", str(bad))
    assert rc == 2 and "babel_sid 7" in stderr and str(babel) in stderr and not bad.exists()
    rc, _, stderr = _cli(capsys, "--amass", str(path), "--body", "smplh", "--out", str(bad))
    assert rc == 2 and "--smplh" in stderr and not bad.exists()
    rc, _, stderr = _cli(capsys, "--amass", str(tmp_path / "missing.npz"), "--out", str(bad))
    assert rc == 2 and "missing.npz" in stderr and not bad.exists()
    rc, _, stderr = _cli(capsys, "--amass", str(path), "--start", "99", "--out", str(bad))
    assert rc == 2 and "past the end" in stderr and not bad.exists()
    # a window of a long file
    part = tmp_path / "part.gif"
    rc, stdout, _ = _cli(capsys, "--amass", str(path), "--start", "1", "--seconds", "0.5", "--out", str(part))
    assert rc == 0 and "drew 1.0-1.5 s" in stdout and "15 frames at 30 fps" in stdout
    with Image.open(part) as im:
        assert im.n_frames == 6  # 0.5 s at the default 12 fps


def test_preview_on_smplh_body_matches_smplx(tmp_path) -> None:
    """--body smplh: the SMPL-H file's skeleton for the file's betas (here a synthetic model whose rest
    joints are the bundled body's), posed like smplx's own forward pass."""
    import smplx

    from tests.synthetic_smplh import write_synthetic_smplh

    model = write_synthetic_smplh(tmp_path / "smplh" / "SMPLH_MALE.npz", seed=2)
    s = _embedded(1)[0]
    path = tmp_path / "m_poses.npz"
    np.savez(path, **amass_arrays(s.poses.reshape(len(s.poses), -1), s.trans.numpy(), 30.0, "male"))
    pv = amass_preview(path, body="smplh", smplh_path=tmp_path / "smplh", vertex_ids=model.vertex_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        layer = smplx.SMPLHLayer(
            str(tmp_path / "smplh"), ext="npz", gender="male", vertex_ids=model.vertex_ids, num_betas=10
        )
    rot, trans = _read(path)
    out = layer(global_orient=rot[:, :1].float(), body_pose=rot[:, 1:22].float(), transl=trans.float()).joints
    np.testing.assert_allclose(pv.joints[:, :22], out[:, :22].numpy(), atol=1e-5)
    # the embedded generator's trans is in SMPL-H's convention: smplx puts these soles on the floor
    assert abs(float(out[:, [59, 62], 2].min())) < 2e-3


def test_embedded_motions_fit_the_bundled_body_itself() -> None:
    """The floor fit on motions generated for the bundled body gives the bundled body back (scale 1)."""
    for s in _embedded():
        fit = fit_stature(s.rotmats, s.trans)
        assert fit.frames_used > 0 and abs(fit.scale - 1.0) < 2e-3, fit.describe()
        assert fit.max_sink_m < 2e-3
