"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

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
