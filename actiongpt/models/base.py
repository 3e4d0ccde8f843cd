"""What the three backbones share: feature statistics for denormalisation, parameter counts, FK."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from actiongpt.motion.skeleton import Skeleton, bundled_skeleton


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    frozen: int

    @property
    def total(self) -> int:
        return self.trainable + self.frozen


class MotionModel(nn.Module):
    """Base class: holds the train-split feature mean/std as buffers (saved with the weights).

    Models see NORMALISED features; anything physical (rotations, joints, FK losses, generation output)
    needs the statistics, set once with ``set_feature_stats`` (the shards manifest records them).
    """

    name: str = "model"
    # The losses normalise over the whole global batch under a step context (actiongpt.models.step_context):
    # the trainer then sums micro-batch shares instead of averaging micro-batch means.
    global_batch_loss: bool = True

    def __init__(self, nfeats: int, text_dim: int) -> None:
        super().__init__()
        if text_dim <= 0:
            raise ValueError(f"text_dim must be positive, got {text_dim}")
        self.nfeats = nfeats
        self.text_dim = text_dim
        self.register_buffer("feature_mean", torch.zeros(nfeats))
        self.register_buffer("feature_std", torch.ones(nfeats))
        self.register_buffer("feature_stats_set", torch.tensor(False))
        self._skeleton: Skeleton | None = None

    # -- statistics -----------------------------------------------------------------------------------
    def set_feature_stats(self, mean: Tensor, std: Tensor) -> None:
        """Store the per-dimension mean/std the training features were normalised with."""
        mean = torch.as_tensor(mean, dtype=torch.float32)
        std = torch.as_tensor(std, dtype=torch.float32)
        for name, t in (("mean", mean), ("std", std)):
            if tuple(t.shape) != (self.nfeats,):
                raise ValueError(f"feature {name} must have shape ({self.nfeats},), got {tuple(t.shape)}")
            if not bool(torch.isfinite(t).all()):
                raise ValueError(f"feature {name} holds non-finite values")
        if bool((std < 0).any()):
            raise ValueError("feature std holds negative values")
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)
        self.feature_stats_set.fill_(True)

    def require_feature_stats(self, why: str) -> None:
        if not bool(self.feature_stats_set):
            raise RuntimeError(
                f"{self.name}: {why} needs the feature mean/std; call set_feature_stats(mean, std) with the "
                "train-split statistics (recorded in the shards manifest) first"
            )

    def denormalize(self, features: Tensor) -> Tensor:
        """Normalised (..., nfeats) -> physical features (what ``features_to_rotations`` expects)."""
        from actiongpt.motion.features import denormalize

        self.require_feature_stats("denormalising features")
        return denormalize(
            features, self.feature_mean.to(features.dtype), self.feature_std.to(features.dtype)
        )

    def features_to_motion(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised features (..., T, nfeats) -> (rotmats (..., T, 22, 3, 3), trans (..., T, 3))."""
        from actiongpt.motion.features import features_to_rotations

        return features_to_rotations(self.denormalize(features))

    # -- body ------------------------------------------------------------------------------------------
    @property
    def skeleton(self) -> Skeleton:
        """The skeleton for forward kinematics (the bundled body unless ``set_skeleton`` was called)."""
        if self._skeleton is None:
            self._skeleton = bundled_skeleton()
        return self._skeleton

    def set_skeleton(self, skeleton: Skeleton) -> None:
        self._skeleton = skeleton

    # -- bookkeeping -----------------------------------------------------------------------------------
    def count_parameters(self) -> ParameterCount:
        """Trainable and frozen parameter counts (the frozen text embedder is not part of the model)."""
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        return ParameterCount(trainable=trainable, frozen=frozen)
