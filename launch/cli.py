"""The ``actiongpt`` command line.

Each stage lives in its own module under ``launch/commands/`` exposing ``register(subparsers)``;
adding a stage means adding a module and one name to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from launch.errors import UserError, bad_input_errors  # UserError re-exported: commands import it here

__all__ = ["COMMANDS", "UserError", "build_parser", "main", "parse_args"]

# Module names under launch.commands, in the order they appear in --help.
COMMANDS = ["data", "demo", "results", "describe", "shards", "train", "eval", "sample", "submit", "body"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actiongpt",
        description="Action-GPT at cluster scale: descriptions, shards, distributed training and evaluation.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"launch.commands.{name}").register(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args`` that also accepts ``key=value`` config overrides between options
    (``run k=4 --part 0/2``): argparse fills a ``nargs="*"`` positional from one contiguous run of
    arguments only and rejects the rest, which are appended here in their order instead."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        bad = [a for a in extra if a.startswith("-") or "=" not in a]
        if bad or not isinstance(getattr(args, "overrides", None), list):
            parser.error(f"unrecognized arguments: {' '.join(bad or extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        rc = args.func(args)
    except bad_input_errors() as exc:
        print(f"actiongpt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
