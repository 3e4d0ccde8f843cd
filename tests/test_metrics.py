"""APE/AVE (actiongpt.metrics): hand-computed values, invariances, a reference written from the spec, sums."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from actiongpt.metrics import MAIN_KEYS, MetricSums, compute_ape_ave, sequence_terms
from actiongpt.metrics_canon import (
    ACROSS_JOINTS,
    MMM21_JOINTS,
    MMM21_POSE_JOINTS,
    canonicalize,
    heading_angle,
)

J = {n: i for i, n in enumerate(MMM21_JOINTS)}

# Standing body in MMM axes (metres, y up): faces +z, its right side is +x (MMM axes are a mirrored
# frame, so this is the yaw-0 pose of the original convention: across-vector along +x, heading 0).
REST = np.array(
    [
        [0.00, 0.95, 0.00], [0.00, 1.05, 0.00], [0.00, 1.30, 0.00], [0.00, 1.50, 0.00], [0.00, 1.65, 0.02],
        [-0.18, 1.45, 0.00], [-0.20, 1.17, 0.00], [-0.22, 0.92, 0.02],
        [0.18, 1.45, 0.00], [0.20, 1.17, 0.00], [0.22, 0.92, 0.02],
        [-0.09, 0.92, 0.00], [-0.10, 0.50, 0.02], [-0.10, 0.08, 0.00],
        [-0.10, 0.02, -0.05], [-0.10, 0.03, 0.12],
        [0.09, 0.92, 0.00], [0.10, 0.50, 0.02], [0.10, 0.08, 0.00],
        [0.10, 0.02, -0.05], [0.10, 0.03, 0.12],
    ]
)  # fmt: skip
LEFT_LEG = [J[n] for n in ("LK", "LA", "LMrot", "LF")]
RIGHT_LEG = [J[n] for n in ("RK", "RA", "RMrot", "RF")]
LEFT_ARM, RIGHT_ARM = [J["LE"], J["LW"]], [J["RE"], J["RW"]]
SWAP = list(range(21))
for a, b in [("LS", "RS"), ("LE", "RE"), ("LW", "RW"), ("LH", "RH"), ("LK", "RK"), ("LA", "RA"),
             ("LMrot", "RMrot"), ("LF", "RF")]:  # fmt: skip
    SWAP[J[a]], SWAP[J[b]] = J[b], J[a]


def yaw(x: np.ndarray, psi) -> np.ndarray:
    """Rotate (..., 3) points about the vertical (y) axis; psi broadcasts against x[..., 0]."""
    c, s = np.cos(psi), np.sin(psi)
    out = x.copy()
    out[..., 0] = x[..., 0] * c + x[..., 2] * s
    out[..., 2] = -x[..., 0] * s + x[..., 2] * c
    return out


def make_motion(
    T: int, seed: int = 0, *, yaw0: float = 0.3, yaw_rate: float = 0.02, speed: float = 0.03,
    swing: float = 1.0, noise: float = 0.01,
) -> np.ndarray:  # fmt: skip
    """A walking-like MMM-21 sequence (T, 21, 3): leg/arm swing, foot lift, bob, turning, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    phase = 2 * np.pi * t / 30 * rng.uniform(0.8, 1.2)
    sw = swing * np.sin(phase)[:, None]
    pose = np.repeat(REST[None], T, 0)
    pose[:, LEFT_LEG, 2] += 0.2 * sw
    pose[:, RIGHT_LEG, 2] -= 0.2 * sw
    pose[:, LEFT_LEG[1:], 1] += 0.08 * np.clip(sw, 0, None)
    pose[:, RIGHT_LEG[1:], 1] += 0.08 * np.clip(-sw, 0, None)
    pose[:, LEFT_ARM, 2] -= 0.15 * sw
    pose[:, RIGHT_ARM, 2] += 0.15 * sw
    pose[..., 1] += 0.02 * swing * np.cos(2 * phase)[:, None]
    pose += rng.normal(0.0, noise, pose.shape)
    psi = yaw0 + yaw_rate * t + 0.05 * swing * np.sin(0.3 * t)
    step = speed * np.stack([np.sin(psi), np.zeros(T), np.cos(psi)], -1)
    pos = np.cumsum(step, 0) + np.array([0.5, 0.0, -1.0])
    return yaw(pose, psi[:, None]) + pos[:, None, :]


