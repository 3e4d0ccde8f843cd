"""``actiongpt data``: generate the embedded dataset and print statistics of any BABEL + AMASS tree.

    actiongpt data synth [--out DIR] [-c configs/data/synth.yaml] [key.sub=value ...]
    actiongpt data stats --babel DIR --amass DIR [--splits train,val] [--json]
    actiongpt data render --babel DIR --amass DIR --out docs/embedded_actions.png [--labels "walk,jump,..."]
    actiongpt data render --amass FILE.npz [--babel FILE.json [--sid N]] [--body bundled|smplh] --out x.gif

``stats`` reads through the real readers (`actiongpt.data.dataset.MotionDataset`, TEACH's extraction
rules) and prints, per split: sequences, minutes of motion, unique labels, the records of every mode
(seg, seq, pairs) and the read report (what was skipped and why). Next to a generated dataset it also
checks the counts against what the generator says it wrote (``provenance.json``).

``render`` with an AMASS *file* previews that one motion as a GIF: the bundled body scaled to the subject
(its height fitted to the floor; ``--stature`` fixes it) or ``--body smplh --smplh PATH`` (the file's
gender and betas), with the BABEL labels of its record over the frames when ``--babel`` names a json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from actiongpt import config as cfglib
from actiongpt.data.babel import load_babel_split
from actiongpt.data.errors import DataError
from actiongpt.data.stats import dataset_stats, format_stats
from actiongpt.data.synth.config import SynthConfig
from launch.cli import UserError
from launch.config_args import add_config_args, resolve

log = logging.getLogger("actiongpt.data")
DEFAULT_CONFIG = "configs/data/synth.yaml"
DEFAULT_RENDER_LABELS = (
    "walk forward",
    "run",
    "jump forward",
    "kick with right leg",
    "wave right hand",
    "sit down",
    "jumping jacks",
    "punch with left hand",
)
#: rule-based rejections that a clean dataset shows by design (not skipped records)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="embedded dataset and dataset statistics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    s = dsub.add_parser("synth", help="generate the embedded dataset (AMASS npz + BABEL json)")
    s.add_argument("--out", default=None, help="output folder (default: the config's `out`, data/embedded)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(s, [DEFAULT_CONFIG] if Path(DEFAULT_CONFIG).is_file() else [])
    s.set_defaults(func=cmd_synth)

    t = dsub.add_parser("stats", help="counts per split and mode through the real BABEL/AMASS readers")
    t.add_argument("--babel", required=True, help="folder with BABEL {split}.json files")
    t.add_argument("--amass", required=True, help="AMASS root (feat_p minus its first folder is under it)")
    t.add_argument(
        "--splits", default=None, help="comma-separated splits (default: every split file present)"
    )
    t.add_argument("--json", action="store_true", help="print the statistics as JSON")
    t.set_defaults(func=cmd_stats)

    r = dsub.add_parser(
        "render",
        help="stick figures of labelled segments, or a preview GIF of one AMASS file (real readers)",
    )
    r.add_argument(
        "--babel", default=None, help="folder with BABEL {split}.json files (with an AMASS file: one json)"
    )
    r.add_argument("--amass", required=True, help="AMASS root, or one AMASS .npz file to preview")
    r.add_argument("--out", required=True, help="output .png (strip: one row per label) or .gif (animation)")
    r.add_argument("--sid", type=int, default=None, help="preview: the BABEL record's babel_sid")
    r.add_argument("--body", choices=("bundled", "smplh"), default="bundled", help="preview: body model")
    r.add_argument("--smplh", default=None, help="preview with --body smplh: SMPL-H model folder or file")
    r.add_argument(
        "--stature", type=float, default=None, help="preview: bundled body height in m (default: fitted)"
    )
    r.add_argument("--start", type=float, default=0.0, help="preview: first second drawn")
    r.add_argument(
        "--seconds",
        type=float,
        default=60.0,
        help="preview: seconds drawn (a GIF holds every frame in memory)",
    )
    r.add_argument(
        "--labels",
        default=",".join(DEFAULT_RENDER_LABELS),
        help="comma-separated proc_labels; the first frame segment with each is drawn",
    )
    r.add_argument("--split", default="train")
    r.add_argument("--frames", type=int, default=6, help="poses per row of a PNG strip")
    r.add_argument("--fps", type=float, default=12.0, help="GIF frame rate")
    r.add_argument("--columns", type=int, default=4, help="panels per row of a GIF")
    r.set_defaults(func=cmd_render)


def synth_config(args: argparse.Namespace) -> SynthConfig:
    cfg = resolve(SynthConfig, args)
    if getattr(args, "out", None):
        cfg.out = args.out
    return cfg


def cmd_synth(args: argparse.Namespace) -> int:
    from actiongpt.data.synth.generate import generate_dataset

    cfg = synth_config(args)
    try:
        summary = generate_dataset(cfg, progress=not args.no_progress)
    except FileExistsError as exc:
        raise UserError(str(exc)) from exc
    cfglib.save(cfg, Path(summary["out"]) / "config.yaml")
    t = summary["totals"]
    print(
        f"wrote {summary['out']}: {t['sequences']} sequences, {t['actions']} actions, {t['minutes']} min of "
        f"motion, {summary['bytes'] / 1e6:.1f} MB in {summary['seconds']:.1f} s"
    )
    for split, rec in summary["expected_records"].items():
        print(f"  {split:9s} seg {rec['seg']:5d}  seq {rec['seq']:4d}  pairs {rec['pairs']:5d}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None
    t0 = time.perf_counter()
    stats = dataset_stats(args.babel, args.amass, splits)  # a DataError is bad input: exit 2
    if args.json:
        print(json.dumps(stats, indent=1))
    else:
        print(format_stats(stats))
        print(f"({time.perf_counter() - t0:.1f} s)")
    return 0


def labelled_clips(
    babel_dir: str | Path, amass_dir: str | Path, labels: list[str], split: str = "train"
) -> list:
    """For each label, the first frame segment carrying it as a `render.Clip`, read through the real
    readers (BABEL json -> AMASS npz at 30 fps -> forward kinematics of the bundled body, scaled to the
    file's subject by `actiongpt.motion.stature.fit_stature`; about 1.0 on the embedded dataset)."""
    import torch

    from actiongpt.data.amass import load_amass_npz
    from actiongpt.data.babel import amass_candidates, split_path
    from actiongpt.motion.fk import forward_kinematics
    from actiongpt.motion.rotations import axis_angle_to_matrix
    from actiongpt.motion.stature import fit_stature
    from actiongpt.render import Clip

    seqs = load_babel_split(split_path(babel_dir, split))
    clips = []
    for label in labels:
        found = next(
            (
                (seq, lab)
                for seq in seqs
                if seq.frame_ann is not None
                for lab in seq.frame_ann.labels
                if lab.proc_label == label
            ),
            None,
        )
        if found is None:
            raise UserError(f"no frame segment labelled {label!r} in {split}.json of {babel_dir}")
        seq, lab = found
        motion = load_amass_npz(amass_candidates(amass_dir, seq)[0])  # refuses a feat_p leaving amass_dir
        start, end = int(lab.start_t * motion.fps), min(int(lab.end_t * motion.fps), motion.num_frames)
        rot = axis_angle_to_matrix(torch.as_tensor(motion.poses))
        trans = torch.as_tensor(motion.trans)
        skel = fit_stature(rot, trans).skeleton.to(dtype=rot.dtype)
        joints = forward_kinematics(rot[start:end], trans[start:end], skel, with_end_points=True)
        clips.append(Clip(joints.numpy(), label, fps=motion.fps))
    return clips


def cmd_render_file(args: argparse.Namespace) -> int:
    """``render --amass FILE.npz``: one motion as a GIF, BABEL labels over its frames when given."""
    from actiongpt.data.amass_preview import amass_preview
    from actiongpt.motion.smplh import BodyModelError, BodyModelNotFoundError
    from actiongpt.render import Clip, save_gif

    out = Path(args.out)
    if out.suffix.lower() != ".gif":
        raise UserError(f"--out must end in .gif for an AMASS file preview, got {out}")
    if args.babel is not None and not Path(args.babel).is_file():
        raise UserError(f"--babel must be a BABEL json file with an AMASS file, got {args.babel}")
    if args.sid is not None and args.babel is None:
        raise UserError("--sid needs --babel FILE.json")
    if args.body == "smplh" and args.smplh is None:
        raise UserError("--body smplh needs --smplh PATH (SMPL-H model folder or file)")
    if args.stature is not None and not 1.0 <= args.stature <= 2.5:
        raise UserError(f"--stature must be a height in metres between 1.0 and 2.5, got {args.stature}")
    if args.start < 0 or args.seconds <= 0:
        raise UserError(f"--start must be >= 0 and --seconds > 0, got {args.start} and {args.seconds}")
    try:
        pv = amass_preview(args.amass, args.babel, args.sid, args.body, args.stature, args.smplh)
    except (DataError, BodyModelError, BodyModelNotFoundError) as exc:
        raise UserError(str(exc)) from exc
    caption = (
        Path(args.amass).name if pv.record is None else f"{Path(args.amass).name} (sid {pv.record.babel_sid})"
    )
    fps, total = pv.motion.fps, pv.motion.num_frames
    first = int(args.start * fps)
    last = min(total, first + max(1, round(args.seconds * fps)))
    if first >= total:
        raise UserError(f"--start {args.start} s is past the end of {args.amass} ({total / fps:.1f} s)")
    labels = pv.frame_labels[first:last] or None
    clip = Clip(pv.joints[first:last], caption, fps=fps, frame_labels=labels)
    save_gif([clip], out, fps=args.fps, panel=(320, 360), scale=110.0, colours=48)
    print(pv.body_note)
    if (first, last) != (0, total):
        print(f"drew {first / fps:.1f}-{last / fps:.1f} s of {total / fps:.1f} s (--start, --seconds)")
    size_kb = out.stat().st_size / 1e3
    print(f"wrote {out} ({size_kb:.0f} kB, {last - first} frames at {fps:g} fps)")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from actiongpt.render import save_gif, save_strip

    if Path(args.amass).is_file() or Path(args.amass).suffix.lower() == ".npz":
        return cmd_render_file(args)
    if args.babel is None:
        raise UserError("--babel DIR is required with an AMASS folder (or pass one AMASS .npz file)")
    if not Path(args.amass).is_dir():
        raise UserError(f"--amass {args.amass} is neither an AMASS folder nor a file")
    labels = [x.strip() for x in args.labels.split(",") if x.strip()]
    clips = labelled_clips(args.babel, args.amass, labels, args.split)
    out = Path(args.out)
    if out.suffix.lower() == ".gif":
        save_gif(clips, out, fps=args.fps, columns=args.columns, panel=(200, 250), scale=72.0, colours=48)
    elif out.suffix.lower() == ".png":
        save_strip(clips, out, num_frames=args.frames)
    else:
        raise UserError(f"--out must end in .png or .gif, got {out}")
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB, {len(clips)} clips)")
    return 0
