"""Descriptions cache, keys and partitioning: torn lines, locking, merge, loading, determinism."""

from __future__ import annotations

import json

import pytest

from actiongpt.config import ConfigError
from actiongpt.text.backends import Completion
from actiongpt.text.cache import (
    CacheError,
    DescriptionCache,
    FailureLog,
    load_descriptions,
    make_record,
    merge_caches,
    read_records,
)
from actiongpt.text.keys import SamplingConfig, derive_seed, make_request, plan_requests, retry_seed
from actiongpt.text.partition import Part, label_part, parse_part, part_from_env, select_labels
from actiongpt.text.prompt import TEMPLATES, PromptConfig, resolve_template


def _req(label: str, i: int, template: str = "paper", **sampling):
    return make_request(
        label,
        i,
        endpoint="chat",
        model="m",
        template=TEMPLATES[template],
        sampling=SamplingConfig(**sampling),
        global_seed=0,
    )


def _rec(label: str, i: int, text: str | None = None, **kw):
    req = _req(label, i, **kw)
    return make_record(
        req, Completion(text=text or f"{label} {i}"), text or f"{label} {i}", seed_used=req.seed, attempts=1
    )


def test_key_depends_on_everything_that_determines_the_output() -> None:
    base = _req("walk", 0)
    assert base.key == _req("walk", 0).key
    assert (
        len(
            {
                base.key,
                _req("walk", 1).key,
                _req("run", 0).key,
                _req("walk", 0, template="original_code").key,
                _req("walk", 0, temperature=0.7).key,
                _req("walk", 0, max_tokens=64).key,
                _req("walk", 0, repetition_penalty=1.1).key,
            }
        )
        == 7
    )
    other_seed = make_request(
        "walk",
        0,
        endpoint="chat",
        model="m",
        template=TEMPLATES["paper"],
        sampling=SamplingConfig(),
        global_seed=1,
    )
    other_model = make_request(
        "walk",
        0,
        endpoint="chat",
        model="m2",
        template=TEMPLATES["paper"],
        sampling=SamplingConfig(),
        global_seed=0,
    )
    assert other_seed.key != base.key and other_model.key != base.key
    assert derive_seed(0, "walk", 0) == base.seed and 0 <= base.seed < 2**31
    assert retry_seed(base.seed, 0) == base.seed != retry_seed(base.seed, 1)


def test_paper_prompt_is_default_and_code_prompt_is_named() -> None:
    assert TEMPLATES["paper"].user_text("walk") == (
        "Describe a person's body movements who is performing the action walk in detail"
    )
    assert TEMPLATES["original_code"].user_text("walk").endswith("walk in details")
    assert resolve_template(PromptConfig()) is TEMPLATES["paper"]
    # legacy completions get exactly f_prompt(x), as the original code sent it
    assert TEMPLATES["paper"].completion_prompt("walk") == TEMPLATES["paper"].user_text("walk")
    msgs = TEMPLATES["body_parts_fewshot"].messages("walk")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[-1]["content"].endswith("action walk in detail")
    custom = resolve_template(PromptConfig(template="paper", system="Only body parts."))
    assert custom.name == "paper+custom" and custom.digest() != TEMPLATES["paper"].digest()
    with pytest.raises(ConfigError, match="label"):
        resolve_template(PromptConfig(prompt="no placeholder"))
    with pytest.raises(ConfigError, match="unknown template"):
        resolve_template(PromptConfig(template="nope"))


def test_torn_last_line_is_ignored_then_cut_before_appending(tmp_path) -> None:
    path = tmp_path / "c.jsonl"
    with DescriptionCache(path) as cache:
        cache.append(_rec("walk", 0))
        cache.append(_rec("walk", 1))
    whole = path.read_bytes()
    path.write_bytes(whole + json.dumps(_rec("walk", 2)).encode()[:40])  # kill -9 mid-write
    assert len(read_records(path).records) == 2
    assert read_records(path).torn_bytes == 40
    with DescriptionCache(path) as cache:
        assert len(cache) == 2 and _rec("walk", 2)["key"] not in cache
        cache.append(_rec("walk", 2))
    recs = read_records(path).records
    assert [r["i"] for r in recs] == [0, 1, 2] and path.read_bytes().endswith(b"\n")


def test_corrupt_middle_line_is_an_error_naming_file_and_line(tmp_path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(_rec("walk", 0)) + "\n{not json\n" + json.dumps(_rec("walk", 1)) + "\n")
    with pytest.raises(CacheError, match=r"c\.jsonl: line 2"):
        read_records(path)
    path.write_text(json.dumps({"key": "k", "label": "x"}) + "\n")
    with pytest.raises(CacheError, match="'i'"):
        read_records(path)


def test_one_writer_per_file(tmp_path) -> None:
    path = tmp_path / "c.jsonl"
    with DescriptionCache(path), pytest.raises(CacheError, match="another process"):
        DescriptionCache(path)


def test_reader_sees_other_parts_but_writes_only_its_own(tmp_path) -> None:
    a, b = tmp_path / "parts" / "a.jsonl", tmp_path / "parts" / "b.jsonl"
    with DescriptionCache(a) as ca:
        ca.append(_rec("walk", 0))
    with DescriptionCache(b, [tmp_path / "parts"]) as cb:
        assert _rec("walk", 0)["key"] in cb
        cb.append(_rec("run", 0))
    assert len(read_records(a).records) == 1 and len(read_records(b).records) == 1


