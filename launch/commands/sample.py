"""``actiongpt sample``: zero-shot generation from free text, with a render.

    actiongpt sample --checkpoint runs/teach-agpt --text "act like a dog" --seconds 4
    actiongpt sample --checkpoint runs/teach-agpt --text "walk forward" --text "sit down" --seconds 3

A phrase is looked up in the description caches (the shipped one and the user cache
``<out>/descriptions.jsonl``); on a miss the describe backend of ``--describe-config`` writes its descriptions
into the user cache (never into the shipped asset). Descriptions are embedded with the checkpoint's embedder
and aggregated as in training.
Several ``--text`` make one sequence for TEACH, one motion each otherwise. Writes ``<out>/<slug>.gif`` and
``<out>/<slug>.npz`` (features, rotmats, trans, joints) per motion and prints their paths.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from actiongpt import config as cfglib
from launch.errors import UserError

log = logging.getLogger("actiongpt.sample")

SHIPPED_CACHE = "actiongpt/assets/descriptions/embedded_smollm2.jsonl"
DEFAULT_DESCRIBE_CONFIG = "configs/describe/local_smollm2.yaml"
DEFAULT_SECONDS = 4.0
FPS = 30.0


def slugify(text: str, max_len: int = 60) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:max_len].rstrip("_") or "motion"


def embedder_kind(meta: dict[str, Any]) -> tuple[str, str | None]:
    """(kind, model) for ``build_embedder`` from the checkpoint's recorded embedder name."""
    name = meta.get("embedder")
    if not name:
        if int(meta.get("text_dim") or 0) == 384:  # the embedded setup: all-MiniLM-L6-v2
            return "minilm", None
        raise UserError("the checkpoint does not record its embedder (meta 'embedder'); cannot embed text")
    low = str(name).lower()
    if "minilm" in low:
        return "minilm", None if low == "all-minilm-l6-v2" else str(name)
    if "clip" in low:
        return "clip", str(name)
    if "distilbert" in low:
        return "distilbert", str(name)
    raise UserError(f"unknown embedder {name!r} recorded in the checkpoint")


def _seconds(args: argparse.Namespace, n: int) -> list[float]:
    given = args.seconds or [DEFAULT_SECONDS]
    if len(given) == 1:
        given = given * n
    if len(given) != n:
        raise UserError(f"--seconds given {len(given)} times for {n} phrases: give one for all or one each")
    if any(s <= 0 for s in given):
        raise UserError(f"--seconds must be positive, got {given}")
    return given


def _miss_handler(describe_config: str, user_cache: Path, k: int | None) -> Any:
    """on_miss for CacheFirstDescriber: run the describe backend for the missing phrases."""
    from actiongpt.text.describe_config import DescribeConfig, build_backend, endpoint_and_model

    def on_miss(phrases: list[str]) -> None:
        from actiongpt.text.cache import DescriptionCache
        from actiongpt.text.describe import run_requests
        from actiongpt.text.keys import plan_requests
        from actiongpt.text.prompt import resolve_template

        hint = (
            f"generate them with: printf '%s\\n' {' '.join(repr(p) for p in phrases)} > phrases.txt && "
            f"actiongpt describe run -c {describe_config} labels=[phrases.txt] out_dir=runs/describe_phrases "
            f"&& actiongpt describe merge runs/describe_phrases, then pass "
            "--descriptions runs/describe_phrases/descriptions.jsonl"
        )
        try:
            cfg = cfglib.load(DescribeConfig, [describe_config])
            want = max(cfg.k, k or 0)
            endpoint, model = endpoint_and_model(cfg)
            backend, _secret = build_backend(cfg, model)
        except FileNotFoundError as exc:
            raise UserError(f"phrases {phrases} are not in the description caches and {exc}; {hint}") from exc
        except Exception as exc:
            raise UserError(
                f"phrases {phrases} are not in the description caches and no LLM is available via "
                f"{describe_config} ({type(exc).__name__}: {exc}); {hint}"
            ) from exc
        log.info(
            "describing %d new phrase(s) with %s (k = %d) into %s", len(phrases), endpoint, want, user_cache
        )
        requests = plan_requests(
            phrases,
            want,
            endpoint=endpoint,
            model=model,
            template=resolve_template(cfg.prompt),
            sampling=cfg.sampling,
            global_seed=cfg.seed,
        )
        cfg.run.progress = False
        with DescriptionCache(user_cache, []) as cache:
            summary = run_requests([r for r in requests if r.key not in cache], backend, cache, None, cfg.run)
        if summary.fatal:
            raise UserError(f"describing {phrases} stopped: {summary.fatal}; {hint}")

    return on_miss


