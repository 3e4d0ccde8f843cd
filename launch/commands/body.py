"""``actiongpt body``: SMPL-H body model files.

    actiongpt body convert SMPLH_MALE.pkl smplh/male/model.npz

``convert`` reads a ``.pkl`` body model once with the restricted unpickler (numpy arrays, scipy sparse
matrices and the arrays of chumpy objects; any other global is refused, so the file cannot run code; no
chumpy needed), checks it is an SMPL-H model, and writes its arrays to an ``.npz`` that every stage reads
with ``allow_pickle=False``. Sparse matrices are stored dense. Exit codes: 0 written; 2 the file is
unreadable, refused or not an SMPL-H model (nothing is written).
"""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import numpy as np

from launch.errors import UserError


def convert(src: Path, dst: Path) -> dict[str, np.ndarray]:
    """Write the arrays of the body model ``src`` (.pkl) to ``dst`` (.npz) atomically; return them."""
    from actiongpt.motion.body_pickle import load_body_arrays
    from actiongpt.motion.smplh import BodyModelError, load_smplh_arrays

    if src.suffix.lower() != ".pkl" or dst.suffix.lower() != ".npz":
        raise UserError(f"convert SRC.pkl DST.npz, got {src} -> {dst}")
    if not src.is_file():
        raise UserError(f"{src}: no such file")
    if dst.resolve() == src.resolve():
        raise UserError(f"{dst}: would overwrite the source")
    load_smplh_arrays(src)  # the SMPL-H keys and shapes, with the file named in any error
    try:
        raw = load_body_arrays(src)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise BodyModelError(f"{src}: cannot read SMPL-H model file: {exc}") from exc
    arrays = {k: np.asarray(v.toarray() if hasattr(v, "toarray") else v) for k, v in raw.items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return arrays


def cmd_convert(args: argparse.Namespace) -> int:
    arrays = convert(Path(args.src), Path(args.dst))
    print(f"wrote {args.dst}: {len(arrays)} arrays ({', '.join(sorted(arrays))})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "body",
        help="SMPL-H body model files (convert a .pkl once to .npz, without chumpy or trusting the pickle)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="body_command", metavar="SUBCOMMAND", required=True)
    c = sub.add_parser("convert", help="SRC.pkl -> DST.npz (arrays only, read with a restricted unpickler)")
    c.add_argument("src", help="SMPL-H .pkl body model (e.g. SMPLH_MALE.pkl)")
    c.add_argument("dst", help="output .npz (e.g. smplh/male/model.npz)")
    c.set_defaults(func=cmd_convert)
