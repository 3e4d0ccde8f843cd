"""The typed config system: YAML + overrides -> dataclasses, with loud errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from actiongpt import config as cfglib
from actiongpt.config import ConfigError


@dataclass
class Inner:
    latent_dim: int = 256
    dropout: float = 0.1
    activation: Literal["gelu", "relu"] = "gelu"


@dataclass
class Outer:
    name: str = "teach"
    lr: float = 7e-5
    layers: list[int] = field(default_factory=lambda: [1, 2])
    out: Path | None = None
    model: Inner = field(default_factory=Inner)
    tags: dict[str, str] = field(default_factory=dict)


def test_defaults_files_and_overrides_apply_in_order(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("name: temos\nmodel:\n  latent_dim: 64\n  dropout: 0.2\n")
    b = tmp_path / "b.yaml"
    b.write_text("model:\n  latent_dim: 32\n")
    cfg = cfglib.load(Outer, [a, b], ["model.dropout=0.0", "lr=1e-4", "out=/tmp/x", "layers=[3, 4]"])
    assert cfg.name == "temos"
    assert cfg.model.latent_dim == 32
    assert cfg.model.dropout == 0.0
    assert cfg.lr == pytest.approx(1e-4)
    assert cfg.out == Path("/tmp/x")
    assert cfg.layers == [3, 4]
    assert cfg.model.activation == "gelu"


def test_yaml_scientific_notation_string_is_a_float() -> None:
    # PyYAML reads "7e-5" (no dot) as a string; the loader must still accept it for a float field.
    cfg = cfglib.from_dict(Outer, yaml.safe_load("lr: 7e-5"))
    assert cfg.lr == pytest.approx(7e-5)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"model": {"num_head": 6}}, "model.num_head"),  # the original TEMOS typo must not be swallowed
        ({"model": {"latent_dim": "big"}}, "model.latent_dim"),
        ({"model": {"activation": "tanh"}}, "model.activation"),
        ({"layers": [1, "x"]}, "layers[1]"),
        ({"model": 3}, "model"),
    ],
)
def test_bad_keys_and_types_name_the_key(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        cfglib.from_dict(Outer, data)


def test_bad_override_syntax() -> None:
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        cfglib.load(Outer, [], ["lr"])
    with pytest.raises(ConfigError, match="empty key"):
        cfglib.load(Outer, [], ["model..x=1"])


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        cfglib.load(Outer, [tmp_path / "nope.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        cfglib.load(Outer, [bad])


def test_save_round_trip(tmp_path: Path) -> None:
    cfg = cfglib.load(Outer, [], ["model.latent_dim=8", "tags.a=b", "out=/data"])
    path = cfglib.save(cfg, tmp_path / "run" / "config.yaml")
    again = cfglib.load(Outer, [path])
    assert again == cfg
