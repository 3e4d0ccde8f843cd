"""Shared command-line handling of configs: ``-c file.yaml`` (repeatable) and ``key.sub=value``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeVar

from actiongpt import config as cfglib

T = TypeVar("T")


def add_config_args(parser: argparse.ArgumentParser, default_files: list[str] | None = None) -> None:
    parser.add_argument(
        "-c",
        "--config",
        action="append",
        default=None,
        metavar="YAML",
        help="config file(s), applied in order" + (f" (default: {default_files})" if default_files else ""),
    )
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    parser.set_defaults(_default_config_files=default_files or [])


def config_files(args: argparse.Namespace) -> list[str]:
    """The ``-c`` files given, else the command's default files."""
    return list(args.config if args.config is not None else args._default_config_files)


def resolve(cls: type[T], args: argparse.Namespace) -> T:
    return cfglib.load(cls, [Path(f) for f in config_files(args)], args.overrides)
