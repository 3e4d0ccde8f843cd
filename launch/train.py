"""``python -m launch.train [-c cfg.yaml ...] [key=value ...]``: the same as ``actiongpt train``.

The module form is what torchrun and srun start on every rank:
``torchrun --nproc_per_node=4 -m launch.train -c configs/train/teach.yaml``. It builds only the ``train``
command (not the whole CLI), so every rank imports no more than training needs; parsing, logging and exit
codes are the CLI's (:func:`launch.cli.run`).
"""

from __future__ import annotations

import sys

from launch.cli import build_parser, run


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run(build_parser(["train"], prog="python -m launch.train"), ["train", *argv])


if __name__ == "__main__":
    sys.exit(main())