def cmd_sample(args: argparse.Namespace) -> int:
    from actiongpt.models.generate import generate
    from actiongpt.models.registry import backbone
    from actiongpt.render import Clip, save_gif
    from actiongpt.text.embedder_registry import build_embedder
    from actiongpt.text.phrase_embed import CacheFirstDescriber, PhraseError, make_embed_fn, normalize_phrase
    from cluster.eval_model import load_model

    ckpt = Path(args.checkpoint)
    if not ckpt.exists():
        raise UserError(f"checkpoint {ckpt} does not exist (give an export, a checkpoint or a run dir)")
    if not args.text:
        raise UserError("give at least one --text PHRASE")
    if args.num_samples < 1:
        raise UserError(f"--num-samples must be >= 1, got {args.num_samples}")
    try:
        phrases = [normalize_phrase(t) for t in args.text]
    except PhraseError as exc:
        raise UserError(str(exc)) from exc
    seconds = _seconds(args, len(phrases))
    out = Path(args.out)

    loaded = load_model(ckpt)
    model, meta = loaded.model, loaded.meta
    text_source = args.text_source or meta.get("text_source") or "descriptions"
    k = meta.get("k")
    aggregator = meta.get("aggregator") or "original"
    kind, emb_model = embedder_kind(meta)
    embedder = build_embedder(kind, emb_model, device="cpu")
    width = backbone(model.name).text_dim(embedder.pooled_dim, embedder.token_dim)
    if width != model.text_dim:
        raise UserError(f"embedder {kind} gives {width}-d embeddings; {ckpt} expects {model.text_dim}-d")

    describer = None
    if text_source == "descriptions":
        shipped = Path(args.descriptions)
        if not shipped.exists():
            raise UserError(f"descriptions cache {shipped} does not exist")
        user_cache = out / "descriptions.jsonl"
        if user_cache.resolve() == shipped.resolve():
            raise UserError(f"--out would make the user cache {user_cache} the --descriptions file itself")
        describer = CacheFirstDescriber(
            [shipped, user_cache],
            _miss_handler(args.describe_config, user_cache, k),
            min_descriptions=k or 1,
        )
    embed_fn = make_embed_fn(describer, embedder, k=k, aggregator=aggregator, text_source=text_source)
    try:
        motions = generate(
            model,
            phrases,
            durations=seconds,
            fps=FPS,
            embed_fn=embed_fn,
            num_samples=args.num_samples,
            seed=args.seed,
        )
    except PhraseError as exc:
        raise UserError(str(exc)) from exc
    if describer is not None and describer.generated:
        print(f"described new phrases {describer.generated} into {out / 'descriptions.jsonl'}")

    sequence = motions.starts is not None
    groups = [" + ".join(phrases)] if sequence else phrases
    per = args.num_samples
    out.mkdir(parents=True, exist_ok=True)
    for idx in range(len(motions)):
        caption = groups[0] if sequence else groups[idx // per]
        variant = idx if sequence else idx % per
        slug = slugify(caption.replace(" + ", " then "))
        if per > 1:
            slug += f"-s{variant}"
        item = {name: t.detach().cpu().numpy() for name, t in motions.item(idx).items()}
        npz = out / f"{slug}.npz"
        np.savez(
            npz,
            **item,
            phrases=np.array(phrases if sequence else [caption]),
            seconds=np.array(seconds if sequence else [seconds[idx // per]], dtype=np.float32),
            fps=np.float32(FPS),
            seed=np.int64(args.seed),
            text_source=np.array(text_source),
        )
        gif = save_gif([Clip(item["joints"], caption=caption, fps=FPS)], out / f"{slug}.gif")
        print(f"{caption!r} ({item['joints'].shape[0]} frames): {gif} {npz}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample",
        help="zero-shot generation from free text (descriptions -> embeddings -> motion -> render)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="model.safetensors, a checkpoint or a run dir")
    p.add_argument("--text", action="append", default=[], help="action phrase (repeatable)")
    p.add_argument(
        "--seconds",
        type=float,
        action="append",
        default=[],
        help=f"duration (one for all or one per phrase; default {DEFAULT_SECONDS})",
    )
    p.add_argument("--out", default="runs/samples", help="output folder (default runs/samples)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-samples", type=int, default=1, help="variants per phrase (different latent noise)")
    p.add_argument("--descriptions", default=SHIPPED_CACHE, help="description cache (read only)")
    p.add_argument(
        "--describe-config",
        default=DEFAULT_DESCRIBE_CONFIG,
        help="describe YAML whose backend describes unseen phrases (into <out>/descriptions.jsonl)",
    )
    p.add_argument(
        "--text-source", choices=["descriptions", "label"], default=None, help="default: the checkpoint's"
    )
    p.set_defaults(func=cmd_sample)
