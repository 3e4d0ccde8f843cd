"""launch/submit.py without Slurm: executor options, the sbatch file they produce, and real jobs on
submitit's debug (in-process) and local (subprocess) executors, incl. a preempted local job that resumes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import submitit
from submitit.helpers import DelayedSubmission

from launch import submit as sub
from tests.dist_helpers import launch as L
from tests.dist_helpers import slurm as S

CONFIGS = [str(L.REPO / "configs/train/teach.yaml"), str(L.REPO / "configs/train/tiny.yaml")]
OVERRIDES = [
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
    return tmp_path_factory.mktemp("submit-local")


@pytest.fixture()
def cpu_env(monkeypatch):
    """Jobs inherit this process's environment: one thread per process, no enclosing job's rank variables."""
    for k, v in S.job_env().items():
        if k in ("OMP_NUM_THREADS", "PYTHONPATH", "DS_ACCELERATOR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            monkeypatch.setenv(k, v)
    for k in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "SLURM_JOB_ID",
        "SLURM_PROCID",
    ):
        monkeypatch.delenv(k, raising=False)


# ----------------------------------------------------------------------------------------- options


def test_executor_options_validate_and_default_to_one_task_per_gpu() -> None:
    assert sub.ExecutorOptions().tasks == 1
    assert sub.ExecutorOptions(gpus_per_node=8).tasks == 8
    assert sub.ExecutorOptions(gpus_per_node=8, tasks_per_node=1).tasks == 1
    with pytest.raises(ValueError, match="cluster"):
        sub.ExecutorOptions(cluster="kubernetes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nodes"):
        sub.ExecutorOptions(nodes=0)
    with pytest.raises(ValueError, match="gpus_per_node"):
        sub.ExecutorOptions(gpus_per_node=-1)


def test_slurm_submission_file_carries_every_option(tmp_path: Path) -> None:
    from submitit.slurm.slurm import _make_sbatch_string

    opts = sub.ExecutorOptions(
        cluster="slurm",
        nodes=2,
        gpus_per_node=4,
        cpus_per_task=8,
        mem_gb=64,
        timeout_min=90,
        partition="gpu",
        account="proj",
        constraint="a100",
        qos="high",
        signal_delay_s=300,
        setup=["module load cuda"],
        additional_parameters={"mail-type": "END"},
        folder=str(tmp_path / "%j"),
    )
    ex = sub.make_executor(opts, "train-x")
    text = _make_sbatch_string(
        command="python -m submitit.core._submit X", folder=str(tmp_path / "%j"), **ex._executor.parameters
    )
    for line in (
        "--nodes=2",
        "--ntasks-per-node=4",
        "--gpus-per-node=4",
        "--cpus-per-task=8",
        "--mem=64GB",
        "--time=90",
        "--partition=gpu",
        "--account=proj",
        "--constraint=a100",
        "--qos=high",
        "--signal=USR2@300",
        "--requeue",
        "--mail-type=END",
        "--job-name=train-x",
        "--open-mode=append",
    ):
        assert f"#SBATCH {line}\n" in text, line
    assert f"export PYTHONPATH={L.REPO}" in text and "module load cuda" in text
    assert ex._executor.max_num_timeout == 3
    # No GPUs asked for: no --gpus-per-node line at all (clusters without GRES reject the option).
    cpu = sub.make_executor(sub.ExecutorOptions(cluster="slurm", folder=str(tmp_path / "%j")), "x")
    assert "gpus_per_node" not in cpu._executor.parameters


def test_default_folder_is_new_for_every_submission(tmp_path: Path) -> None:
    opts = sub.ExecutorOptions(cluster="debug", folder_root=str(tmp_path))
    a, b = sub.make_executor(opts, "train-x"), sub.make_executor(opts, "train-x")
    assert a.folder != b.folder and a.folder.parent.parent == b.folder.parent.parent == tmp_path
    assert a.folder.name == "%j" and a.folder.parent.name.startswith("train-x-")


def test_checkpoint_only_resubmits_the_same_call() -> None:
    job = sub.TrainJob()
    delayed = job.checkpoint(["a.yaml"], ["run_dir=r"])
    assert isinstance(delayed, DelayedSubmission)
    assert delayed.function is job and delayed.args == (["a.yaml"], ["run_dir=r"]) and delayed.kwargs == {}


def test_bad_config_fails_in_the_client_before_anything_is_submitted(tmp_path: Path) -> None:
    from actiongpt.config import ConfigError

    opts = sub.ExecutorOptions(cluster="debug", folder_root=str(tmp_path))
    with pytest.raises(ConfigError, match="no_such_key"):
        sub.submit_train(CONFIGS, ["no_such_key=1"], opts)
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------- jobs


@pytest.fixture(scope="module")
def debug_run(work: Path, embedded_shards) -> tuple[sub.SubmittedJob, object]:
    opts = sub.ExecutorOptions(cluster="debug", folder_root=str(work / "submitit"))
    handle = sub.submit_train(
        CONFIGS,
        [
            *OVERRIDES,
            "max_steps=6",
            f"shards_dir={embedded_shards['pairs']}",
            f"run_dir={work / 'debug-run'}",
        ],
        opts,
    )
    return handle, handle.result()


def test_debug_executor_trains_in_process_and_returns_the_result(debug_run) -> None:
    handle, result = debug_run
    assert handle.cluster == "debug" and handle.stage == "train"
    assert result.status == "finished" and result.step == result.max_steps == 6
    assert (Path(handle.run_dir) / "model.safetensors").is_file() and result.export == Path(
        handle.run_dir
    ) / "model.safetensors"
    assert sorted(L.train_records(Path(handle.run_dir))) == list(range(1, 7))


def test_debug_executor_evaluates_the_trained_model(debug_run, work: Path, embedded_shards) -> None:
    handle, _ = debug_run
    opts = sub.ExecutorOptions(cluster="debug", folder_root=str(work / "submitit"))
    ev = sub.submit_eval(
        [str(L.REPO / "configs/eval/default.yaml")],
        [
            f"checkpoint={handle.run_dir}/model.safetensors",
            f"shards_dir={embedded_shards['pairs']}",
            "renders=0",
            "slerp_window=null",
            "progress=false",
            f"out_dir={work / 'eval'}",
        ],
        opts,
    )
    summary = ev.result()
    assert isinstance(summary, sub.EvalSummary) and summary.world_size == 1 and summary.num_sequences > 0
    assert summary.out_dir == str(work / "eval") and (work / "eval" / "metrics.json").is_file()
    assert summary.metrics and all(v == v for v in summary.metrics.values())  # no NaN


def test_eval_submission_without_out_dir_names_the_run_eval_folder(
    debug_run, embedded_shards, work: Path
) -> None:
    handle, _ = debug_run
    opts = sub.ExecutorOptions(cluster="debug", folder_root=str(work / "submitit"))
    ev = sub.submit_eval(
        [str(L.REPO / "configs/eval/default.yaml")],
        [
            f"checkpoint={handle.run_dir}/model.safetensors",
            f"shards_dir={embedded_shards['pairs']}",
            "renders=0",
            "max_batches=1",
        ],
        opts,
    )
    assert ev.run_dir == str(Path(handle.run_dir) / "eval")  # not "None"
    summary = ev.result()
    assert (
        Path(summary.out_dir).parent == Path(ev.run_dir)
        and (Path(summary.out_dir) / "metrics.json").is_file()
    )


def test_describe_parts_and_merge_on_the_debug_executor(work: Path) -> None:
    from actiongpt.text.cache import load_descriptions
    from tests.mock_openai_server import MockOpenAIServer

    labels = ["walk", "run forward", "jump up", "sit down", "wave right hand", "turn left"]
    (work / "labels.txt").write_text("\n".join(labels) + "\n")
    out = work / "describe"
    opts = sub.ExecutorOptions(cluster="debug", folder_root=str(work / "submitit"))
    with MockOpenAIServer() as srv:
        res = sub.submit_describe(
            [str(L.REPO / "configs/describe/openai.yaml")],
            [
                f"labels=[{work / 'labels.txt'}]",
                "k=2",
                f"openai.base_url={srv.base_url}",
                "openai.model=mock-model",
                f"out_dir={out}",
            ],
            opts,
            parts=3,
        )
        assert len(res.parts) == 3 and res.merge is None
        report = res.result()
    assert report["records"] == len(labels) * 2 and not report["conflicts"]
    assert len(list((out / "parts").glob("part-*-of-00003.jsonl"))) == 3
    merged = load_descriptions([out / "descriptions.jsonl"])
    assert sorted(merged) == sorted(labels) and all(len(v) == 2 for v in merged.values())


def test_describe_rejects_multi_task_jobs(tmp_path: Path) -> None:
    opts = sub.ExecutorOptions(cluster="debug", tasks_per_node=2, folder_root=str(tmp_path))
    with pytest.raises(ValueError, match="parts"):
        sub.submit_describe([str(L.REPO / "configs/describe/openai.yaml")], ["labels=[x.txt]"], opts, parts=2)


@pytest.mark.dist
@pytest.mark.slow  # ~30 s on 2 busy cores: two fresh interpreters importing torch, then 12 steps
def test_local_executor_runs_two_ranks_with_the_distributed_environment_exported(
    work: Path, embedded_shards, cpu_env
) -> None:
    opts = sub.ExecutorOptions(
        cluster="local", tasks_per_node=2, timeout_min=10, folder_root=str(work / "submitit")
    )
    handle = sub.submit_train(
        CONFIGS,
        [
            *OVERRIDES,
            "max_steps=12",
            f"shards_dir={embedded_shards['pairs']}",
            f"run_dir={work / 'local-run'}",
        ],
        opts,
    )
    results = handle.results()
    assert [r.status for r in results] == ["finished", "finished"] and results[0].step == 12
    recs = L.train_records(work / "local-run")
    assert sorted(recs) == list(range(1, 13)) and all(r["world_size"] == 2 for r in recs.values())
    err = handle.log.with_suffix(".err").read_text()
    assert "task 0/2: master " in err


def _task_pids(handle: sub.SubmittedJob) -> list[int]:
    """The task processes under submitit's local controller."""
    try:
        kids = psutil.Process(handle.job._process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p.pid for p in kids if "submitit.core._submit" in " ".join(p.cmdline())]


