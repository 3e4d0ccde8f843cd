"""Generate the embedded dataset: AMASS-style motions and BABEL-style annotations from one seed.

Layout under ``out``::

    amass/SynthMocap/<subject>/<subject>_<nnn>_poses.npz   (+ shape.npz per subject, as AMASS has)
    babel/{train,val,test,zeroshot}.json                  (BABEL release layout; feat_p starts with
                                                           "SynthMocap/SynthMocap/", the first part is
                                                           dropped to find the file under amass/)
    README.md, provenance.json                            (seed, config, counts, generator version)

Everything is drawn from ``numpy.random.default_rng(seed)``: the plan of every sequence first, then one
independent stream per sequence, so the output is byte-identical for a seed and does not depend on how
the work is batched. Every generated sequence is checked against the physical limits of `physics`
before it is written; a violation stops generation with the sequence named (never a silent bad file).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .body import BodyGeometry, body_geometry
from .catalogue import ACTIONS, BY_NAME, TPOSE_PHRASINGS, TRANSITION_LABEL, ActionSpec, check_catalogue
from .config import SynthConfig
from .physics import physics_report
from .sequence import Part, choose_actions, compose_targets
from .solver import solve_many
from .targets import PoseTargets
from .writers import amass_arrays, new_uuid, write_json, write_npz

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "synthmocap-1.0"
DATASET = "SynthMocap"
SPLITS = ("train", "val", "test", "zeroshot")
GENDER = "male"  # the bundled skeleton has a 1.75 m male's proportions (TEACH uses the male body)


@dataclass
class SeqPlan:
    index: int
    split: str
    babel_sid: int
    subject: str
    name: str
    fps: float
    n_actions: int
    tpose: bool
    frame_ann: bool
    seed: int

    @property
    def feat_p(self) -> str:
        return f"{DATASET}/{DATASET}/{self.subject}/{self.name}_poses.npz"


@dataclass
class SplitCounts:
    """What the generator wrote for one split, and what the TEACH extraction rules must find in it."""

    sequences: int = 0
    frames: int = 0
    seconds: float = 0.0
    actions: int = 0
    transitions: int = 0
    tposes: int = 0
    frame_ann_null: int = 0
    seg: int = 0  # action segments of sequences with frame labels
    seq: int = 0  # sequences without frame labels (their one sequence label)
    pairs: int = 0  # consecutive actions joined by an explicit transition
    excluded_segments: int = 0  # transition and t-pose frame labels (dropped by seg/pairs)
    fps: dict[str, int] = field(default_factory=dict)
    per_action: dict[str, int] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)  # unique action proc_labels, sequence and frame level


def _subject_gender(subject_index: int) -> np.ndarray:
    """AMASS stores gender as a str array, in some sub-datasets as bytes or a 1-element array; all three
    appear here (by subject) so readers meet every encoding."""
    if subject_index % 6 == 5:
        return np.array(GENDER.encode())
    if subject_index % 6 == 4:
        return np.array([GENDER])
    return np.array(GENDER)


def plan_sequences(cfg: SynthConfig) -> list[SeqPlan]:
    """The split, rate, subject, action count and seed of every sequence (cheap, all up front)."""
    rng = np.random.default_rng(cfg.seed)
    sizes = cfg.sequences.as_dict()
    main = [s for s in ("train", "val", "test") for _ in range(sizes[s])]
    splits = [main[i] for i in rng.permutation(len(main))] + ["zeroshot"] * sizes["zeroshot"]
    total = len(splits)
    sids = np.sort(rng.choice(90000, size=total, replace=False)) + 10000
    sids = sids[rng.permutation(total)]
    counts = np.asarray(cfg.action_count_weights, dtype=np.float64)
    rates = np.asarray(cfg.frame_rate_weights, dtype=np.float64)
    per_subject: Counter[int] = Counter()
    plans = []
    for i, split in enumerate(splits):
        subj = int(rng.integers(cfg.subjects))
        per_subject[subj] += 1
        n_actions = int(rng.choice(len(counts), p=counts / counts.sum())) + 1
        tpose = bool(rng.random() < cfg.tpose_probability)
        null = n_actions == 1 and not tpose and bool(rng.random() < cfg.null_frame_ann_probability)
        plans.append(
            SeqPlan(
                index=i,
                split=split,
                babel_sid=int(sids[i]),
                subject=f"S{subj + 1:02d}",
                name=f"S{subj + 1:02d}_{per_subject[subj]:03d}",
                fps=float(cfg.frame_rates[int(rng.choice(len(rates), p=rates / rates.sum()))]),
                n_actions=n_actions,
                tpose=tpose,
                frame_ann=not null,
                seed=int(rng.integers(2**63)),
            )
        )
    return plans


def _phrase(rng: np.random.Generator, pool: tuple[str, ...]) -> str:
    """A phrasing, the first ones more often (BABEL's label frequencies are long-tailed)."""
    w = 1.0 / (np.arange(len(pool)) + 1.0)
    return pool[int(rng.choice(len(pool), p=w / w.sum()))]


def _raw(rng: np.random.Generator, proc: str) -> str:
    """An annotator's spelling of a processed label (BABEL's raw_label vs proc_label)."""
    r = rng.random()
    if r < 0.3:
        return proc[:1].upper() + proc[1:]
    if r < 0.4:
        return proc[:1].upper() + proc[1:] + "."
    if r < 0.45:
        return proc + " "
    return proc


def _label(rng: np.random.Generator, proc: str, cats: tuple[str, ...]) -> dict[str, Any]:
    return {"raw_label": _raw(rng, proc), "proc_label": proc, "seg_id": new_uuid(rng), "act_cat": list(cats)}


def babel_record(
    plan: SeqPlan, parts: list[Part], num_frames: int, rng: np.random.Generator, annotators: list[str]
) -> dict[str, Any]:
    """One BABEL top-level record (``seq_ann``, ``frame_ann`` with transitions, or ``frame_ann: null``)."""
    pool = "zeroshot" if plan.split == "zeroshot" else "train"
    frame_labels, seq_labels = [], []
    for p in parts:
        if p.kind == "transition":
            lab = _label(rng, TRANSITION_LABEL, (TRANSITION_LABEL,))
        elif p.kind == "tpose":
            lab = _label(rng, _phrase(rng, TPOSE_PHRASINGS), ("t pose",))
        else:
            spec: ActionSpec = BY_NAME[p.action]
            phrases = spec.zeroshot if pool == "zeroshot" else spec.phrasings
            lab = _label(rng, _phrase(rng, phrases), spec.act_cat)
            # the sequence-level annotation is a separate pass: its own phrasing of the same action
            seq_labels.append(_label(rng, _phrase(rng, phrases), spec.act_cat))
        if p.kind == "tpose":
            seq_labels.append(_label(rng, lab["proc_label"], ("t pose",)))
        lab["start_t"] = round(p.start / plan.fps, 6)
        lab["end_t"] = round(p.end / plan.fps, 6)
        frame_labels.append(lab)
    order = rng.permutation(len(frame_labels))  # BABEL does not store frame labels in time order
    frame_ann = None
    if plan.frame_ann:
        frame_ann = {
            "babel_lid": new_uuid(rng),
            "anntr_id": annotators[int(rng.integers(len(annotators)))],
            "mul_act": len(frame_labels) > 1,
            "labels": [frame_labels[i] for i in order],
        }
    return {
        "babel_sid": plan.babel_sid,
        "url": f"synthmocap://render/{plan.babel_sid:06d}.mp4",
        "feat_p": plan.feat_p,
        "dur": round(num_frames / plan.fps, 6),
        "seq_ann": {
            "babel_lid": new_uuid(rng),
            "anntr_id": annotators[int(rng.integers(len(annotators)))],
            "mul_act": len(seq_labels) > 1,
            "labels": seq_labels,
        },
        "frame_ann": frame_ann,
    }


def _count(c: SplitCounts, plan: SeqPlan, parts: list[Part], num_frames: int, record: dict[str, Any]) -> None:
    c.sequences += 1
    c.frames += num_frames
    c.seconds += num_frames / plan.fps
    key = f"{plan.fps:g}"
    c.fps[key] = c.fps.get(key, 0) + 1
    actions = [p for p in parts if p.kind == "action"]
    c.actions += len(actions)
    c.transitions += sum(p.kind == "transition" for p in parts)
    c.tposes += sum(p.kind == "tpose" for p in parts)
    for p in actions:
        c.per_action[p.action] = c.per_action.get(p.action, 0) + 1
    if plan.frame_ann:
        c.seg += len(actions)
        c.pairs += len(actions) - 1
        c.excluded_segments += len(parts) - len(actions)
    else:
        c.frame_ann_null += 1
        c.seq += 1
    anns = [record["seq_ann"]] + ([record["frame_ann"]] if record["frame_ann"] else [])
    labels = [lab["proc_label"] for ann in anns for lab in ann["labels"]]
    c.labels = sorted(
        set(c.labels) | {lab for lab in labels if lab != TRANSITION_LABEL and lab not in TPOSE_PHRASINGS}
    )


def _build(
    plan: SeqPlan, geo: BodyGeometry, cfg: SynthConfig
) -> tuple[list[Part], PoseTargets, np.random.Generator]:
    rng = np.random.default_rng(plan.seed)
    motion_rng, label_rng = (np.random.default_rng(s) for s in rng.integers(2**63, size=2))
    specs = choose_actions(motion_rng, plan.n_actions, ACTIONS)
    tpose = plan.tpose and specs[0].start_state == "stand"
    parts, targets = compose_targets(geo, plan.fps, specs, motion_rng, tpose, tuple(cfg.transition_seconds))
    return parts, targets, label_rng


def _sha256(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def generate_dataset(
    cfg: SynthConfig, out: str | Path | None = None, progress: bool = True
) -> dict[str, Any]:
    """Write the dataset to ``out`` (default ``cfg.out``) and return its summary (counts, paths, timing).

    An existing dataset written by this generator is replaced atomically (generated next to it, then
    swapped); any other non-empty directory is refused.
    """
    t_start = time.perf_counter()
    check_catalogue()
    out = Path(out if out is not None else cfg.out)
    if out.exists() and any(out.iterdir()) and not (out / "provenance.json").is_file():
        raise FileExistsError(
            f"{out} exists and is not an embedded dataset (no provenance.json); "
            "refusing to overwrite it: choose another --out"
        )
    tmp = out.parent / f".{out.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    geo = body_geometry()
    plans = plan_sequences(cfg)
    annot_rng = np.random.default_rng([cfg.seed, 1])
    annotators = [new_uuid(annot_rng) for _ in range(16)]
    records: dict[str, dict[str, Any]] = {s: {} for s in SPLITS}
    counts = {s: SplitCounts() for s in SPLITS}
    files: list[Path] = []
    for subj in sorted({p.subject for p in plans}):  # AMASS keeps a body-shape file per subject
        files.append(
            write_npz(
                tmp / "amass" / DATASET / subj / "shape.npz",
                {"gender": _subject_gender(int(subj[1:]) - 1), "betas": np.zeros(16)},
            )
        )

    bar = tqdm(total=len(plans), desc="synth sequences", unit="seq", disable=not progress)
    batch: list[tuple[SeqPlan, list[Part], PoseTargets, np.random.Generator]] = []

    def flush() -> None:
        solved = solve_many([(tg, p.fps) for p, _, tg, _ in batch], geo)
        for (plan, parts, tg, label_rng), sol in zip(batch, solved):
            rep = physics_report(sol.joints.numpy(), plan.fps, sol.contact, sol.airborne, sol.axis_angle())
            bad = rep.violations()
            if bad:
                raise RuntimeError(
                    f"generated sequence {plan.name} ({[p.action for p in parts]}, seed {cfg.seed}) "
                    f"is physically implausible: {bad}"
                )
            subj_idx = int(plan.subject[1:]) - 1
            arrays = amass_arrays(
                sol.axis_angle().reshape(tg.num_frames, -1),
                sol.trans.numpy(),
                plan.fps,
                _subject_gender(subj_idx),
            )
            files.append(write_npz(tmp / "amass" / DATASET / plan.subject / f"{plan.name}_poses.npz", arrays))
            rec = babel_record(plan, parts, tg.num_frames, label_rng, annotators)
            records[plan.split][str(plan.babel_sid)] = rec
            _count(counts[plan.split], plan, parts, tg.num_frames, rec)
            bar.update(1)
        batch.clear()

    frames = 0
    for plan in plans:
        parts, tg, label_rng = _build(plan, geo, cfg)
        batch.append((plan, parts, tg, label_rng))
        frames += tg.num_frames
        if frames >= cfg.batch_frames:
            flush()
            frames = 0
    if batch:
        flush()
    bar.close()

    for split in SPLITS:
        files.append(write_json(tmp / "babel" / f"{split}.json", records[split]))
    summary = _provenance(cfg, counts, plans)
    summary["content_sha256"] = _sha256(files, tmp)
    write_json(tmp / "provenance.json", summary)
    (tmp / "README.md").write_text(_readme(summary), encoding="utf-8")
    # swap in atomically-ish: the old dataset disappears only once the new one is complete
    if out.exists():
        old = out.parent / f".{out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    elapsed = time.perf_counter() - t_start
    logger.info(
        "wrote %s: %d sequences, %.1f min of motion, %.1f MB in %.1f s",
        out,
        sum(c.sequences for c in counts.values()),
        summary["totals"]["minutes"],
        size / 1e6,
        elapsed,
    )
    return {**summary, "out": str(out), "bytes": size, "seconds": round(elapsed, 2)}


def config_record(cfg: SynthConfig) -> dict[str, Any]:
    """The configuration as stored in provenance.json (JSON types; the output folder left out)."""
    return json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k != "out"}))


