"""The command line: every registered stage has help; user errors exit 2 without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from launch.cli import COMMANDS, build_parser


def test_every_command_is_registered_with_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)
    for name in COMMANDS:
        assert sub.choices[name].format_help()


def test_main_help_runs_as_console_script() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "launch.cli", "--help"], capture_output=True, text=True, check=True
    )
    for name in COMMANDS:
        assert name in out.stdout


def test_no_command_is_an_error() -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([])
    assert exc.value.code == 2


def test_config_overrides_may_come_before_between_and_after_options() -> None:
    from launch.cli import parse_args

    args = parse_args(build_parser(), ["results", "seeds=[1]", "--list", "k=2", "--out", "x", "jobs=1"])
    assert args.overrides == ["seeds=[1]", "k=2", "jobs=1"] and args.list and args.out == "x"
    for bad in (["results", "--list", "--bogus"], ["results", "seeds=[1]", "--list", "notanoverride"]):
        with pytest.raises(SystemExit) as exc:
            parse_args(build_parser(), bad)
        assert exc.value.code == 2
    with pytest.raises(SystemExit):  # a command without overrides gets no stray key=value either
        parse_args(build_parser(), ["eval", "table", "d", "--headers", "a", "b", "x=1"])
