"""Comments in the shipped training configs agree with the Slurm scripts they name."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_teach_config_names_the_signal_lead_time_of_its_slurm_script() -> None:
    comment = re.search(r"--signal=(USR1@\d+)", (ROOT / "configs/train/teach.yaml").read_text())
    script = re.search(r"^#SBATCH --signal=(USR1@\d+)", (ROOT / "slurm/train_teach.sh").read_text(), re.M)
    assert comment and script and comment.group(1) == script.group(1)
