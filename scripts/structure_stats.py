"""Structure counts of the product packages, for a working tree or any git revision.

    python scripts/structure_stats.py                 # the working tree
    python scripts/structure_stats.py --rev main      # a revision (read with git, nothing checked out)
    python scripts/structure_stats.py --json          # machine-readable

- ``modules``: Python files in actiongpt/, shards/, cluster/ and launch/;
- ``over_400_lines``: those longer than 400 lines (listed);
- ``public_names``: top-level functions, classes and assignments whose name does not start with ``_``;
- ``walk_files``: the Python files named (in backticks) in the "One sample through the system" section of
  docs/architecture.md, each checked to exist; 0 when the revision has no such section.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

PACKAGES = ("actiongpt", "shards", "cluster", "launch")
WALK_DOC = "docs/architecture.md"
WALK_HEADING = "## One sample through the system"
LONG = 400


class Tree:
    """Files of the working tree (``rev`` None) or of a git revision."""

    def __init__(self, root: Path, rev: str | None):
        self.root, self.rev = root, rev

    def files(self) -> list[str]:
        if self.rev is None:  # tracked and new files, as they are on disk
            cmd = ["ls-files", "--cached", "--others", "--exclude-standard"]
        else:
            cmd = ["ls-tree", "-r", "--name-only", self.rev]
        out = subprocess.run(["git", "-C", str(self.root), *cmd], check=True, capture_output=True, text=True)
        names = sorted(set(out.stdout.split()))
        return names if self.rev is not None else [f for f in names if (self.root / f).is_file()]

    def read(self, path: str) -> str | None:
        if self.rev is None:
            p = self.root / path
            return p.read_text(encoding="utf-8") if p.is_file() else None
        out = subprocess.run(
            ["git", "-C", str(self.root), "show", f"{self.rev}:{path}"], capture_output=True, text=True
        )
        return out.stdout if out.returncode == 0 else None


def public_names(source: str) -> list[str]:
    names: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                elts = t.elts if isinstance(t, ast.Tuple) else [t]
                names += [e.id for e in elts if isinstance(e, ast.Name)]
    return [n for n in names if not n.startswith("_")]


def walk_files(tree: Tree, existing: set[str]) -> tuple[list[str], list[str]]:
    """(files named in the walk section, those of them that do not exist)."""
    doc = tree.read(WALK_DOC)
    if doc is None or WALK_HEADING not in doc:
        return [], []
    section = doc.split(WALK_HEADING, 1)[1].split("\n## ", 1)[0]
    named = sorted(set(re.findall(r"`([\w./-]+\.py)`", section)))
    return named, [f for f in named if f not in existing]


def stats(tree: Tree) -> dict:
    files = tree.files()
    modules = [f for f in files if f.endswith(".py") and f.split("/", 1)[0] in PACKAGES]
    long, names = [], 0
    for path in modules:
        source = tree.read(path) or ""
        lines = source.count("\n")
        if lines > LONG:
            long.append((path, lines))
        names += len(public_names(source))
    walk, missing = walk_files(tree, set(files))
    return {
        "rev": tree.rev or "working tree",
        "modules": len(modules),
        "over_400_lines": len(long),
        "over_400_lines_files": sorted(long, key=lambda x: -x[1]),
        "public_names": names,
        "walk_files": len(walk),
        "walk_missing": missing,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rev", help="a git revision (default: the working tree)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    s = stats(Tree(root, args.rev))
    if args.json:
        print(json.dumps(s, indent=1))
    else:
        print(
            f"{s['rev']}: {s['modules']} modules, {s['over_400_lines']} over {LONG} lines, "
            f"{s['public_names']} public top-level names, {s['walk_files']} files on the sample walk"
        )
        for path, n in s["over_400_lines_files"]:
            print(f"  {n:5d}  {path}")
    if s["walk_missing"]:
        print(f"{WALK_DOC} names files that do not exist: {s['walk_missing']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
