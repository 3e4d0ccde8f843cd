"""Demo stages ``describe`` (check the description cache covers the dataset) and ``embed`` (MiniLM).

The demo never calls an LLM by itself: descriptions come from a cache (by default the shipped SmolLM2 one).
When labels are missing the stage fails naming them and prints the command that generates them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actiongpt import config as cfglib
from launch.demo.context import SPLITS, DemoContext
from launch.demo.runner import run_cli
from launch.demo.stamps import files_sha256, stamp_matches, write_stamp
from launch.errors import UserError

CHECK_FILE = "descriptions_check.json"
SHOW_AT_MOST = 20  # labels named in an error message


def babel_files(ctx: DemoContext) -> list[Path]:
    return [
        ctx.data_dir / "babel" / f"{s}.json"
        for s in SPLITS
        if (ctx.data_dir / "babel" / f"{s}.json").is_file()
    ]


def cache_files(ctx: DemoContext) -> list[Path]:
    from actiongpt.text.cache import expand_cache_paths

    try:
        files = expand_cache_paths(ctx.cfg.descriptions)
    except FileNotFoundError as exc:
        raise UserError(f"descriptions: {exc}") from exc
    if not files:
        raise UserError(f"descriptions: no *.jsonl cache file in {ctx.cfg.descriptions}")
    return files


def _dataset_digest(ctx: DemoContext) -> dict[str, str | None]:
    return files_sha256(babel_files(ctx))


def labels_by_split(ctx: DemoContext) -> dict[str, list[str]]:
    """The action labels (BABEL ``proc_label``, as the loader looks them up) of every split."""
    from actiongpt.text.labels import collect_labels

    files = babel_files(ctx)
    if not files:
        raise UserError(f"{ctx.data_dir / 'babel'}: no BABEL split files (run the data stage)")
    return {f.stem: collect_labels([f]) for f in files}


def _named(items: list[str], fmt: Any = repr) -> str:
    shown = ", ".join(fmt(x) for x in items[:SHOW_AT_MOST])
    return shown + (f", ... and {len(items) - SHOW_AT_MOST} more" if len(items) > SHOW_AT_MOST else "")


def coverage_problems(
    by_split: dict[str, list[str]], descs: dict[str, list[str]], k: int
) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """(dataset labels without descriptions, dataset labels with fewer than k, other cached labels with
    fewer than k — the embedding stage needs k for every label it embeds)."""
    wanted = sorted({lab for labs in by_split.values() for lab in labs})
    missing = [lab for lab in wanted if lab not in descs]
    short = {lab: len(descs[lab]) for lab in wanted if lab in descs and len(descs[lab]) < k}
    wanted_set = set(wanted)
    short_other = {lab: len(d) for lab, d in descs.items() if lab not in wanted_set and len(d) < k}
    return missing, short, short_other


def missing_message(
    ctx: DemoContext,
    by_split: dict[str, list[str]],
    missing: list[str],
    short: dict[str, int],
    short_other: dict[str, int],
) -> str:
    k = ctx.cfg.k
    caches = [str(p) for p in ctx.cfg.descriptions]
    where = {lab: [s for s, labs in by_split.items() if lab in labs] for lab in missing}
    total = len({lab for labs in by_split.values() for lab in labs})
    lines = [f"the description cache {caches} does not cover the dataset {ctx.data_dir} (k = {k} per label):"]
    if missing:
        lines.append(
            f"  {len(missing)} of {total} labels have no description: "
            + _named(missing, lambda lab: f"{lab!r} ({'/'.join(where[lab])})")
        )
    if short:
        lines.append(
            f"  {len(short)} labels have fewer than {k}: "
            + _named(sorted(short), lambda lab: f"{lab!r} ({short[lab]})")
        )
    if short_other:
        lines.append(
            f"  {len(short_other)} other cached labels have fewer than {k} (the embedding stage embeds every "
            "cached label): " + _named(sorted(short_other), lambda lab: f"{lab!r} ({short_other[lab]})")
        )
    new_cache = ctx.out / "descriptions" / "local_smollm2.jsonl"
    labels = ",".join(str(f) for f in babel_files(ctx))
    lines += [
        "The demo never calls an LLM by itself. Generate the missing descriptions offline with the local",
        "model (SmolLM2-135M, about 1-3 s per description on 2 CPU cores; only missing ones are made):",
        f"  actiongpt describe run -c configs/describe/local_smollm2.yaml k={k} labels=[{labels}] "
        f"read_caches=[{','.join(caches)}] cache={new_cache}",
        "(or through any OpenAI-compatible endpoint with -c configs/describe/openai.yaml), then run",
        f"  actiongpt demo descriptions=[{','.join([*caches, str(new_cache)])}]",
    ]
    return "\n".join(lines)


def describe_inputs(ctx: DemoContext) -> dict[str, Any]:
    return {
        "caches": files_sha256(cache_files(ctx)),
        "dataset": _dataset_digest(ctx),
        "k": ctx.cfg.k,
    }


def describe_done(ctx: DemoContext) -> bool:
    if not (ctx.out / CHECK_FILE).is_file():
        return False
    try:
        return stamp_matches(ctx.out, "describe", describe_inputs(ctx))
    except UserError:
        return False  # let run() report the problem


def describe_run(ctx: DemoContext) -> None:
    from actiongpt.text.cache import CacheError, load_descriptions

    inputs = describe_inputs(ctx)
    by_split = labels_by_split(ctx)
    try:
        descs = load_descriptions(cache_files(ctx))
    except (CacheError, ValueError) as exc:
        raise UserError(f"descriptions {ctx.cfg.descriptions}: {exc}") from exc
    missing, short, short_other = coverage_problems(by_split, descs, ctx.cfg.k)
    if missing or short or short_other:
        raise UserError(missing_message(ctx, by_split, missing, short, short_other))
    models = _models(cache_files(ctx))
    report = {
        "caches": [str(p) for p in cache_files(ctx)],
        "k": ctx.cfg.k,
        "models": models,
        "labels": {s: len(labs) for s, labs in by_split.items()},
        "labels_total": len({lab for labs in by_split.values() for lab in labs}),
        "cached_labels": len(descs),
        "example": _example(by_split, descs),
    }
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / CHECK_FILE).write_text(json.dumps(report, indent=1) + "\n")
    write_stamp(ctx.out, "describe", inputs)
    describe_show(ctx)


def _models(files: list[Path]) -> list[str]:
    from actiongpt.text.cache import read_records

    models: set[str] = set()
    for f in files:
        models.update(str(r.get("model")) for r in read_records(f).records)
    return sorted(models)


def _example(by_split: dict[str, list[str]], descs: dict[str, list[str]]) -> dict[str, str]:
    labs = by_split.get("zeroshot") or next(iter(by_split.values()))
    lab = labs[0]
    return {"label": lab, "description": descs[lab][0]}


def describe_show(ctx: DemoContext) -> None:
    r = json.loads((ctx.out / CHECK_FILE).read_text())
    per_split = ", ".join(f"{s} {n}" for s, n in r["labels"].items())
    print(
        f"  every one of the {r['labels_total']} labels ({per_split}) has k = {r['k']} descriptions "
        f"in {r['caches']} (model {', '.join(r['models'])})"
    )
    ex = r["example"]
    print(f"  e.g. {ex['label']!r}: {ex['description'][:160]}{'...' if len(ex['description']) > 160 else ''}")


# --- stage: embed ----------------------------------------------------------------------------------------


def shards_config(ctx: DemoContext, layout: str) -> Any:
    """The ``actiongpt shards`` config of one layout (``pairs``: TEACH, ``seg``: TEMOS/MotionCLIP)."""
    from shards.config import ShardsConfig

    base = "configs/shards/default.yaml" if layout == "pairs" else "configs/shards/seg_minilm.yaml"
    splits = ["train", *[s for s in ctx.cfg.eval.splits if s != "train"]]
    cfg = cfglib.load(ShardsConfig, [base])
    cfg.out = str(ctx.shards_dir(layout))
    cfg.splits = splits
    cfg.data.babel_dir = str(ctx.data_dir / "babel")
    cfg.data.amass_dir = str(ctx.data_dir / "amass")
    cfg.data.mode = layout
    cfg.embed.descriptions = [str(p) for p in ctx.cfg.descriptions]
    cfg.embed.out = str(ctx.embeddings_dir)
    cfg.embed.embedder = ctx.cfg.embedder
    cfg.embed.k = ctx.cfg.k  # embed only the k descriptions used (the cache may hold more)
    cfg.k = ctx.cfg.k
    cfg.part = None
    return cfg


def write_shards_configs(ctx: DemoContext) -> dict[str, Path]:
    paths = {}
    for layout in ctx.layouts:
        paths[layout] = cfglib.save(shards_config(ctx, layout), ctx.configs_dir / f"shards-{layout}.yaml")
    return paths


def embed_inputs(ctx: DemoContext) -> dict[str, Any]:
    cfg = shards_config(ctx, ctx.layouts[0])
    return {"caches": files_sha256(cache_files(ctx)), "embed": cfglib.to_dict(cfg.embed)}


def embed_done(ctx: DemoContext) -> bool:
    if not (ctx.embeddings_dir / "index.json").is_file():
        return False
    try:
        return stamp_matches(ctx.out, "embed", embed_inputs(ctx))
    except UserError:
        return False


def embed_run(ctx: DemoContext) -> None:
    import shutil

    inputs = embed_inputs(ctx)
    if "embed" in ctx.redo and ctx.inside_out(ctx.embeddings_dir) and ctx.embeddings_dir.exists():
        shutil.rmtree(ctx.embeddings_dir)
    paths = write_shards_configs(ctx)
    run_cli(["shards", "embed", "-c", str(paths[ctx.layouts[0]])], "the embedding stage")
    write_stamp(ctx.out, "embed", inputs)


def embed_show(ctx: DemoContext) -> None:
    index = json.loads((ctx.embeddings_dir / "index.json").read_text())
    emb = index.get("embedder", {})
    print(
        f"  {ctx.embeddings_dir}: {index.get('num_labels')} labels, {index.get('num_texts')} texts (each "
        f"label and its k = {ctx.cfg.k} descriptions) embedded by {emb.get('name')} "
        f"({emb.get('token_dim')}-d tokens)"
    )
