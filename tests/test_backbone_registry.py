"""Every backbone is one complete record: what the rest of the project reads about it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from actiongpt.config import ConfigError
from actiongpt.models.registry import BACKBONES, backbone, build_model, display_name
from cluster.train_config import TrainConfig, load_train_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_record_is_complete_and_its_train_config_resolves(name: str) -> None:
    spec = BACKBONES[name]
    assert spec.name == name and spec.model_cls.name == name and spec.display_name
    for preset in ("paper", "tiny"):
        cfg = getattr(spec.config_cls, preset)()
        assert float(cfg.lr) > 0, preset
    if spec.losses is not None:
        assert dataclasses.is_dataclass(spec.losses)
    model = build_model(name, spec.config_cls.tiny(), text_dim=16)
    assert isinstance(model, spec.model_cls) and model.text_dim == 16
    assert spec.text_dim(pooled_dim=512, token_dim=384) == (512 if spec.text == "pooled" else 384)
    resolved = load_train_config([REPO / f"configs/train/{name}.yaml"], ["preset=tiny", "lr=null"])
    assert resolved.model == name and resolved.lr == spec.config_cls.tiny().lr
    defaults = TrainConfig(model=name).resolved()  # nothing set: the record's and the paper preset's
    assert (defaults.lr, defaults.batch_size, defaults.epochs) == (
        spec.config_cls.paper().lr,
        spec.batch_size,
        spec.epochs,
    )


def test_lookup_is_case_insensitive_and_names_the_choices() -> None:
    assert backbone("TEACH") is BACKBONES["teach"] and display_name("motionclip") == "MotionCLIP"
    assert display_name("toy") == "toy"  # a model outside the registry is shown as given
    with pytest.raises(ConfigError, match=r"unknown model 'gpt9'; choose from \['temos', 'teach'"):
        backbone("gpt9")
