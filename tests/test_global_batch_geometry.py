"""The run's global batch: its split at each world size, the refusal with ways out, the opt-in, the digest."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from actiongpt.config import ConfigError
from cluster import global_batch as gb
from cluster.train_config import TrainConfig


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(model="temos", batch_size=4, **kw).resolved()


@pytest.mark.parametrize(
    ("g", "world", "bs", "steps", "micro"),
    [(8, 1, 4, 2, 4), (8, 2, 4, 1, 4), (8, 4, 2, 1, 2), (8, 3, 4, 1, 3), (16, 3, 2, 3, 2), (5, 2, 1, 2, 2)],
)
def test_split_keeps_every_rank_busy_on_each_micro_step(
    g: int, world: int, bs: int, steps: int, micro: int
) -> None:
    geo = gb.split(g, world, bs)
    assert (geo.micro_steps, geo.micro_batch) == (steps, micro)
    assert g // world >= geo.micro_steps  # no empty micro-batch anywhere


def test_resume_keeps_the_checkpoints_global_batch_on_any_world_size() -> None:
    cfg = _cfg()  # configured: 4 x world x 1
    assert gb.resolve(cfg, 2, None).global_batch == 8
    for world in (1, 2, 3, 8):
        geo = gb.resolve(cfg, world, {"global_batch": 8})
        assert geo.global_batch == 8 and geo.changed_from is None


def test_a_global_batch_that_cannot_be_kept_names_the_numbers_and_the_ways_out() -> None:
    with pytest.raises(ConfigError) as err:
        gb.resolve(_cfg(), 3, {"global_batch": 2}, "runs/x/checkpoints/step-00000003")
    text = str(err.value)
    assert "step-00000003" in text and "global batch of 2" in text and "3 ranks" in text
    assert "at most 2 ranks" in text and "allow_global_batch_change=true" in text
    with pytest.raises(ConfigError, match="global_batch_size=16"):
        gb.resolve(_cfg(global_batch_size=16), 2, {"global_batch": 8})
    geo = gb.resolve(_cfg(allow_global_batch_change=True), 3, {"global_batch": 2})
    assert (geo.global_batch, geo.changed_from) == (12, 2)


def test_digest_ignores_order_and_split() -> None:
    keys = [f"seq{i:04d}" for i in range(37)]
    whole = gb.digest(*gb.key_lanes(keys))
    shuffled = keys[:]
    random.Random(0).shuffle(shuffled)
    parts = [gb.key_lanes(shuffled[i::3]) for i in range(3)]
    assert gb.digest(sum(a for a, _ in parts), sum(b for _, b in parts)) == whole
    assert gb.digest(*gb.key_lanes([*keys[:-1], "seq9999"])) != whole


@dataclasses.dataclass
class _Action:
    lengths: torch.Tensor


@dataclasses.dataclass
class _Typed:
    keys: list[str]
    actions: tuple[_Action, ...]


def test_length_fields_and_keys_of_dict_and_typed_batches() -> None:
    n = torch.tensor([3, 5])
    assert gb.length_fields({"keys": ["a", "b"], "lengths": n, "motion": n}) == {"lengths": n}
    assert gb.batch_keys({"keys": ["a", "b"]}) == ["a", "b"]
    pairs = _Typed(["a", "b"], (_Action(n), _Action(n + 1)))
    assert sorted(gb.length_fields(pairs)) == ["lengths_0", "lengths_1"]
    assert gb.batch_keys(pairs) == ["a", "b"]
    assert list(gb.length_fields(_Typed(["a"], (_Action(n),)))) == ["lengths"]
