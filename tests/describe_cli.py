"""Run the ``describe`` stage alone (tests and the kill -9 subprocess), as ``actiongpt describe ...``
would, without importing the other stages' command modules."""

from __future__ import annotations

import logging
import sys

from launch.cli import build_parser, run


def cli(argv: list[str]) -> int:
    return run(build_parser(["describe"]), argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(cli(sys.argv[1:]))