def assert_all_zero(m: dict[str, float], tol: float = 1e-9, skip: tuple[str, ...] = ()) -> None:
    bad = {k: v for k, v in m.items() if not k.startswith("num_") and k not in skip and abs(v) > tol}
    assert not bad, bad


def assert_same(a: dict[str, float], b: dict[str, float], tol: float = 1e-9) -> None:
    assert a.keys() == b.keys()
    bad = {k: (a[k], b[k]) for k in a if abs(a[k] - b[k]) > tol * max(1.0, abs(a[k]))}
    assert not bad, bad


# ------------------------------------------------- independent reference, written from TEACH's compute.py
# Plain per-sequence, per-frame loops over numpy floats: deliberately no vectorisation and no shared
# code with actiongpt.metrics / metrics_canon, so that it checks them rather than restates them.

SPEC_FEET = ("LMrot", "LF", "RMrot", "RF")
SPEC_ACROSS = ("RK", "LK", "RE", "LE")  # what the original actually uses (knees and elbows) for the heading


def _spin(px: float, pz: float, s: float, c: float) -> tuple[float, float]:
    """Turn the ground-plane point (px, pz) by the angle whose sine/cosine are (s, c).

    Convention: the angle of the facing direction (s, c) itself, so ``_spin(s, c, -s, c) == (0, 1)``.
    """
    return c * px + s * pz, -s * px + c * pz


def _spec_canonical(seq: np.ndarray) -> dict[str, np.ndarray]:
    """One (T, 21, 3) MMM sequence -> its canonical global joints, local poses, root and trajectory."""
    n_frames = seq.shape[0]
    # 1. floor: soft minimum over frames of the per-frame lowest foot joint, from its min and max only
    lowest = [min(float(seq[t, J[name], 1]) for name in SPEC_FEET) for t in range(n_frames)]
    lo, hi = min(lowest), max(lowest)
    floor_y = lo - math.log(0.5 + math.exp(lo - hi))

    facing_sin, facing_cos, theta = [], [], []
    local = np.zeros((n_frames, 20, 3))
    local_step = np.zeros((n_frames, 2))  # root ground-plane velocity in the facing frame
    root_y = np.zeros(n_frames)
    for t in range(n_frames):
        rx, rz = float(seq[t, 0, 0]), float(seq[t, 0, 2])
        root_y[t] = seq[t, 0, 1] - floor_y
        # 3. heading from the across-vector: forward = normalise(-a_z, a_x) = (sin, cos)
        r1, l1, r2, l2 = (seq[t, J[name]] for name in SPEC_ACROSS)
        ax = (r1[0] - l1[0]) + (r2[0] - l2[0])
        az = (r1[2] - l1[2]) + (r2[2] - l2[2])
        size = max(math.hypot(ax, az), 1e-12)
        s, c = -az / size, ax / size
        facing_sin.append(s)
        facing_cos.append(c)
        theta.append(math.atan2(s, c))
        # 2 + 3. the 20 non-root joints relative to the root on the ground, turned to face +z
        for j in range(1, 21):
            lx, lz = _spin(float(seq[t, j, 0]) - rx, float(seq[t, j, 2]) - rz, -s, c)
            local[t, j - 1] = (lx, float(seq[t, j, 1]) - floor_y, lz)
        if t > 0:
            vx, vz = rx - float(seq[t - 1, 0, 0]), rz - float(seq[t - 1, 0, 2])
            local_step[t] = _spin(vx, vz, -s, c)

    # 4. re-integrate heading (0 at frame 0) and trajectory ((0, 0) at frame 0)
    joints = np.zeros((n_frames, 21, 3))
    root = np.zeros((n_frames, 3))
    traj = np.zeros((n_frames, 2))
    heading = 0.0
    pos_x = pos_z = 0.0
    for t in range(n_frames):
        if t > 0:
            heading += theta[t] - theta[t - 1]
        hs, hc = math.sin(heading), math.cos(heading)
        wx, wz = _spin(local_step[t, 0], local_step[t, 1], hs, hc)
        pos_x, pos_z = pos_x + wx, pos_z + wz
        traj[t] = (pos_x, pos_z)
        root[t] = (pos_x, root_y[t], pos_z)
        joints[t, 0] = root[t]
        for j in range(20):
            gx, gz = _spin(local[t, j, 0], local[t, j, 2], hs, hc)
            joints[t, j + 1] = (gx + pos_x, local[t, j, 1], gz + pos_z)
    return {"joints": joints, "local": local, "root": root, "traj": traj}


