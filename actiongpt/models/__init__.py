"""The three text-to-motion backbones Action-GPT plugs into: TEMOS, TEACH and MotionCLIP."""

from actiongpt.models.base import MotionModel, ParameterCount
from actiongpt.models.configs import MotionClipConfig, TeachConfig, TemosConfig
from actiongpt.models.generate import MotionOutput, generate
from actiongpt.models.inputs import TextBatch
from actiongpt.models.motionclip import MotionCLIP
from actiongpt.models.registry import (
    BACKBONES,
    MODEL_NAMES,
    BackboneSpec,
    backbone,
    build_model,
    config_class,
)
from actiongpt.models.sampling import seed_from_key
from actiongpt.models.teach import TEACH
from actiongpt.models.temos import TEMOS

__all__ = [
    "BACKBONES",
    "MODEL_NAMES",
    "TEACH",
    "TEMOS",
    "BackboneSpec",
    "MotionCLIP",
    "MotionClipConfig",
    "MotionModel",
    "MotionOutput",
    "ParameterCount",
    "TeachConfig",
    "TemosConfig",
    "TextBatch",
    "backbone",
    "build_model",
    "config_class",
    "generate",
    "seed_from_key",
]