@pytest.mark.dist
@pytest.mark.slow  # ~45 s: two launches of two ranks each
def test_preempted_local_job_restarts_and_resumes_from_its_checkpoint(
    work: Path, embedded_shards, cpu_env
) -> None:
    run = work / "local-preempt"
    opts = sub.ExecutorOptions(
        cluster="local", tasks_per_node=2, timeout_min=10, folder_root=str(work / "submitit")
    )
    handle = sub.submit_train(
        CONFIGS,
        [*OVERRIDES, "max_steps=24", f"shards_dir={embedded_shards['pairs']}", f"run_dir={run}"],
        opts,
    )
    S.wait_for(lambda: L.last_step(run) >= 3, 180, "training to reach step 3")
    pids = _task_pids(handle)
    assert len(pids) == 2
    for pid in pids:
        os.kill(
            pid, signal.SIGUSR2
        )  # what submitit's local controller sends every task before the time limit
    t0 = time.monotonic()
    main = handle.result()
    assert main.status == "finished" and main.step == 24, main
    preempted = L.events(run, "preempted")
    assert len(preempted) == 1 and main.resumed_from == preempted[0]["step"]
    assert (
        preempted[0]["signal"] == "SIGUSR2"
    )  # taken by the trainer on every rank, not submitit's rank-0 handler
    assert time.monotonic() - t0 < 180
    assert isinstance(handle.job, submitit.local.local.LocalJob)


