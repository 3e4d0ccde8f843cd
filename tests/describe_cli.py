"""Run the ``describe`` stage alone (tests and the kill -9 subprocess), as ``actiongpt describe ...``
would, without importing the other stages' command modules."""

from __future__ import annotations

import argparse
import logging
import sys

from launch.commands import describe
from launch.errors import bad_input_errors


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="actiongpt")
    sub = parser.add_subparsers(dest="command", required=True)
    describe.register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except bad_input_errors() as exc:
        print(f"actiongpt {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(cli(sys.argv[1:]))
