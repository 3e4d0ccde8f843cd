"""Shared pytest fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def slurm_cluster():
    """A usable Slurm cluster (see tests/dist_helpers/slurm.py), or skip with the reason it is not usable."""
    from tests.dist_helpers import slurm

    info, reason = slurm.probe()
    if info is None:
        pytest.skip(
            f"Slurm tests skipped: {reason}. To run them, start a one-node cluster as in README.md (Tests)"
        )
    return info