def test_cli_submits_and_waits_on_the_debug_executor(debug_run, work: Path, embedded_shards, capsys) -> None:
    handle, _ = debug_run
    argv = [
        "submit",
        "train",
        "--cluster",
        "debug",
        "--folder",
        str(work / "cli" / "%j"),
        "--wait",
        *[a for f in CONFIGS for a in ("-c", f)],
        *OVERRIDES,
        "max_steps=6",
        f"shards_dir={embedded_shards['pairs']}",
        f"run_dir={handle.run_dir}",
    ]
    assert sub._run_command("submit", argv) == 0
    out = capsys.readouterr().out
    # The same run directory: the finished run is found complete and returned as is.
    assert "train job" in out and f"run directory {handle.run_dir}" in out and "log " in out
    assert "result: TrainResult(status='finished', step=6" in out and "resumed_from=6" in out


def test_cli_reports_bad_executor_options_as_user_errors(capsys) -> None:
    assert sub._run_command("submit", ["submit", "train", "--cluster", "debug", "--nodes", "0"]) == 2
    assert "nodes: must be >= 1" in capsys.readouterr().err
    assert sub._run_command("submit", ["submit", "describe", "--cluster", "debug", "--parts", "0"]) == 2
    assert "parts: must be >= 1" in capsys.readouterr().err
