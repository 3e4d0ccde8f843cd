"""``actiongpt shards verify``: check every shard and text table against the manifest, and the manifest
against the folder both ways; ``check_shard_files``: the cheap part of it, run before training starts.

Manifest and folder: each split's shard entries number their samples contiguously from 0 and add up to the
split's ``num_samples``; every ``*.tar`` in the folder is a shard or text-table part of the manifest, and
every entry has its file. Per shard: the file exists with the recorded size (and sha256 unless skipped),
the tar reads to the end, keys run ``s<first_id>``, ``s<first_id+1>``, ... with the recorded count, and
every sample decodes with the right shapes, lengths, dtype and finite values.
Per text table: size, checksum, and every entry decodes. The report names the first bad sample by shard
and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from actiongpt.io_utils import file_sha256
from shards.format import ShardError, sample_key
from shards.manifest import Manifest
from shards.reader import TextTable, decode_sample, iter_raw


@dataclass
class VerifyReport:
    splits: dict[str, int] = field(default_factory=dict)  # samples checked per split
    shards: int = 0
    tables: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        counts = ", ".join(f"{s}: {n} samples" for s, n in self.splits.items())
        head = f"{self.shards} shards, {self.tables} text-table parts ({counts})"
        if self.ok:
            return f"OK: {head}"
        return f"FAILED: {len(self.problems)} problem(s) in {head}; first: {self.problems[0]}"


def _check_file(path: Path, size: int, sha: str, checksum: bool, what: str) -> str | None:
    if not path.is_file():
        return f"{what} {path.name}: file missing"
    actual = path.stat().st_size
    if actual != size:
        return f"{what} {path.name}: {actual} bytes, manifest says {size} (truncated or replaced)"
    if checksum and file_sha256(path) != sha:
        return f"{what} {path.name}: sha256 differs from the manifest (corrupt or replaced)"
    return None


def manifest_problems(manifest: Manifest, split: str) -> list[str]:
    """Entries of ``split`` that do not add up: sample ids with gaps or overlaps, counts that differ from
    ``num_samples`` or from the per-sample lengths (an entry removed or edited by hand)."""
    problems = []
    where = f"{manifest.path}, split {split!r}"
    next_id = 0
    for info in manifest.shards(split):
        if info.first_id != next_id:
            gap = "missing" if info.first_id > next_id else "listed twice"
            problems.append(
                f"{where}: shard {info.name} starts at sample {info.first_id}, expected {next_id} "
                f"(samples {min(next_id, info.first_id)}..{max(next_id, info.first_id) - 1} {gap}: "
                "a shard entry was removed or edited)"
            )
        if len(info.lengths) != info.count:
            problems.append(
                f"{where}: shard {info.name} has {len(info.lengths)} sample lengths for {info.count} samples"
            )
        next_id = info.first_id + info.count
    if next_id != manifest.num_samples(split):
        problems.append(
            f"{where}: shard entries cover samples 0..{next_id - 1}, the split has "
            f"{manifest.num_samples(split)} (a shard entry was removed or added)"
        )
    return problems


def unlisted_tars(manifest: Manifest) -> list[str]:
    """``*.tar`` files in the shard folder that no split of the manifest lists (stale or left out)."""
    listed = {
        name
        for split in manifest.splits
        for name in [s.name for s in manifest.shards(split)]
        + [p["name"] for p in manifest.table_parts(split)]
    }
    return sorted(p.name for p in manifest.root.glob("*.tar") if p.name not in listed)


def check_shard_files(manifest: Manifest, splits: list[str], *, digests: bool = False) -> None:
    """Before training: every shard and text-table part of ``splits`` exists with the manifest's size (and
    sha256 with ``digests``) and the entries add up. Raises ``ShardError`` naming the bad shard(s)."""
    problems = []
    for split in splits:
        problems += manifest_problems(manifest, split)
        for info in manifest.shards(split):
            problem = _check_file(manifest.root / info.name, info.bytes, info.sha256, digests, "shard")
            if problem:
                problems.append(problem)
        for p in manifest.table_parts(split):
            problem = _check_file(
                manifest.root / p["name"], int(p["bytes"]), p["sha256"], digests, "text table"
            )
            if problem:
                problems.append(problem)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ShardError(
            f"{manifest.root}: {problems[0]}{more}; check with `actiongpt shards verify {manifest.root}`"
        )


def verify_shards(
    root: str | Path, splits: list[str] | None = None, *, checksum: bool = True, progress: bool = False
) -> VerifyReport:
    """Check the shards under ``root``; never raises for bad data, returns the problems instead."""
    manifest = Manifest.load(root)
    report = VerifyReport()
    report.problems += [f"{name}: in the folder but not in the manifest" for name in unlisted_tars(manifest)]
    for split in splits or manifest.splits:
        checked = 0
        report.problems += manifest_problems(manifest, split)
        infos = manifest.shards(split)
        iterator = infos
        if progress:
            from tqdm import tqdm

            iterator = tqdm(infos, desc=f"verify {split}", unit="shard")
        for info in iterator:
            report.shards += 1
            path = manifest.root / info.name
            problem = _check_file(path, info.bytes, info.sha256, checksum, "shard")
            if problem:
                report.problems.append(problem)
                continue
            n = 0
            try:
                for key, raw in iter_raw(path):
                    want = sample_key(info.first_id + n)
                    if key != want:
                        raise ShardError(f"shard {info.name}, sample {key}: expected key {want}")
                    if n >= info.count:
                        raise ShardError(
                            f"shard {info.name}, sample {key}: more samples than the manifest's {info.count}"
                        )
                    d = decode_sample(key, raw, info.name, manifest, split)
                    if d.motion.shape[0] != info.lengths[n]:
                        raise ShardError(
                            f"shard {info.name}, sample {key}: {d.motion.shape[0]} frames, manifest "
                            f"says {info.lengths[n]}"
                        )
                    n += 1
                if n != info.count:
                    raise ShardError(
                        f"shard {info.name}: {n} samples, manifest says {info.count} "
                        f"(last key {sample_key(info.first_id + n - 1) if n else 'none'})"
                    )
            except ShardError as exc:
                report.problems.append(str(exc))
            checked += n
        for p in manifest.table_parts(split):
            report.tables += 1
            problem = _check_file(
                manifest.root / p["name"], int(p["bytes"]), p["sha256"], checksum, "text table"
            )
            if problem:
                report.problems.append(problem)
        if manifest.text["storage"] == "table" and not any("text table" in x for x in report.problems):
            table = TextTable(manifest, split, cache_mb=0)
            try:
                for lid in range(len(table.labels)):
                    try:
                        table.block(lid)
                    except ShardError as exc:
                        report.problems.append(str(exc))
            finally:
                table.close()
        report.splits[split] = checked
    return report