def test_merge_unions_and_reports_conflicts(tmp_path) -> None:
    a, b, out = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "m.jsonl"
    with DescriptionCache(a) as ca:
        for r in (_rec("walk", 0), _rec("walk", 1)):
            ca.append(r)
    with DescriptionCache(b) as cb:
        cb.append(_rec("walk", 1))  # duplicate, same text
        cb.append(_rec("walk", 0, text="something else entirely"))  # conflict
        cb.append(_rec("run", 0))
    rep = merge_caches([a, b], out)
    assert rep.records == 3 and rep.duplicates == 1 and len(rep.conflicts) == 1
    assert rep.conflicts[0]["kept"] == "walk 0"
    assert [(r["label"], r["i"]) for r in read_records(out).records] == [("run", 0), ("walk", 0), ("walk", 1)]
    # idempotent: merging the merged file with its parts changes nothing
    again = merge_caches([out, a], tmp_path / "m2.jsonl")
    assert again.records == 3 and not again.conflicts


def test_load_descriptions_orders_by_i_and_takes_first_k(tmp_path) -> None:
    path = tmp_path / "c.jsonl"
    with DescriptionCache(path) as c:
        for i in (3, 1, 0, 2):
            c.append(_rec("walk", i))
        c.append(_rec("run", 0))
        c.append(_rec("run", 2))  # gap at i=1
    d = load_descriptions(path)
    assert d["walk"] == ["walk 0", "walk 1", "walk 2", "walk 3"] and d["run"] == ["run 0"]
    assert load_descriptions(tmp_path, k=1) == {"walk": ["walk 0"], "run": ["run 0"]}
    with pytest.raises(CacheError, match="'run' has only 1"):
        load_descriptions(path, k=2)


def test_load_descriptions_refuses_mixed_generations_unless_selected(tmp_path) -> None:
    path = tmp_path / "c.jsonl"
    with DescriptionCache(path) as c:
        c.append(_rec("walk", 0, text="paper text here"))
        c.append(_rec("walk", 0, text="code text here", template="original_code"))
    with pytest.raises(CacheError, match="two different descriptions"):
        load_descriptions(path)
    assert load_descriptions(path, template="original_code") == {"walk": ["code text here"]}
    assert load_descriptions(path, template=TEMPLATES["paper"].digest()) == {"walk": ["paper text here"]}


def test_failure_log_keeps_only_outstanding_failures(tmp_path) -> None:
    path = tmp_path / "f.failures.jsonl"
    log = FailureLog(path)
    log.record({"key": "a", "label": "x", "i": 0, "reason": "timeout"})
    assert log.finalize() == 1
    log2 = FailureLog(path)
    assert set(log2.previous) == {"a"}
    assert log2.finalize() == 0 and not path.exists()


def test_partition_is_deterministic_complete_and_disjoint() -> None:
    labels = [f"label {j}" for j in range(200)]
    parts = [select_labels(labels, Part(i, 3)) for i in range(3)]
    assert sorted(lab for p in parts for lab in p) == sorted(labels)
    assert all(len(p) > 40 for p in parts)  # roughly balanced
    # independent of the order in which a process read its labels
    assert set(select_labels(list(reversed(labels)), Part(1, 3))) == set(parts[1])
    assert label_part("walk", 7) == label_part("walk", 7)


def test_part_from_environment() -> None:
    assert part_from_env({}) == Part(0, 1, "single")
    assert part_from_env({"RANK": "2", "WORLD_SIZE": "4"}) == Part(2, 4, "rank")
    slurm = {
        "SLURM_ARRAY_TASK_ID": "5",
        "SLURM_ARRAY_TASK_COUNT": "8",
        "SLURM_ARRAY_TASK_MIN": "1",
        "RANK": "0",
        "WORLD_SIZE": "1",
    }
    assert part_from_env(slurm) == Part(4, 8, "slurm-array")
    assert part_from_env(slurm, "1/2") == Part(1, 2, "explicit")
    with pytest.raises(ConfigError):
        parse_part("3/2")
    with pytest.raises(ConfigError):
        parse_part("x")


def test_plan_requests_k_per_label() -> None:
    reqs = plan_requests(
        iter(["a", "b"]),  # any iterable, not only a list
        3,
        endpoint="completions",
        model="m",
        template=TEMPLATES["paper"],
        sampling=SamplingConfig(),
        global_seed=0,
    )
    # i-major: an interrupted run leaves every label with the same number of descriptions
    assert [(r.label, r.i) for r in reqs] == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert len({r.key for r in reqs}) == 6 and len({r.seed for r in reqs}) == 6


def test_merge_command_fails_on_conflicts_unless_allowed(tmp_path, capsys) -> None:
    from tests.describe_cli import cli

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    with DescriptionCache(a) as ca:
        ca.append(_rec("walk", 0))
    with DescriptionCache(b) as cb:
        cb.append(_rec("walk", 0, text="another answer for the same key"))
    args = ["describe", "merge", "--inputs", str(a), str(b), "--out", str(tmp_path / "m.jsonl")]
    assert cli([*args, "--report", str(tmp_path / "r.json")]) == 1
    assert "1 conflicts" in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["conflicts"][0]["dropped_from"] == str(b)
    assert cli([*args, "--allow-conflicts"]) == 0