def _provenance(cfg: SynthConfig, counts: dict[str, SplitCounts], plans: list[SeqPlan]) -> dict[str, Any]:
    splits = {}
    for s, c in counts.items():
        d = asdict(c)
        d["seconds"] = round(c.seconds, 3)
        d["unique_labels"] = len(c.labels)
        splits[s] = d
    train_labels = set().union(*(set(counts[s].labels) for s in ("train", "val", "test")))
    zs_labels = set(counts["zeroshot"].labels)
    totals = {
        "sequences": len(plans),
        "actions": sum(c.actions for c in counts.values()),
        "frames": sum(c.frames for c in counts.values()),
        "minutes": round(sum(c.seconds for c in counts.values()) / 60.0, 2),
    }
    return {
        "generator": GENERATOR_VERSION,
        "dataset": DATASET,
        "seed": cfg.seed,
        "config": config_record(cfg),
        "totals": totals,
        "expected_records": {
            s: {"seg": counts[s].seg, "seq": counts[s].seq, "pairs": counts[s].pairs} for s in SPLITS
        },
        "splits": splits,
        "actions": [
            {
                "name": a.name,
                "act_cat": list(a.act_cat),
                "phrasings": list(a.phrasings),
                "zeroshot": list(a.zeroshot),
            }
            for a in ACTIONS
        ],
        "zeroshot_overlap": sorted(train_labels & zs_labels),
    }