def _spec_variance(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def _spec_errors(a: np.ndarray, b: np.ndarray, n: int) -> tuple[float, float]:
    """(sum over the first n frames of |a_t - b_t|, |per-coordinate variance(a) - variance(b)|) for (T, C)."""
    position = sum(math.sqrt(sum((a[t, i] - b[t, i]) ** 2 for i in range(a.shape[1]))) for t in range(n))
    spread = [
        _spec_variance([a[t, i] for t in range(n)]) - _spec_variance([b[t, i] for t in range(n)])
        for i in range(a.shape[1])
    ]
    return position, math.sqrt(sum(d * d for d in spread))


def _spec_metrics(gens: list[np.ndarray], refs: list[np.ndarray]) -> dict[str, float]:
    """APE/AVE from the spec: sums over pairs, APE / total frames, AVE / number of sequences."""
    ape = {"root": 0.0, "traj": 0.0, "pose": [0.0] * 20, "joints": [0.0] * 21}
    ave = {"root": 0.0, "traj": 0.0, "pose": [0.0] * 20, "joints": [0.0] * 21}
    frames = sequences = 0
    for g, r in zip(gens, refs):
        n = min(len(g), len(r))  # the transform sees full sequences; the errors only the common frames
        cg, cr = _spec_canonical(g), _spec_canonical(r)
        frames += n
        sequences += 1
        for part in ("root", "traj"):
            p, v = _spec_errors(cg[part], cr[part], n)
            ape[part] += p
            ave[part] += v
        for part, src, count in (("pose", "local", 20), ("joints", "joints", 21)):
            for j in range(count):
                p, v = _spec_errors(cg[src][:, j], cr[src][:, j], n)
                ape[part][j] += p
                ave[part][j] += v
    out = {
        "APE_root": ape["root"] / frames,
        "APE_traj": ape["traj"] / frames,
        "APE_mean_pose": sum(ape["pose"]) / 20 / frames,
        "APE_mean_joints": sum(ape["joints"]) / 21 / frames,
        "AVE_root": ave["root"] / sequences,
        "AVE_traj": ave["traj"] / sequences,
        "AVE_mean_pose": sum(ave["pose"]) / 20 / sequences,
        "AVE_mean_joints": sum(ave["joints"]) / 21 / sequences,
    }
    for part, names in (("pose", MMM21_POSE_JOINTS), ("joints", MMM21_JOINTS)):
        for j, name in enumerate(names):
            out[f"APE_{part}_{name}"] = ape[part][j] / frames
            out[f"AVE_{part}_{name}"] = ave[part][j] / sequences
    out |= {
        "num_frames": float(frames),
        "num_sequences": float(sequences),
        "num_sequences_ave": float(sequences),
    }
    return out


# ------------------------------------------------------------------------------------------------- tests


def test_matches_independent_reference_from_spec():
    gens = [make_motion(50, 1), make_motion(33, 2, yaw0=-2.0), make_motion(70, 3, yaw_rate=-0.05)]
    refs = [make_motion(40, 11, yaw0=2.5), make_motion(45, 12), make_motion(70, 13, speed=0.0)]
    ours = compute_ape_ave(gens, refs)
    assert_same(ours, _spec_metrics(gens, refs), tol=1e-10)
    assert ours["APE_root"] > 0.01 and ours["AVE_mean_joints"] > 1e-4  # a non-trivial comparison


def test_identical_sequences_give_zero():
    seqs = [make_motion(40, 1), make_motion(25, 2)]
    m = compute_ape_ave(seqs, [s.copy() for s in seqs])
    assert_all_zero(m, tol=0.0)
    assert set(MAIN_KEYS) <= m.keys()
    assert m["num_frames"] == 65 and m["num_sequences"] == 2


@pytest.mark.parametrize("heading", ["original", "hips_shoulders"])
@pytest.mark.parametrize("floor", ["original", "min"])
def test_rigid_ground_motion_and_vertical_offset_are_canonicalised_away(floor, heading):
    ref = make_motion(60, 4)
    moved = {
        "translation": ref + np.array([1.5, 0.0, -2.0]),
        "yaw": yaw(ref, 1.1),
        "yaw_about_point": yaw(ref - np.array([3.0, 0, 1.0]), -2.7) + np.array([3.0, 0, 1.0]),
        "vertical": ref + np.array([0.0, 0.25, 0.0]),  # floor moves by the same 0.25 (m and M both shift)
        "all": yaw(ref, 0.4) + np.array([-0.7, -0.1, 0.9]),
    }
    for name, gen in moved.items():
        m = compute_ape_ave([gen], [ref], floor=floor, heading=heading)
        assert_all_zero(m, tol=1e-9), name


def test_constant_offset_in_one_joint_by_hand():
    d = np.array([0.03, 0.04, 0.0])  # |d| = 0.05 m; it has a horizontal part, so it rotates with the heading
    # turning walk: the global offset is rotated rigidly (norm 0.05, constant), the local one per frame
    ref = make_motion(50, 5)
    gen = ref.copy()
    gen[:, J["BUN"]] += d
    m = compute_ape_ave([gen], [ref])
    assert m["APE_joints_BUN"] == pytest.approx(0.05, abs=1e-12)
    assert m["APE_pose_BUN"] == pytest.approx(0.05, abs=1e-12)
    assert m["APE_mean_joints"] == pytest.approx(0.05 / 21, abs=1e-12)
    assert m["APE_mean_pose"] == pytest.approx(0.05 / 20, abs=1e-12)
    assert m["AVE_joints_BUN"] == pytest.approx(0.0, abs=1e-12)
    assert m["AVE_pose_BUN"] > 1e-5  # the heading varies, so the local offset direction varies
    assert_all_zero(m, tol=1e-12, skip=("APE_joints_BUN", "APE_pose_BUN", "APE_mean_joints", "APE_mean_pose",
                                        "AVE_pose_BUN", "AVE_mean_pose"))  # fmt: skip
    # constant heading (straight walk without swing): the local offset is constant too -> every AVE is 0
    ref = make_motion(50, 5, yaw_rate=0.0, swing=0.0, noise=0.0)
    gen = ref.copy()
    gen[:, J["BUN"]] += d
    m = compute_ape_ave([gen], [ref])
    assert m["APE_pose_BUN"] == pytest.approx(0.05, abs=1e-12)
    assert_all_zero(m, tol=1e-12, skip=("APE_joints_BUN", "APE_pose_BUN", "APE_mean_joints", "APE_mean_pose"))


def test_ave_uses_t_minus_1_and_is_sequence_weighted_ape_frame_weighted():
    static = make_motion(4, 6, yaw_rate=0.0, speed=0.0, swing=0.0, noise=0.0)
    g1, g2 = static[:2].copy(), static.copy()
    g1[:, J["BUN"], 1] += [0.0, 0.2]  # APE sum 0.2 over 2 frames; var = 2 * 0.1^2 / 1 = 0.02
    g2[:, J["BUN"], 1] += [0.0, 0.0, 0.0, 0.8]  # APE sum 0.8 over 4 frames; var = (3*0.04 + 0.36) / 3 = 0.16
    m = compute_ape_ave([g1, g2], [static[:2], static])
    assert m["APE_joints_BUN"] == pytest.approx(1.0 / 6, abs=1e-12)  # frame-weighted, not (0.1 + 0.2) / 2
    assert m["APE_pose_BUN"] == pytest.approx(1.0 / 6, abs=1e-12)
    assert m["AVE_joints_BUN"] == pytest.approx((0.02 + 0.16) / 2, abs=1e-12)  # sequence-weighted, T - 1
    assert m["AVE_pose_BUN"] == pytest.approx(0.09, abs=1e-12)
    assert m["AVE_mean_joints"] == pytest.approx(0.09 / 21, abs=1e-12)
    assert m["APE_root"] == 0.0 and m["AVE_root"] == 0.0


def test_different_lengths_truncate_after_floor_on_full_sequences():
    ref = make_motion(40, 7)
    tail = np.repeat(ref[-1:] + np.array([0.0, 0.3, 0.0]), 10, 0)  # lifted: raises M, keeps m
    gen = np.concatenate([ref, tail])

    def soft_floor(x):
        h = x[:, [J["LMrot"], J["LF"], J["RMrot"], J["RF"]], 1].min(1)
        lo, hi = h.min(), h.max()
        return lo - math.log(0.5 + math.exp(lo - hi))

    delta = abs(soft_floor(gen) - soft_floor(ref))  # every height differs by this on the 40 common frames
    assert delta > 0.01
    m = compute_ape_ave([gen], [ref])
    assert m["num_frames"] == 40
    for k in ("APE_root", "APE_mean_pose", "APE_mean_joints", "APE_joints_LW", "APE_pose_RF"):
        assert m[k] == pytest.approx(delta, abs=1e-12), k
    assert_all_zero(m, tol=1e-12, skip=tuple(k for k in m if k.startswith("APE_") and k != "APE_traj"))
    # the plain-minimum floor does not move (same lowest foot), nor does cropping before the transform
    assert_all_zero(compute_ape_ave([gen], [ref], floor="min"), tol=1e-12)
    assert_all_zero(compute_ape_ave([gen[:40]], [ref]), tol=0.0)
    # reference longer than generated: symmetric
    assert compute_ape_ave([ref], [gen])["APE_root"] == pytest.approx(delta, abs=1e-12)


def _parts():
    a = ([make_motion(20, 21), make_motion(35, 22)], [make_motion(20, 31), make_motion(30, 32)])
    b = (
        [make_motion(60, 23), make_motion(90, 24, yaw0=1.0), make_motion(45, 25)],
        [make_motion(60, 33), make_motion(95, 34), make_motion(45, 35, yaw_rate=0.0)],
    )
    return a, b


def test_additivity_merge_equals_all_at_once_not_mean_of_parts():
    (ga, ra), (gb, rb) = _parts()
    sa, sb = MetricSums(), MetricSums()
    sa.update(ga, ra)
    sb.update(gb, rb)
    whole = compute_ape_ave(ga + gb, ra + rb)
    assert_same((sa + sb).compute(), whole, tol=1e-12)
    assert_same(sum([sa, sb]).compute(), whole, tol=1e-12)
    # one flat vector, summed (what all_reduce(SUM) does), then unpacked
    vec = sa.as_tensor() + sb.as_tensor()
    assert vec.dtype == torch.float64 and vec.ndim == 1
    assert_same(MetricSums.from_tensor(vec).compute(), whole, tol=1e-12)
    # the exact weights: frames for APE (55 + 195), sequences for AVE (2 + 3)
    ma, mb = sa.compute(), sb.compute()
    assert ma["num_frames"] == 20 + 30 and mb["num_frames"] == 60 + 90 + 45
    na, nb = ma["num_frames"], mb["num_frames"]
    assert whole["APE_root"] == pytest.approx(
        (na * ma["APE_root"] + nb * mb["APE_root"]) / (na + nb), rel=1e-12
    )
    assert whole["AVE_root"] == pytest.approx((2 * ma["AVE_root"] + 3 * mb["AVE_root"]) / 5, rel=1e-12)
    # naive averaging of per-part metrics is measurably different
    for k in ("APE_root", "AVE_root", "APE_mean_joints"):
        naive = (ma[k] + mb[k]) / 2
        assert abs(naive - whole[k]) > 1e-3 * whole[k], k
    # merge is in place and does not alias
    before = sa.as_tensor().clone()
    _ = sa + sb
    assert torch.equal(sa.as_tensor(), before)
    sa.merge(sb)
    assert torch.equal(sa.as_tensor(), vec)


def test_merge_refuses_different_options_and_bad_vectors():
    with pytest.raises(ValueError, match="floor"):
        MetricSums() + MetricSums(floor="min")
    with pytest.raises(ValueError, match="89"):
        MetricSums.from_tensor(torch.zeros(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="floor must be"):
        MetricSums(floor="mm")
    with pytest.raises(ValueError, match="no sequences"):
        MetricSums().compute()


def test_mirror_invariance():
    gens = [make_motion(50, 41), make_motion(40, 42, yaw0=-1.0)]
    refs = [make_motion(50, 51), make_motion(44, 52)]
    base = compute_ape_ave(gens, refs)
    flip = np.array([-1.0, 1.0, 1.0])
    # mirroring both (x -> -x) leaves every value unchanged, per joint too
    assert_same(compute_ape_ave([g * flip for g in gens], [r * flip for r in refs]), base, tol=1e-9)
    # a true mirror (reflection + left/right relabelling): means unchanged, per-joint entries swap sides
    mir = compute_ape_ave([(g * flip)[:, SWAP] for g in gens], [(r * flip)[:, SWAP] for r in refs])
    for k in MAIN_KEYS:
        assert mir[k] == pytest.approx(base[k], rel=1e-9, abs=1e-12), k
    assert mir["APE_joints_LK"] == pytest.approx(base["APE_joints_RK"], rel=1e-9)
    assert mir["AVE_pose_RW"] == pytest.approx(base["AVE_pose_LW"], rel=1e-9)
    # mirroring only one of them changes the result a lot
    one = compute_ape_ave([g * flip for g in gens], refs)
    assert one["APE_mean_joints"] > base["APE_mean_joints"] + 0.05


@pytest.mark.parametrize("heading", ["original", "hips_shoulders"])
def test_frame0_heading_and_trajectory_are_zero_after_canonicalisation(heading):
    seqs = [yaw(make_motion(30, s, yaw0=0.0), psi) + np.array([2.0, 0.1, -3.0]) for s, psi in
            [(61, 0.0), (62, 1.3), (63, -2.9), (64, 3.1)]]  # fmt: skip
    x = torch.from_numpy(np.stack(seqs))
    canon = canonicalize(x, torch.full((4,), 30), heading=heading)
    before = heading_angle(x[:, 0], heading)
    assert before.abs().max() > 1.0  # the inputs did not start at heading 0
    assert heading_angle(canon.joints[:, 0], heading).abs().max() < 1e-12
    assert canon.trajectory[:, 0].abs().max() == 0.0
    assert canon.joints[:, 0, 0, [0, 2]].abs().max() == 0.0
    # later frames keep their heading relative to frame 0
    rel = heading_angle(x[:, 10], heading) - before
    after = heading_angle(canon.joints[:, 10], heading)
    assert torch.allclose(
        torch.remainder(after - rel + math.pi, 2 * math.pi) - math.pi,
        torch.zeros(4, dtype=torch.float64),
        atol=1e-9,
    )


def test_original_heading_uses_knees_and_elbows():
    assert ACROSS_JOINTS["original"] == ("RK", "LK", "RE", "LE")
    assert ACROSS_JOINTS["hips_shoulders"] == ("RH", "LH", "RS", "LS")
    pose = torch.from_numpy(REST.copy())
    # turn only knees and elbows by 90 degrees: their across-vector now points along +z
    for left, right in (("LK", "RK"), ("LE", "RE")):
        mid = (pose[J[left]] + pose[J[right]]) / 2
        pose[J[left]] = mid + torch.tensor([0.0, 0.0, -0.1], dtype=torch.float64)
        pose[J[right]] = mid + torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64)
    assert float(heading_angle(pose, "hips_shoulders")) == pytest.approx(0.0, abs=1e-12)
    assert float(heading_angle(pose, "original")) == pytest.approx(-math.pi / 2, abs=1e-12)


def test_padded_tensor_input_equals_list_input():
    gens = [make_motion(35, 71), make_motion(50, 72), make_motion(20, 73)]
    refs = [make_motion(40, 81), make_motion(44, 82), make_motion(20, 83)]
    by_list = compute_ape_ave(gens, refs)

    def pad(seqs, T, fill):
        out = np.full((len(seqs), T, 21, 3), fill)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
        return torch.from_numpy(out)

    gl, rl = [len(g) for g in gens], torch.tensor([len(r) for r in refs])
    for fill in (0.0, 1e3, np.nan):  # padding content must not matter
        got = compute_ape_ave(pad(gens, 60, fill), pad(refs, 55, fill), gl, reference_lengths=rl)
        assert_same(got, by_list, tol=1e-12)
    # float32 input is accepted (computed in float64)
    f32 = compute_ape_ave(pad(gens, 50, 0.0).float(), pad(refs, 50, 0.0).float(), gl, reference_lengths=rl)
    assert f32["APE_root"] == pytest.approx(by_list["APE_root"], rel=1e-5)
    # one lengths argument applies to both padded sides
    same = [make_motion(30, 91), make_motion(25, 92)]
    other = [make_motion(30, 93), make_motion(25, 94)]
    assert_same(compute_ape_ave(pad(same, 30, 0.0), pad(other, 30, 0.0), [30, 25]),
                compute_ape_ave(same, other), tol=1e-12)  # fmt: skip


def test_per_joint_ave_values_are_true_values():
    # the original wrote AVE_pose_RF into every AVE_joints_<name>; ours differ per joint
    m = compute_ape_ave([make_motion(50, 101)], [make_motion(50, 102)])
    vals = [m[f"AVE_joints_{n}"] for n in MMM21_JOINTS]
    assert len(set(vals)) == 21
    assert np.mean(vals) == pytest.approx(m["AVE_mean_joints"], rel=1e-12)
    assert np.mean([m[f"APE_pose_{n}"] for n in MMM21_POSE_JOINTS]) == pytest.approx(
        m["APE_mean_pose"], rel=1e-12
    )


def test_single_frame_pairs_are_kept_for_ape_and_left_out_of_ave():
    g, r = make_motion(30, 111), make_motion(30, 112)
    g1, r1 = make_motion(1, 113), make_motion(5, 114)  # common length 1
    only = compute_ape_ave([g], [r])
    both = compute_ape_ave([g, g1], [r, r1])
    assert all(math.isfinite(v) for v in both.values())
    assert both["num_sequences"] == 2 and both["num_sequences_ave"] == 1 and both["num_frames"] == 31
    for k in ("AVE_root", "AVE_traj", "AVE_mean_pose", "AVE_mean_joints", "AVE_joints_LW"):
        assert both[k] == pytest.approx(only[k], rel=1e-12), k
    assert both["APE_root"] != pytest.approx(only["APE_root"], rel=1e-6)
    with pytest.raises(ValueError, match="single common frame"):
        compute_ape_ave([g1], [r1])


def test_bad_input_is_rejected_with_clear_errors():
    g = make_motion(10, 121)
    with pytest.raises(ValueError, match="MMM-21"):
        compute_ape_ave([np.zeros((10, 22, 3))], [g])
    bad = g.copy()
    bad[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match=r"reference: sequence 1 .*NaN"):
        compute_ape_ave([g, g], [g, bad])
    with pytest.raises(ValueError, match="2 generated sequences but 1 reference"):
        compute_ape_ave([g, g], [g])
    with pytest.raises(ValueError, match="length 11 > padded size 10"):
        compute_ape_ave(torch.from_numpy(g[None]), torch.from_numpy(g[None]), [11])
    with pytest.raises(ValueError, match="no frames"):
        compute_ape_ave(torch.from_numpy(g[None]), torch.from_numpy(g[None]), [0])
    with pytest.raises(ValueError, match="lengths are taken from the list"):
        compute_ape_ave([g], [g], [5])
    with pytest.raises(TypeError, match="floating-point"):
        compute_ape_ave([g.astype(np.int64)], [g])


def test_update_returns_per_sequence_terms():
    gens, refs = [make_motion(20, 131), make_motion(30, 132)], [make_motion(25, 141), make_motion(30, 142)]
    sums = MetricSums()
    terms = sums.update(gens, refs)
    per = terms.per_sequence()
    assert terms.lengths.tolist() == [20, 30]
    for i in range(2):
        single = compute_ape_ave([gens[i]], [refs[i]])
        assert float(per["APE_root"][i]) == pytest.approx(single["APE_root"], rel=1e-12)
        assert float(per["APE_mean_joints"][i]) == pytest.approx(single["APE_mean_joints"], rel=1e-12)
    t2 = sequence_terms(gens, refs)
    assert torch.equal(t2.APE_joints, terms.APE_joints)


def test_joint_order_is_the_original_mmm_order():
    assert MMM21_JOINTS == (
        "root", "BP", "BT", "BLN", "BUN", "LS", "LE", "LW", "RS", "RE", "RW",
        "LH", "LK", "LA", "LMrot", "LF", "RH", "RK", "RA", "RMrot", "RF",
    )  # fmt: skip


def test_batched_speed_256_x_200():
    rng = np.random.default_rng(0)
    base = make_motion(200, 151)
    gen = torch.from_numpy(base[None] + rng.normal(0, 0.02, (256, 200, 21, 3))).float()
    ref = torch.from_numpy(base[None] + rng.normal(0, 0.02, (256, 200, 21, 3))).float()
    lengths = torch.from_numpy(rng.integers(100, 201, 256))
    sums = MetricSums()
    sums.update(gen[:4], ref[:4], lengths[:4])  # warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        MetricSums().update(gen, ref, lengths)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"\nAPE/AVE update, 256 sequences x 200 frames: {best * 1000:.1f} ms (best of 3)")
    assert best < 10.0
