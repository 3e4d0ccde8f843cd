"""The embedded dataset: determinism, formats, the real readers, extraction counts, physical plausibility."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from actiongpt.data.amass import load_amass_npz
from actiongpt.data.babel import load_babel_split
from actiongpt.data.dataset import MotionDataset
from actiongpt.data.errors import ReadReport
from actiongpt.data.synth.body import body_geometry
from actiongpt.data.synth.catalogue import ACTIONS, TPOSE_PHRASINGS, check_catalogue
from actiongpt.data.synth.common import Ctx
from actiongpt.data.synth.config import SplitSizes, SynthConfig
from actiongpt.data.synth.generate import SPLITS, generate_dataset
from actiongpt.data.synth.physics import physics_report
from actiongpt.data.synth.sequence import choose_actions, compose
from actiongpt.data.synth.solver import solve, solve_many
from actiongpt.data.synth.targets import rotate_y
from actiongpt.motion.fk import forward_kinematics
from actiongpt.motion.rotations import axis_angle_to_matrix, rotation_about_axis
from actiongpt.motion.skeleton import bundled_skeleton
from tests.babel_extract import extract_pairs, extract_segments, extract_sequences

GEO = body_geometry()
SMALL = dict(
    sequences=SplitSizes(train=14, val=6, test=6, zeroshot=6),
    tpose_probability=0.3,
    null_frame_ann_probability=0.7,
    batch_frames=5000,
)


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "embedded"
    summary = generate_dataset(SynthConfig(seed=3, **SMALL), out=out, progress=False)
    return out, summary


# --- catalogue --------------------------------------------------------------------------------------------


def test_catalogue_has_30_plus_actions_with_disjoint_zeroshot_phrasings() -> None:
    check_catalogue()
    assert len(ACTIONS) >= 30
    train = {p for a in ACTIONS for p in a.phrasings}
    zeroshot = {p for a in ACTIONS for p in a.zeroshot}
    assert not train & zeroshot
    assert all(1 <= len(p.split()) <= 5 and p == p.lower() for p in train | zeroshot)
    assert all(len(a.phrasings) >= 3 and a.zeroshot for a in ACTIONS)


def test_catalogue_check_rejects_a_leaked_zeroshot_phrase() -> None:
    import dataclasses

    bad = dataclasses.replace(ACTIONS[0], zeroshot=(ACTIONS[1].phrasings[0],))
    with pytest.raises(ValueError, match="also a training phrase"):
        check_catalogue((bad, *ACTIONS[1:]))


# --- physical plausibility of every action ---------------------------------------------------------------


@pytest.fixture(scope="module")
def solved_actions() -> dict[str, list]:
    """Every action, 3 random instances at 60 and 120 fps, solved in one batch."""
    items, keys = [], []
    for spec in ACTIONS:
        for seed in range(3):
            for fps in (60.0, 120.0):
                m = spec.model(Ctx(GEO, fps, np.random.default_rng(1000 + seed)))
                items.append((m.targets, fps))
                keys.append((spec.name, fps, m))
    solved = solve_many(items, GEO)
    out: dict[str, list] = {}
    for (name, fps, m), s in zip(keys, solved):
        out.setdefault(name, []).append((fps, m, s))
    return out


@pytest.mark.parametrize("name", [a.name for a in ACTIONS])
def test_every_action_is_physically_plausible(name: str, solved_actions) -> None:
    """Feet within 3 cm of the floor when planted and not sliding, nothing > 2 cm below the floor, joint
    speeds under human limits, pelvis height 0.45-1.6 m, knees/elbows never hyperextended, arms out of the
    torso (limits and their justification: actiongpt/data/synth/physics.py)."""
    for fps, _m, s in solved_actions[name]:
        rep = physics_report(s.joints.numpy(), fps, s.contact, s.airborne, s.axis_angle())
        assert rep.violations() == [], f"{name} at {fps} fps: {rep.violations()}"
        assert s.contact.any(), name  # every action touches the floor
        assert rep.contact_height < 0.03 and rep.penetration < 0.02


@pytest.mark.parametrize("name", [a.name for a in ACTIONS])
def test_every_action_starts_and_ends_in_the_neutral_stance(name: str, solved_actions) -> None:
    neutral = GEO.neutral_feet()
    for _fps, m, _s in solved_actions[name]:
        tg = m.targets
        ex, ez, epsi = m.end
        assert np.abs(tg.ankle[0] - neutral).max() < 1e-4
        assert np.abs(tg.ankle[-1] - (rotate_y(epsi, neutral) + np.array([ex, 0.0, ez]))).max() < 1e-4
        assert tg.contact[0].all() and tg.contact[-1].all()


def test_parameters_vary_between_instances(solved_actions) -> None:
    """Random per-instance parameters: the same action differs between seeds (duration, path, pose)."""
    for name, runs in solved_actions.items():
        a, b = [s for fps, _, s in runs if fps == 60.0][:2]
        same_length = a.joints.shape == b.joints.shape
        assert not (same_length and torch.allclose(a.joints, b.joints, atol=1e-3)), name


def test_locomotion_moves_and_turns_as_labelled(solved_actions) -> None:
    def travel(name: str) -> tuple[float, float, float]:
        _, m, _ = solved_actions[name][0]
        return m.end

    assert travel("walk_forward")[1] > 1.0 and travel("run")[1] > 3.0
    assert travel("walk_backward")[1] < -0.5
    assert travel("sidestep_left")[0] > 0.15 and travel("sidestep_right")[0] < -0.15  # +x = the body's left
    assert travel("turn_left")[2] > 0.9 and travel("turn_right")[2] < -0.9
    assert abs(travel("turn_around")[2]) > 2.5
    assert travel("jump_forward")[1] > 0.35
    for name in ("jump_in_place", "jump_forward", "jumping_jacks", "hop_on_one_leg", "run"):
        assert any(s.airborne.any() for _, _, s in solved_actions[name]), f"{name} never leaves the floor"
    for name in ("walk_forward", "squat", "wave_right", "clap", "sit_down"):
        assert not any(s.airborne.any() for _, _, s in solved_actions[name]), name


def test_handedness_is_respected(solved_actions) -> None:
    """The labelled hand/leg is the one that moves most (joints: 20/21 wrists, 7/8 ankles)."""

    def motion(name: str, joint: int) -> float:
        _, _, s = solved_actions[name][0]
        return float(s.joints[:, joint].std(0).norm())

    assert motion("wave_right", 21) > 3 * motion("wave_right", 20)
    assert motion("wave_left", 20) > 3 * motion("wave_left", 21)

    def reach(name: str, wrist: int) -> float:  # furthest the hand gets in front of the pelvis
        _, _, s = solved_actions[name][0]
        return float(-(s.joints[:, wrist, 1] - s.joints[:, 0, 1]).min())  # heading 0 faces AMASS -y

    assert reach("punch_right", 21) > reach("punch_right", 20) + 0.15
    assert reach("punch_left", 20) > reach("punch_left", 21) + 0.15
    assert motion("kick_left", 7) > 3 * motion("kick_left", 8)
    assert motion("raise_right_arm", 21) > 3 * motion("raise_right_arm", 20)


def test_sequences_with_transitions_are_plausible() -> None:
    rng = np.random.default_rng(5)
    for k in range(6):
        specs = choose_actions(rng, 4, ACTIONS)
        seq = compose(GEO, (60.0, 120.0)[k % 2], specs, rng, tpose=k % 3 == 0)
        rep = physics_report(
            seq.solved.joints.numpy(),
            seq.fps,
            seq.solved.contact,
            seq.solved.airborne,
            seq.solved.axis_angle(),
        )
        assert rep.violations() == [], [p.action for p in seq.parts]
        kinds = [p.kind for p in seq.parts]
        assert set(kinds[1::2]) == {"transition"} and "transition" not in kinds[::2]
        assert all(a.end == b.start for a, b in zip(seq.parts, seq.parts[1:]))
        assert seq.parts[-1].end == seq.num_frames


def test_physics_checks_detect_violations(solved_actions) -> None:
    """The plausibility measures are not vacuous: floating, sliding, sinking and speed are all caught."""
    fps, _, s = solved_actions["walk_forward"][0]
    j, contact, air = s.joints.numpy().copy(), s.contact, s.airborne
    assert physics_report(j, fps, contact, air).violations() == []
    floating = j.copy()
    floating[..., 2] += 0.06
    assert any("above the floor" in v for v in physics_report(floating, fps, contact, air).violations())
    sinking = j.copy()
    sinking[..., 2] -= 0.05
    assert any("below the floor" in v for v in physics_report(sinking, fps, contact, air).violations())
    sliding = j.copy()
    sliding[..., 0] += np.arange(len(j))[:, None] * (0.5 / fps)  # the whole body glides at 0.5 m/s
    assert any("sliding" in v for v in physics_report(sliding, fps, contact, air).violations())
    jump = j.copy()
    jump[len(j) // 2 :, :, 1] += 0.3  # a 30 cm teleport
    assert any("m/s" in v for v in physics_report(jump, fps, contact, air).violations())


def test_solver_output_follows_amass_conventions() -> None:
    """Standing: root = Rx(+90 deg) about world x (body y-up -> world z-up) composed with the heading;
    trans = pelvis less the rest pelvis (SMPL-H's root convention) at the standing height; FK of the written
    rotations reproduces the joints."""
    from actiongpt.data.synth.targets import standing

    tg = standing(GEO, 3)
    tg.heading[:] = 0.7
    s = solve(tg, GEO, 30.0)
    expect = rotation_about_axis(torch.tensor(0.7), "z") @ rotation_about_axis(torch.tensor(np.pi / 2), "x")
    assert torch.allclose(s.rotmats[0, 0].double(), expect.double(), atol=1e-5)
    floor = bundled_skeleton().standing_trans_z()
    assert abs(float(s.trans[0, 2]) - floor) < 0.02  # standing with soft knees: within 2 cm
    rot = axis_angle_to_matrix(torch.as_tensor(s.axis_angle()))
    joints = forward_kinematics(rot.float(), s.trans.float(), bundled_skeleton(), with_end_points=True)
    assert torch.allclose(joints, s.joints.float(), atol=1e-4)
    assert abs(float(joints[..., 2].min())) < 1e-4  # soles on the floor


# --- the dataset ------------------------------------------------------------------------------------------


def test_generation_is_deterministic_byte_for_byte(dataset, tmp_path) -> None:
    out, _ = dataset
    again = generate_dataset(SynthConfig(seed=3, **SMALL), out=tmp_path / "again", progress=False)
    assert _files(out) == _files(Path(again["out"]))
    cfg = SynthConfig(seed=4, **SMALL)
    other = generate_dataset(cfg, out=tmp_path / "other", progress=False)
    assert _files(out)["babel/train.json"] != _files(Path(other["out"]))["babel/train.json"]


def test_batching_does_not_change_the_output(dataset, tmp_path) -> None:
    out, _ = dataset
    cfg = SynthConfig(seed=3, **{**SMALL, "batch_frames": 100000})
    again = generate_dataset(cfg, out=tmp_path / "onebatch", progress=False)
    a, b = _files(out), _files(Path(again["out"]))
    a.pop("provenance.json"), b.pop("provenance.json")  # records batch_frames in its config
    a.pop("README.md"), b.pop("README.md")
    assert a == b


def test_files_are_in_the_real_amass_and_babel_layout(dataset) -> None:
    out, summary = dataset
    for split in SPLITS:
        assert (out / "babel" / f"{split}.json").is_file()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seed"] == 3 and prov["generator"] == summary["generator"]
    assert (out / "README.md").read_text().startswith("# SynthMocap")
    rates, nulls, transitions = set(), 0, 0
    for split in SPLITS:
        data = json.loads((out / "babel" / f"{split}.json").read_text())
        assert len(data) == getattr(SMALL["sequences"], split)
        for seq_id, ann in data.items():
            assert seq_id == str(ann["babel_sid"])
            assert set(ann) == {"babel_sid", "url", "feat_p", "dur", "seq_ann", "frame_ann"}
            assert ann["feat_p"].startswith("SynthMocap/SynthMocap/S") and ann["feat_p"].endswith(
                "_poses.npz"
            )
            assert set(ann["seq_ann"]) == {"babel_lid", "anntr_id", "mul_act", "labels"}
            for lab in ann["seq_ann"]["labels"]:
                assert set(lab) == {"raw_label", "proc_label", "seg_id", "act_cat"}
                assert lab["raw_label"].strip().rstrip(".").lower() == lab["proc_label"]
            npz = np.load(out / "amass" / Path(*Path(ann["feat_p"]).parts[1:]))
            assert npz["poses"].shape[1] == 156 and not npz["poses"][:, 66:].any()
            assert npz["trans"].shape == (len(npz["poses"]), 3) and npz["betas"].shape == (16,)
            rate = float(npz["mocap_framerate"])
            rates.add(rate)
            assert abs(ann["dur"] - len(npz["poses"]) / rate) < 1e-5
            if ann["frame_ann"] is None:
                nulls += 1
                assert len(ann["seq_ann"]["labels"]) == 1
                continue
            labels = sorted(ann["frame_ann"]["labels"], key=lambda x: x["start_t"])
            assert labels[0]["start_t"] == 0.0 and abs(labels[-1]["end_t"] - ann["dur"]) < 1e-5
            for a, b in itertools.pairwise(labels):
                assert a["end_t"] == b["start_t"]  # contiguous, touching segments
            kinds = ["tr" if x["proc_label"] == "transition" else "x" for x in labels]
            assert kinds[::2] == ["x"] * len(kinds[::2]) and kinds[1::2] == ["tr"] * len(kinds[1::2])
            transitions += kinds.count("tr")
    assert rates <= {60.0, 100.0, 120.0} and len(rates) >= 2
    assert nulls > 0 and transitions > 0
    assert sum(c["tposes"] for c in prov["splits"].values()) > 0
    assert (out / "amass" / "SynthMocap" / "S01" / "shape.npz").exists() or any(
        (out / "amass").rglob("shape.npz")
    )


@pytest.mark.parametrize("split", SPLITS)
def test_real_readers_load_everything_with_expected_counts(dataset, split: str) -> None:
    """MotionDataset (real AMASS + BABEL readers, TEACH rules): no record skipped as bad input or for its
    duration; the only rejections are structural (transitions/t-poses, modes that do not apply), and
    the seg/seq/pairs counts are exactly what the generator says it wrote."""
    out, summary = dataset
    counts = summary["splits"][split]
    expected = summary["expected_records"][split]
    with_frames = counts["sequences"] - counts["frame_ann_null"]
    for mode in ("seg", "seq", "pairs"):
        ds = MotionDataset(out / "babel", out / "amass", split=split, mode=mode, strict=True, progress=False)
        assert len(ds) == expected[mode], mode
        assert not ds.report.problems
        skipped = dict(ds.report.skipped)
        if mode == "seg":
            assert skipped == {
                k: v
                for k, v in {
                    "excluded_action": counts["excluded_segments"],
                    "no_frame_labels": counts["frame_ann_null"],
                }.items()
                if v
            }
        elif mode == "seq":
            assert skipped == ({"has_frame_labels": with_frames} if with_frames else {})
        else:  # single-action sequences with frame labels give no pair
            assert set(skipped) <= {"no_frame_labels", "no_pairs"}
            assert skipped.get("no_frame_labels", 0) == counts["frame_ann_null"]
            assert skipped.get("no_pairs", 0) <= with_frames
        if len(ds):
            sample = ds[len(ds) - 1]
            assert sample.fps == 30.0 and np.isfinite(sample.poses).all()
    assert expected["seg"] == counts["seg"] and expected["pairs"] == counts["pairs"]


def test_extraction_functions_match_the_generator(dataset) -> None:
    out, summary = dataset
    for split in SPLITS:
        seqs = load_babel_split(out / "babel" / f"{split}.json")
        lengths = {s.seq_id: load_amass_npz(out / "amass" / s.amass_relpath).num_frames for s in seqs}
        report = ReadReport(strict=True)
        segs = extract_segments(seqs, lengths=lengths, report=report)
        seqr = extract_sequences(seqs, lengths=lengths, report=report)
        pairs = extract_pairs(seqs, lengths=lengths, report=report)
        exp = summary["expected_records"][split]
        assert (len(segs), len(seqr), len(pairs)) == (exp["seg"], exp["seq"], exp["pairs"]), split
        assert "duration" not in report.skipped
        assert all(p.explicit_transition and p.length_transition > 0 for p in pairs)
        assert all(15 <= s.length <= 750 for s in segs + seqr)


def test_zeroshot_phrases_never_appear_in_train_val_test(dataset) -> None:
    out, summary = dataset
    zeroshot = {p for a in ACTIONS for p in a.zeroshot}
    training = {p for a in ACTIONS for p in a.phrasings}
    structural = {"transition", *TPOSE_PHRASINGS}
    seen: dict[str, set[str]] = {}
    for split in SPLITS:
        labels = set()
        for seq in load_babel_split(out / "babel" / f"{split}.json"):
            for ann in (*seq.seq_anns, *(a for a in seq.frame_anns if a is not None)):
                for lab in ann.labels:
                    labels.add(lab.proc_label)
                    labels.add(lab.raw_label.strip().rstrip(".").lower())
        seen[split] = labels
    for split in ("train", "val", "test"):
        assert not seen[split] & zeroshot, split
        assert seen[split] <= training | structural
    assert seen["zeroshot"] - structural <= zeroshot and seen["zeroshot"] & zeroshot
    assert summary["zeroshot_overlap"] == []


def test_written_motion_is_plausible_after_the_readers_resample_it(dataset) -> None:
    """Through load_amass_npz (30 fps) + forward kinematics of the bundled body: the soles stay on the
    floor, the pelvis in a human range, and no joint exceeds 12 m/s."""
    out, _ = dataset
    skel = bundled_skeleton()
    for path in sorted((out / "amass").rglob("*_poses.npz"))[:12]:
        m = load_amass_npz(path)
        rot = axis_angle_to_matrix(torch.as_tensor(m.poses))
        j = forward_kinematics(rot, torch.as_tensor(m.trans), skel, with_end_points=True).numpy()
        assert j[..., 2].min() > -0.02, path
        assert j[:, 0, 2].min() > 0.45 and j[:, 0, 2].max() < 1.6, path
        assert (np.linalg.norm(np.diff(j, axis=0), axis=-1) * m.fps).max() < 12.0, path
        assert m.source_fps in (60.0, 100.0, 120.0) and m.fps == 30.0


def test_refuses_to_overwrite_a_foreign_folder(tmp_path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "important.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing"):
        generate_dataset(SynthConfig(**SMALL), out=tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "important.txt").read_text() == "keep me"


def test_config_rejects_bad_values() -> None:
    for bad in (
        dict(frame_rates=(25.0,), frame_rate_weights=(1.0,)),
        dict(tpose_probability=1.5),
        dict(transition_seconds=(1.0, 0.5)),
        dict(frame_rates=(60.0, 120.0), frame_rate_weights=(1.0,)),
    ):
        with pytest.raises(ValueError):
            SynthConfig(**bad)
    with pytest.raises(ValueError):
        SplitSizes(train=0)


# --- command line -----------------------------------------------------------------------------------------

TINY = ["sequences.train=5", "sequences.val=3", "sequences.test=3", "sequences.zeroshot=3"]


def test_cli_data_synth_then_stats(tmp_path, capsys) -> None:
    from launch.cli import main

    out = tmp_path / "emb"
    assert main(["data", "synth", "--out", str(out), "--no-progress", "seed=2", *TINY]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "config.yaml").is_file() and (out / "babel" / "zeroshot.json").is_file()
    assert main(["data", "stats", "--babel", str(out / "babel"), "--amass", str(out / "amass")]) == 0
    text = capsys.readouterr().out
    assert "record counts match provenance.json: yes" in text
    for split in ("train", "val", "test", "zeroshot"):
        assert split in text
    train = json.loads((out / "babel" / "train.json").read_text())
    label = next(
        lab["proc_label"]
        for ann in train.values()
        if ann["frame_ann"]
        for lab in ann["frame_ann"]["labels"]
        if lab["proc_label"] not in ("transition", *TPOSE_PHRASINGS)
    )
    png = tmp_path / "r.png"
    assert (
        main(
            [
                "data",
                "render",
                "--babel",
                str(out / "babel"),
                "--amass",
                str(out / "amass"),
                "--out",
                str(png),
                "--labels",
                label,
                "--frames",
                "3",
            ]
        )
        == 0
    )
    assert png.stat().st_size > 1000
    assert (
        main(
            [
                "data",
                "render",
                "--babel",
                str(out / "babel"),
                "--amass",
                str(out / "amass"),
                "--out",
                str(png),
                "--labels",
                "no such label",
            ]
        )
        == 2
    )
    assert main(["data", "stats", "--babel", str(tmp_path / "nope"), "--amass", str(out / "amass")]) == 2
    assert main(["data", "synth", "--out", str(out), "sequences.bogus=1"]) == 2  # unknown key named
    assert "bogus" in capsys.readouterr().err


def test_demo_runs_its_stages_then_skips_done_work(tmp_path, capsys) -> None:
    from launch.cli import main

    argv = [
        "demo",
        "--out",
        str(tmp_path / "run"),
        "--until",
        "stats",  # the later stages (descriptions ... report) are tested in tests/test_demo.py
        f"data.out={tmp_path / 'data'}",
        "data.seed=1",
        *(f"data.{o}" for o in TINY),
    ]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "[1/2] data: generate" in first and "record counts match provenance.json: yes" in first
    assert (tmp_path / "run" / "data_stats.json").is_file()
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert "[1/2] data: done before, skipped" in second and "[2/2] stats: done before, skipped" in second
    assert main([*argv, "--redo", "stats"]) == 0
    assert "[2/2] stats: read it" in capsys.readouterr().out
    # another configuration of the dataset is regenerated, not reused
    assert main([*argv[:-1], "data.sequences.zeroshot=2"]) == 0
    assert "regenerating" in capsys.readouterr().out
    assert main(["demo", "--list"]) == 0


def test_shipped_yaml_equals_the_dataclass_defaults() -> None:
    """`actiongpt data synth` (reads the YAML) and `actiongpt demo` (dataclass defaults) must describe the
    same dataset, or the demo would regenerate what `data synth` just wrote."""
    from actiongpt import config as cfglib
    from actiongpt.data.synth.generate import config_record

    yaml_path = Path(__file__).resolve().parents[1] / "configs" / "data" / "synth.yaml"
    assert config_record(cfglib.load(SynthConfig, [yaml_path])) == config_record(SynthConfig())
