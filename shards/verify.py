"""``actiongpt shards verify``: check every shard and text table against the manifest.

Per shard: the file exists with the recorded size (and sha256 unless skipped), the tar reads to the end,
keys run ``s<first_id>``, ``s<first_id+1>``, ... with the recorded count, and every sample decodes with the
right shapes, lengths, dtype and finite values. Per text table: size, checksum, and every entry decodes.
The report names the first bad sample by shard and key.
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


def verify_shards(
    root: str | Path, splits: list[str] | None = None, *, checksum: bool = True, progress: bool = False
) -> VerifyReport:
    """Check the shards under ``root``; never raises for bad data, returns the problems instead."""
    manifest = Manifest.load(root)
    report = VerifyReport()
    for split in splits or manifest.splits:
        checked = 0
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
