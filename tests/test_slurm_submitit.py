"""launch/submit.py on a real (one-node) Slurm cluster: a 2-task training job completes and returns its
result; a job interrupted the way submitit fakes a preemption is requeued and completes from its checkpoint.

Skipped, with the reason, when no usable cluster is reachable or submitit cannot track jobs there (it needs
``sacct``; clusters without accounting use the stand-in in scripts/slurm/shims).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cluster.export import load_export
from tests.dist_helpers import launch as L
from tests.dist_helpers import slurm as S

pytestmark = pytest.mark.slurm

OVERRIDES = [
    "max_steps=24",
    "batch_size=4",
    "ckpt_every=6",
    "val_every=0",
    "log_every=6",
    "progress=false",
    "tensorboard=false",
    "dist_timeout_s=120",
]
CONFIGS = [str(L.REPO / "configs/train/teach.yaml"), str(L.REPO / "configs/train/tiny.yaml")]


@pytest.fixture(scope="module")
def cluster(slurm_cluster):
    if (why := S.submitit_ready()) is not None:
        pytest.skip(f"submitit Slurm tests skipped: {why}")
    return slurm_cluster


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("slurm-submitit")


@pytest.fixture()
def job_environment(monkeypatch):
    """The client's environment as jobs should inherit it (sbatch exports it): CPU-only, no enclosing job."""
    env = S.job_env()
    for k in list(os.environ):
        if k not in env:
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


def _submit(cluster, work: Path, embedded_shards, name: str):
    from launch.submit import ExecutorOptions, submit_train

    opts = ExecutorOptions(
        cluster="slurm",
        tasks_per_node=2,
        cpus_per_task=1,
        timeout_min=10,
        partition=cluster.partition,
        folder_root=str(work / "submitit"),
        name=name,
    )
    return submit_train(
        CONFIGS, [*OVERRIDES, f"shards_dir={embedded_shards['pairs']}", f"run_dir={work / name}"], opts
    )


def test_submitit_training_with_two_tasks_completes_and_returns_its_result(
    cluster, work: Path, embedded_shards, job_environment
) -> None:
    handle = _submit(cluster, work, embedded_shards, S.unique_name("agpt-sub"))
    results = handle.results()
    assert len(results) == 2
    main, other = results
    assert main.status == other.status == "finished" and main.step == main.max_steps == 24
    assert main.resumed_from is None and main.export == Path(handle.run_dir) / "model.safetensors"
    assert main.export.is_file() and other.export is None  # rank 0 exports
    assert handle.result() == main
    recs = L.train_records(Path(handle.run_dir))
    assert sorted(recs) == list(range(1, 25)) and all(r["world_size"] == 2 for r in recs.values())
    log = handle.log.read_text() + handle.log.with_suffix(".err").read_text()
    assert "rank 0/2" in log and "Job completed successfully" in log


def test_interrupted_submitit_job_is_requeued_and_completes(
    cluster, work: Path, embedded_shards, job_environment
) -> None:
    name = S.unique_name("agpt-sub-int")
    handle = _submit(cluster, work, embedded_shards, name)
    run = Path(handle.run_dir)
    S.wait_for(
        lambda: L.last_step(run) >= 3,
        180,
        "training to reach step 3",
        lambda: S.describe(handle.job_id, handle.log.with_suffix(".err")),
    )
    handle.job._interrupt()  # what submitit's tests do: SIGTERM, then its preemption signal (USR2)
    S.release_when_requeued(handle.job_id, restarts=1, timeout=120, log=handle.log.with_suffix(".err"))
    main = handle.result()
    assert main.status == "finished" and main.step == 24
    preempted = L.events(run, "preempted")
    assert len(preempted) == 1 and main.resumed_from == preempted[0]["step"] < 24
    assert S.job(handle.job_id)["Restarts"] == "1"
    # The trainer, not submitit's rank-0 handler, took the signal: a collective save at a step boundary.
    assert preempted[0]["signal"] in ("SIGTERM", "SIGUSR2")
    ckpt = run / "checkpoints" / f"step-{preempted[0]['step']:08d}"
    assert any(e["path"] == str(ckpt) for e in L.events(run, "resume"))
    sd = load_export(run / "model.safetensors")[0]
    assert len(sd) > 0


@pytest.mark.slow  # ~30 s: a 3-task array and its dependent merge job
def test_submitit_describe_array_and_dependent_merge(cluster, work: Path, job_environment) -> None:
    from actiongpt.text.cache import load_descriptions
    from launch.submit import ExecutorOptions, submit_describe
    from tests.mock_openai_server import MockOpenAIServer

    labels = ["dance", "spin around", "hop on one foot", "climb", "swim", "kneel"]
    (work / "labels.txt").write_text("\n".join(labels) + "\n")
    out = work / S.unique_name("describe")
    opts = ExecutorOptions(
        cluster="slurm", cpus_per_task=1, timeout_min=10, folder_root=str(work / "submitit")
    )
    with MockOpenAIServer(host=S.server_host()) as srv:
        overrides = [f"labels=[{work / 'labels.txt'}]", "k=2", f"openai.base_url={srv.base_url}",
                     "openai.model=mock-model", f"out_dir={out}"]  # fmt: skip
        res = submit_describe([str(L.REPO / "configs/describe/openai.yaml")], overrides, opts, parts=3)
        assert res.merge is not None and S.job(res.merge.job_id)["Dependency"].startswith("afterok:")
        report = res.result()
    assert report["records"] == 12 and not report["conflicts"] and len(report["inputs"]) == 3
    merged = load_descriptions([out / "descriptions.jsonl"])
    assert sorted(merged) == sorted(labels) and all(len(v) == 2 for v in merged.values())
