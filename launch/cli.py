"""The ``actiongpt`` command line, and the one way any entry point runs a command (:func:`run`).

Each stage lives in its own module under ``launch/commands/`` exposing ``register(subparsers)``;
adding a stage means adding a module and one name to ``COMMANDS``. ``python -m launch.train`` and the
submitit tasks build a parser of only the command they run and go through the same :func:`run`: the same
argument parsing, logging set-up and exit codes (``launch.errors``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from launch.errors import UserError, is_bad_input, report_bad_input

__all__ = ["COMMANDS", "UserError", "build_parser", "main", "parse_args", "run", "setup_logging"]

# Module names under launch.commands, in the order they appear in --help.
COMMANDS = ["data", "demo", "results", "describe", "shards", "train", "eval", "sample", "submit", "body"]
# Flags of every entry point, accepted anywhere on the line (the Slurm scripts pass them after the command).
GLOBAL_FLAGS = {"-v": "verbose", "--verbose": "verbose", "--debug": "debug"}


def build_parser(commands: Sequence[str] = COMMANDS, prog: str = "actiongpt") -> argparse.ArgumentParser:
    """The parser of ``commands`` (module names under ``launch.commands``); only those are imported."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Action-GPT at cluster scale: descriptions, shards, distributed training and evaluation.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="also print the traceback of a bad-input error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in commands:
        importlib.import_module(f"launch.commands.{name}").register(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args`` that also accepts ``key=value`` config overrides between options
    (``run k=4 --part 0/2``): argparse fills a ``nargs="*"`` positional from one contiguous run of
    arguments only and rejects the rest, which are appended here in their order instead. The global
    flags (``-v``, ``--debug``) are accepted anywhere."""
    argv = list(sys.argv[1:] if argv is None else argv)
    flags = {name: False for name in GLOBAL_FLAGS.values()}
    rest = []
    for a in argv:
        if a in GLOBAL_FLAGS:
            flags[GLOBAL_FLAGS[a]] = True
        else:
            rest.append(a)
    args, extra = parser.parse_known_args(rest)
    if extra:
        bad = [a for a in extra if a.startswith("-") or "=" not in a]
        if bad or not isinstance(getattr(args, "overrides", None), list):
            parser.error(f"unrecognized arguments: {' '.join(bad or extra)}")
        args.overrides = [*args.overrides, *extra]
    for name, value in flags.items():
        setattr(args, name, value or getattr(args, name, False))
    return args


def setup_logging(verbose: bool = False) -> None:
    """The log format of every entry point (a no-op when the process has set up logging already)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse, set up logging, run the chosen command; its exit code (``launch.errors``)."""
    args = parse_args(parser, None if argv is None else list(argv))
    setup_logging(args.verbose)
    try:
        rc = args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as other CLIs do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if not is_bad_input(exc):
            raise  # a bug: its traceback stays
        return report_bad_input(f"actiongpt {args.command}", exc, args.debug)
    return int(rc or 0)


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