def _readme(summary: dict[str, Any]) -> str:
    t = summary["totals"]
    rows = "\n".join(
        f"| {s} | {c['sequences']} | {c['frame_ann_null']} | {c['seg']} | {c['seq']} | {c['pairs']} | "
        f"{c['seconds'] / 60:.1f} | {c['unique_labels']} |"
        for s, c in summary["splits"].items()
    )
    acts = "\n".join(
        f"| {a['name']} | {', '.join(a['phrasings'])} | {', '.join(a['zeroshot'])} |"
        for a in summary["actions"]
    )
    return f"""# {DATASET}: the embedded motion dataset

Generated by `actiongpt data synth` ({summary["generator"]}, seed {summary["seed"]}); regenerate it with the
same command and configuration to get byte-identical files. It is synthetic: procedurally animated
motions of the bundled 22-joint body (no recorded motion capture), written in the real AMASS and BABEL
formats so that the real readers, extraction rules and training code run on it unchanged.

{t["sequences"]} sequences, {t["actions"]} actions, {t["minutes"]} minutes of motion.

| split | sequences | frame_ann null | seg | seq | pairs | minutes | unique labels |
|---|---|---|---|---|---|---|---|
{rows}

## Formats
- `amass/{DATASET}/<subject>/<name>_poses.npz`: `poses` (T, 156) axis-angle (global orientation, 21 body
  joints, zero hands), `trans` (T, 3) metres with z up, `mocap_framerate` (60, 100 or 120 fps), `betas`
  (16,) zeros, `gender` (str, bytes or a 1-element array depending on the subject, as across AMASS).
  Poses and translation are float32. The root orientation follows AMASS: `Rx(+90 deg)` takes the body's
  y-up frame to the world's z-up frame, composed with the heading about world z; `trans` follows SMPL-H's
  root convention: the pelvis lands at `trans + J_pelvis_rest` (the rest offset not rotated; the bundled
  skeleton's rest pelvis is SMPL-H's, (0, -0.24, 0.028) m). Motions are made for the bundled skeleton
  (`actiongpt.motion.skeleton.bundled_skeleton`); a real SMPL-H body's other proportions differ.
- `babel/{{train,val,test,zeroshot}}.json`: the BABEL release layout (`babel_sid`, `dur`, `url`, `feat_p`,
  `seq_ann`, `frame_ann` with `raw_label`/`proc_label`/`act_cat`/`seg_id`/`start_t`/`end_t`, explicit
  `transition` segments between actions, `frame_ann: null` for some single-action sequences, t-pose
  segments at the start of some takes). Unlike BABEL, test labels are not hidden.
- `zeroshot.json` labels its sequences only with held-out phrasings that never occur in train/val/test.

## Actions (training phrasings | zero-shot phrasings)
| action | phrasings | zero-shot |
|---|---|---|
{acts}

## Licence
Generated data, no third-party content: same licence as the project.
"""
