"""The sbatch scripts of slurm/ on a real (one-node) Slurm cluster: 2-task training, preemption with requeue
and exact resume, evaluation at 1 and 2 tasks, and the description array with its merge job.

Skipped, with the reason, when no usable cluster is reachable (see the ``slurm_cluster`` fixture). Each test
writes into its own fresh folder and job name, since job ids restart whenever the cluster restarts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cluster.export import load_export
from tests.dist_helpers import launch as L
from tests.dist_helpers import slurm as S

pytestmark = pytest.mark.slurm

# Tiny TEACH on the embedded dataset's pair shards: 24 optimizer steps on 2 ranks, a checkpoint every 6 steps.
TRAIN_ARGS = [
    "-c",
    "configs/train/tiny.yaml",
    "max_steps=24",
    "batch_size=4",
    "ckpt_every=6",
    "val_every=0",
    "log_every=6",
    "progress=false",
    "tensorboard=false",
    "dist_timeout_s=120",
]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("slurm-scripts")


def _train(work: Path, embedded_shards: dict[str, Path], name: str) -> tuple[str, Path, Path]:
    """Submit slurm/train_teach.sh with 2 tasks; (job id, run directory, log)."""
    log = work / f"{name}.out"
    jid = S.sbatch(
        "slurm/train_teach.sh",
        [*TRAIN_ARGS, f"shards_dir={embedded_shards['pairs']}"],
        [f"--job-name={name}", f"--output={work}/%x.out", *S.TWO_TASKS],
        env={"RUNS_ROOT": str(work)},
    )
    return jid, work / name, log


@pytest.fixture(scope="module")
def reference_run(slurm_cluster, work: Path, embedded_shards: dict[str, Path]) -> tuple[str, Path, Path]:
    """An uninterrupted 2-task training job."""
    name = S.unique_name("agpt-train")
    jid, run, log = _train(work, embedded_shards, name)
    S.wait_completed(jid, 240, log)
    return jid, run, log


def _model(run: Path) -> dict[str, torch.Tensor]:
    return load_export(run / "model.safetensors")[0]


def test_train_teach_two_tasks_trains_checkpoints_and_finishes(reference_run, embedded_shards) -> None:
    jid, run, log = reference_run
    # Trained on the embedded dataset (every train and val pair of it) with the shipped MiniLM-embedded
    # descriptions, k = 4.
    manifest = json.loads((embedded_shards["pairs"] / "manifest.json").read_text())
    expected = json.loads(embedded_shards["provenance"].read_text())["expected_records"]
    assert manifest["embedder"]["name"] == "all-MiniLM-L6-v2" and manifest["text"]["k"] == 4
    assert {s: v["num_samples"] for s, v in manifest["splits"].items()} == {
        s: expected[s]["pairs"] for s in ("train", "val")
    }
    text = log.read_text()
    # Slurm's layout mapped to two ranks of one gloo group; master from the node list, port from the job id.
    assert f"job {jid} ({run.name}) restart 0" in text and "tasks 2" in text
    assert f"master {S.job(jid)['NodeList']}:{15000 + int(jid) % 10000}" in text
    assert "rank 0/2" in text and "rank 1/2" in text
    assert f"run directory {run}" in text
    recs = L.train_records(run)
    assert sorted(recs) == list(range(1, 25)) and all(r["world_size"] == 2 for r in recs.values())
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir())
    assert ckpts[-1] == "step-00000024"
    assert len(_model(run)) > 0 and "train step ended with status 0" in text


def test_preempted_job_requeues_resumes_and_ends_like_an_uninterrupted_run(
    reference_run, work: Path, embedded_shards: dict[str, Path]
) -> None:
    _, ref_run, _ = reference_run
    name = S.unique_name("agpt-preempt")
    jid, run, log = _train(work, embedded_shards, name)
    # Signal mid-run, as Slurm's --signal=USR1@<s> would before the time limit (or a preemption would).
    S.wait_for(lambda: L.last_step(run) >= 3, 180, "training to reach step 3", lambda: S.describe(jid, log))
    S.signal_job(jid, "USR1")
    S.release_when_requeued(jid, restarts=1, timeout=120, log=log)
    S.wait_completed(jid, 240, log)
    assert S.job(jid)["Restarts"] == "1"

    text = log.read_text()
    # One log, appended across the requeue; the second run resumed from the checkpoint of the signal's step.
    assert f"job {jid} ({name}) restart 0" in text and f"job {jid} ({name}) restart 1" in text
    preempted = L.events(run, "preempted")
    resumed = L.events(run, "resume")
    assert len(preempted) == 1 and len(resumed) == 1 and preempted[0]["step"] < 24
    assert resumed[0]["step"] == preempted[0]["step"] and resumed[0]["mode"] == "exact"
    assert f"resumed from {run}/checkpoints/step-{preempted[0]['step']:08d}" in text

    # Preemption cost nothing: the same losses at every step and the same final parameters.
    assert L.losses(run) == L.losses(ref_run)
    ref, got = _model(ref_run), _model(run)
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_eval_two_tasks_writes_the_same_metrics_as_one_task(
    reference_run, work: Path, embedded_shards
) -> None:
    _, run, _ = reference_run
    args = [
        f"checkpoint={run / 'model.safetensors'}",
        f"shards_dir={embedded_shards['pairs']}",
        "split=val",
        "renders=0",
        "slerp_window=null",
        "progress=false",
        "dist_timeout_s=120",
    ]
    out = {}
    for tasks, opts in ((2, S.TWO_TASKS), (1, S.ONE_TASK)):
        name = S.unique_name(f"agpt-eval{tasks}")
        jid = S.sbatch(
            "slurm/eval.sh",
            args,
            [f"--job-name={name}", f"--output={work}/%x.out", *opts],
            env={"RUNS_ROOT": str(work)},
        )
        S.wait_completed(jid, 240, work / f"{name}.out")
        assert f"tasks {tasks}" in (work / f"{name}.out").read_text()
        out[tasks] = json.loads((work / name / "metrics.json").read_text())
    two, one = out[2], out[1]
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["num_sequences"] == one["num_sequences"] > 0
    assert two["metrics"].keys() == one["metrics"].keys() and len(one["metrics"]) > 0
    for k, v in one["metrics"].items():
        assert two["metrics"][k] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def test_describe_array_writes_every_part_and_the_merge_is_complete(slurm_cluster, work: Path) -> None:
    from actiongpt.text.cache import load_descriptions
    from actiongpt.text.partition import label_part
    from tests.mock_openai_server import MockOpenAIServer

    parts, k = 3, 2
    # At least three labels in each part under sha256(label) mod 3 (asserted, so a changed rule fails here).
    labels = ["dance", "spin around", "salute", "jog", "hop on one foot", "climb", "punch", "crawl", "swim",
              "kneel", "clap hands", "walk"]  # fmt: skip
    assert {label_part(lab, parts) for lab in labels} == set(range(parts))  # every part has work
    (work / "labels.txt").write_text("\n".join(labels) + "\n")
    name = S.unique_name("agpt-describe")
    out_dir = work / name
    with MockOpenAIServer(latency=0.01, host=S.server_host()) as srv:
        args = [
            f"labels=[{work / 'labels.txt'}]",
            f"k={k}",
            f"openai.base_url={srv.base_url}",
            "openai.model=mock-model",
            "run.concurrency=2",
        ]
        jid = S.sbatch(
            "slurm/describe.sh",
            args,
            [
                f"--job-name={name}",
                f"--array=0-{parts - 1}",
                f"--output={work}/%x-%a.out",
                "--cpus-per-task=1",
                "--time=10",
            ],
            env={"RUNS_ROOT": str(work), "OPENAI_API_KEY": ""},
        )
        final = S.wait_completed(jid, 240, work / f"{name}-0.out")
        assert len(final) == parts
        first = (work / f"{name}-0.out").read_text()
        merge_id = first.split(f"submitted {name}-merge as job ")[1].split()[0]
        S.wait_completed(merge_id, 120, work / f"{name}-merge-{merge_id}.out")
    part_files = sorted(p.name for p in (out_dir / "parts").glob("*.jsonl"))
    assert part_files == [f"part-{i:05d}-of-{parts:05d}.jsonl" for i in range(parts)]
    merged = load_descriptions([out_dir / "descriptions.jsonl"])
    assert sorted(merged) == sorted(labels)
    assert all(len(v) == k and all(t.strip() for t in v) for v in merged.values())
    # Each part described exactly its own labels; every request was answered once (no part redid another's).
    assert len(srv.log.successes) == len(labels) * k and set(srv.log.successes.values()) == {1}
    per_part = {i: load_descriptions([out_dir / "parts" / part_files[i]]) for i in range(parts)}
    for i, got in per_part.items():
        assert sorted(got) == sorted(lab for lab in labels if label_part(lab, parts) == i)


@pytest.mark.slow  # ~50 s: one launch, a signal, a requeue and a second launch
def test_torchrun_recipe_preempts_requeues_and_resumes(reference_run, work: Path, embedded_shards) -> None:
    name = S.unique_name("agpt-torchrun")
    run, log = work / name, work / f"{name}.out"
    opts = [f"--job-name={name}", f"--output={work}/%x.out", "--nodes=1", "--ntasks-per-node=1",
            "--gpus-per-node=0", "--cpus-per-task=2", "--time=10"]  # fmt: skip
    jid = S.sbatch("slurm/torchrun/train.sh", [*TRAIN_ARGS, f"shards_dir={embedded_shards['pairs']}"], opts,
                   env={"RUNS_ROOT": str(work), "NPROC_PER_NODE": "2"})  # fmt: skip
    S.wait_for(lambda: L.last_step(run) >= 3, 180, "training to reach step 3", lambda: S.describe(jid, log))
    S.signal_job(jid, "USR1")  # reaches torchrun only; it forwards the signal to its two workers
    S.release_when_requeued(jid, restarts=1, timeout=120, log=log)
    S.wait_completed(jid, 240, log)
    recs = L.train_records(run)
    assert sorted(recs) == list(range(1, 25)) and all(r["world_size"] == 2 for r in recs.values())
    preempted, resumed = L.events(run, "preempted"), L.events(run, "resume")
    assert len(preempted) == 1 and len(resumed) == 1 and resumed[0]["step"] == preempted[0]["step"]
    assert "train (torchrun, 2 per node)" in log.read_text()
    assert L.losses(run) == L.losses(reference_run[1])  # same 2-rank layout as srun: the same run
