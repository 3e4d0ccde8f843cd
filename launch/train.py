"""``python -m launch.train [-c cfg.yaml ...] [key=value ...]``: the same as ``actiongpt train``.

The module form is what torchrun and srun start on every rank:
``torchrun --nproc_per_node=4 -m launch.train -c configs/train/teach.yaml``. It builds only the ``train``
subcommand (not the whole CLI), so every rank imports no more than training needs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from launch.cli import parse_args
from launch.commands import train as train_command
from launch.errors import bad_input_errors


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose") for a in argv)  # the CLI's global flag, accepted anywhere here
    argv = [a for a in argv if a not in ("-v", "--verbose")]
    parser = argparse.ArgumentParser(
        prog="python -m launch.train", description="train (see: actiongpt train -h)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train_command.register(sub)
    args = parse_args(parser, ["train", *argv])
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except bad_input_errors() as exc:
        print(f"actiongpt train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
