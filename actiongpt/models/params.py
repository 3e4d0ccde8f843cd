"""Parameter counts of the backbones at the paper configuration: ``python -m actiongpt.models.params``.

Prints one JSON object per model. The frozen text encoder is not part of the models (its embeddings are
precomputed), so ``frozen`` is 0; the original logged 66,362,880 frozen DistilBERT parameters on top.
"""

from __future__ import annotations

import argparse
import json

from actiongpt.models.configs import MotionClipConfig, TeachConfig, TemosConfig
from actiongpt.models.registry import build_model


def paper_counts(text_dim: int = 768, clip_dim: int = 512) -> list[dict]:
    """Trainable/frozen counts of TEMOS, TEACH (with and without the original's dead stack), MotionCLIP."""
    rows = []
    for label, name, cfg, dim in (
        ("temos", "temos", TemosConfig.paper(), text_dim),
        ("teach", "teach", TeachConfig.paper(), text_dim),
        ("teach+unused_motion_stack", "teach", TeachConfig(unused_motion_stack=True), text_dim),
        ("motionclip", "motionclip", MotionClipConfig(latent_dim=clip_dim), clip_dim),
    ):
        count = build_model(name, cfg, dim).count_parameters()
        rows.append({"model": label, "text_dim": dim, "trainable": count.trainable, "frozen": count.frozen})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--text-dim", type=int, default=768, help="token width of the text embedder (TEMOS/TEACH)"
    )
    parser.add_argument("--clip-dim", type=int, default=512, help="pooled width for MotionCLIP's latent")
    args = parser.parse_args(argv)
    for row in paper_counts(args.text_dim, args.clip_dim):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
