"""Batch API mode: export requests as OpenAI Batch JSONL, import a results file into the cache."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from actiongpt.text.batch_api import export_batch
from actiongpt.text.cache import read_records
from actiongpt.text.keys import SamplingConfig, plan_requests
from actiongpt.text.prompt import TEMPLATES
from actiongpt.text.quality import postprocess
from tests.describe_cli import cli
from tests.mock_openai_server import MockOpenAIServer, answer_text

LABELS = ["walk", "jump", "wave", "kick", "sit down", "turn around"]


def _common(tmp_path: Path, labels_file: Path) -> list[str]:
    return [
        "-c",
        "configs/describe/openai.yaml",
        f"labels=[{labels_file}]",
        f"out_dir={tmp_path / 'run'}",
        "openai.endpoint=chat",
        "openai.model=mock-model",
        "k=2",
        "sampling.repetition_penalty=1.1",
    ]


def _execute(srv: MockOpenAIServer, batch_file: Path, results: Path) -> None:
    """Play the Batch API / vLLM run_batch: POST every body, write the output format."""
    with open(results, "w") as out:
        for n, line in enumerate(batch_file.read_text().splitlines()):
            req = json.loads(line)
            http = urllib.request.Request(
                srv.base_url.removesuffix("/v1") + req["url"],
                data=json.dumps(req["body"]).encode(),
                headers={"Content-Type": "application/json"},
            )
            body = json.loads(urllib.request.urlopen(http, timeout=10).read())
            resp: dict = {"status_code": 200, "request_id": f"req_{n}", "body": body}
            error = None
            if n == 0:
                resp, error = None, {"code": "server_error", "message": "batch item failed"}
            elif n == 1:
                resp = {"status_code": 500, "request_id": f"req_{n}", "body": {"error": {"message": "oops"}}}
            elif n == 2:
                body["choices"][0]["message"]["content"] = ""
            out.write(
                json.dumps(
                    {"id": f"batch_req_{n}", "custom_id": req["custom_id"], "response": resp, "error": error}
                )
                + "\n"
            )
        out.write(json.dumps({"id": "x", "custom_id": "not-a-key", "response": None, "error": None}) + "\n")


def test_export_import_roundtrip_and_rerun_fills_the_gaps(tmp_path, monkeypatch, capsys) -> None:
    labels_file = tmp_path / "labels.txt"
    labels_file.write_text("\n".join(LABELS) + "\n")
    batch = tmp_path / "batch.jsonl"
    assert cli(["describe", "batch-export", "--out", str(batch), *_common(tmp_path, labels_file)]) == 0
    lines = [json.loads(x) for x in batch.read_text().splitlines()]
    reqs = {
        r.key: r
        for r in plan_requests(
            sorted(LABELS),
            2,
            endpoint="chat",
            model="mock-model",
            template=TEMPLATES["paper"],
            sampling=SamplingConfig(repetition_penalty=1.1),
            global_seed=0,
        )
    }
    assert len(lines) == 12 and {x["custom_id"] for x in lines} == set(reqs)
    first = lines[0]
    assert first["method"] == "POST" and first["url"] == "/v1/chat/completions"
    req = reqs[first["custom_id"]]
    assert first["body"]["seed"] == req.seed and first["body"]["messages"] == req.input
    assert first["body"]["max_tokens"] == 128 and first["body"]["temperature"] == 0.5
    assert first["body"]["n"] == 1 and first["body"]["repetition_penalty"] == 1.1
    index = tmp_path / "batch.index.jsonl"
    assert len(index.read_text().splitlines()) == 12

    results = tmp_path / "results.jsonl"
    with MockOpenAIServer() as srv:
        _execute(srv, batch, results)
        imp = [
            "describe",
            "batch-import",
            "--results",
            str(results),
            "--index",
            str(index),
            *_common(tmp_path, labels_file),
        ]
        assert cli(imp) == 1  # three failed items and one unknown id
        err = capsys.readouterr().err
        assert "9 imported" in err and "3 failed" in err and "1 unknown" in err
        part = tmp_path / "run" / "parts" / "part-00000-of-00001.jsonl"
        records = read_records(part).records
        assert len(records) == 9
        for rec in records:
            r = reqs[rec["key"]]
            assert rec["text"] == postprocess(answer_text(r.input[-1]["content"], r.seed))
            assert rec["template"]["name"] == "paper" and rec["params"]["repetition_penalty"] == 1.1
        fails = read_records(
            tmp_path / "run" / "failures" / "part-00000-of-00001.failures.jsonl", validate=False
        ).records
        assert sorted(f["reason"].split(":")[0] for f in fails) == [
            "batch HTTP 500",
            "batch error",
            "degenerate answer",
        ]
        # importing again is harmless
        assert cli(imp) == 1
        assert "9 already cached" in capsys.readouterr().err
        assert len(read_records(part).records) == 9
        # exporting again only exports what is missing
        batch2 = tmp_path / "batch2.jsonl"
        assert cli(["describe", "batch-export", "--out", str(batch2), *_common(tmp_path, labels_file)]) == 0
        assert {json.loads(x)["custom_id"] for x in batch2.read_text().splitlines()} == {
            f["key"] for f in fails
        }
        # and a live run asks for exactly the three missing ones
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-batch-0000")
        n_before = len(srv.log.events)
        assert (
            cli(
                [
                    "describe",
                    "run",
                    *_common(tmp_path, labels_file),
                    f"openai.base_url={srv.base_url}",
                    "--no-progress",
                ]
            )
            == 0
        )
        assert len(srv.log.events) - n_before == 3
    assert len(read_records(part).records) == 12


def test_export_splits_large_batches(tmp_path) -> None:
    reqs = plan_requests(
        [f"l{j}" for j in range(5)],
        2,
        endpoint="completions",
        model="m",
        template=TEMPLATES["paper"],
        sampling=SamplingConfig(),
        global_seed=0,
    )
    files = export_batch(reqs, tmp_path / "b.jsonl", max_per_file=4)
    assert [f.name for f in files] == ["b-00000.jsonl", "b-00001.jsonl", "b-00002.jsonl"]
    lines = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    assert [x["custom_id"] for x in lines] == [r.key for r in reqs]
    assert lines[0]["url"] == "/v1/completions" and lines[0]["body"]["prompt"] == reqs[0].input
    assert "repetition_penalty" not in lines[0]["body"]
