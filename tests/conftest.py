"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def slurm_cluster():
    """A usable Slurm cluster (see tests/dist_helpers/slurm.py), or skip with the reason it is not usable
    (in CI, CI=true, where .ci/run starts one, a missing cluster fails instead)."""
    from tests.dist_helpers import slurm

    info, reason = slurm.probe()
    if info is None:
        _skip_or_fail(f"Slurm tests skipped: {reason}. To run them, start a cluster as in README.md (Tests)")
    return info


@pytest.fixture(scope="session")
def multinode_cluster(slurm_cluster):
    """The multi-node cluster of scripts/slurm/multinode_cluster.sh (2+ nodes, each a network namespace)."""
    from tests.dist_helpers import slurm

    found, reason = slurm.netns_cluster()
    if found is None or len(slurm_cluster.nodes) < 2:
        why = reason or f"the cluster has {len(slurm_cluster.nodes)} node(s)"
        _skip_or_fail(
            f"multi-node Slurm tests skipped: {why}. To run them (as root): "
            "SLURM_ROOT=/tmp/agpt-mn bash scripts/slurm/multinode_cluster.sh start, see README.md (Tests)"
        )
    return found


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def embedded_shards(request, tmp_path_factory):
    """TEACH pair shards (train, val) of the embedded dataset with the shipped descriptions and MiniLM, for
    the Slurm and submitit tests: built once (1-3 minutes on 2 cores, most of it embedding), then cached
    across sessions in pytest's cache folder (.pytest_cache, inside the repository, where Slurm jobs can
    read it) under a hash of their inputs. See tests/dist_helpers/embedded_shards.py."""
    from tests.dist_helpers import embedded_shards

    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider: build per session
    root = cache.mkdir("embedded-shards") if cache is not None else tmp_path_factory.mktemp("embedded-shards")
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")

    def log(msg: str) -> None:  # past output capture: the one-time cost belongs in the session's output
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"[embedded_shards] {msg}")

    return embedded_shards.build(Path(root), log)


@pytest.fixture
def no_unpickling(monkeypatch):
    """Every way to unpickle (pickle's readers, torch.load) fails the test when called: for the commands
    that read an export, which is safe to receive from others because nothing in it is unpickled."""
    import pickle

    import torch

    def refuse(name: str):
        def call(*args, **kwargs):
            raise AssertionError(f"{name} was called while loading an export")

        return call

    class RefusingUnpickler(pickle.Unpickler):  # a class: modules imported meanwhile may subclass it
        def __init__(self, *args, **kwargs):
            raise AssertionError("pickle.Unpickler was used while loading an export")

    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)
    for owner, name in ((pickle, "load"), (pickle, "loads"), (torch, "load"), (torch.serialization, "load")):
        monkeypatch.setattr(owner, name, refuse(f"{owner.__name__}.{name}"))
