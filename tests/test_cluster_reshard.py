"""World-size change: a 2-rank checkpoint resumes on 1 rank (same global batch via accumulation).

Parameters and optimizer state right after the resume equal those saved; the interrupted epoch neither
repeats nor skips a sample (the keys every rank handed to the model are recorded).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from tests.dist_helpers import launch as L

pytestmark = pytest.mark.dist

N = 64


def _keys_by_epoch(run: Path) -> dict[int, Counter]:
    out: dict[int, Counter] = {}
    for f in sorted(run.glob("keys-rank*.jsonl")):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            out.setdefault(rec["epoch"], Counter()).update(rec["keys"])
    return out


def _check_reshard(tmp: Path, engine_args: list[str]) -> None:
    run = tmp / "run"
    common = ["--run-dir", str(run), "--record-keys", "global_batch_size=8", *engine_args]
    L.run(L.torchrun_cmd(2, [*common, "--dump-end", "run_steps=3"]))
    first = L.result(run)
    assert first["status"] == "stopped" and first["step"] == 3
    L.run(L.torchrun_cmd(1, [*common, "--dump-start"]))
    second = L.result(run)
    assert second["status"] == "finished" and second["resumed_from"] == 3 and second["step"] == 16
    resume = L.events(run, "resume")
    assert resume[-1]["mode"] == "resharded 2->1 ranks" and resume[-1]["world_size"] == 1

    saved = torch.load(run / "state-end.pt", weights_only=True)
    loaded = torch.load(run / "state-start.pt", weights_only=True)
    assert saved["step"] == loaded["step"] == 3
    assert saved["model"].keys() == loaded["model"].keys()
    for name, t in saved["model"].items():
        assert torch.equal(t, loaded["model"][name]), f"parameter {name} differs after the world-size change"
    assert saved["optim_state"] and saved["optim_state"].keys() == loaded["optim_state"].keys()
    for pname, st in saved["optim_state"].items():
        for k, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(loaded["optim_state"][pname][k])), (
                pname,
                k,
            )

    epochs = _keys_by_epoch(run)
    every = {f"s{i:05d}" for i in range(N)}
    for epoch in (0, 1):
        seen = epochs[epoch]
        assert set(seen) == every, f"epoch {epoch}: skipped {sorted(every - set(seen))[:5]}"
        assert max(seen.values()) == 1, f"epoch {epoch}: repeated {[k for k, c in seen.items() if c > 1][:5]}"
    # the 1-rank run continued with 2 micro-batches of 4 per step: still 8 samples per step
    recs = L.train_records(run)
    assert {recs[s]["samples"] for s in recs} == {8}
    assert recs[2]["world_size"] == 2 and recs[4]["world_size"] == 1


def test_ddp_two_rank_checkpoint_resumes_on_one_rank(tmp_path: Path) -> None:
    _check_reshard(tmp_path, [])


def test_deepspeed_zero2_two_rank_checkpoint_resumes_on_one_rank(tmp_path: Path) -> None:
    _check_reshard(tmp_path, ["engine=deepspeed", "zero_stage=2"])
    # ZeRO-2 shards cannot load at another world size: the checkpoint was converted to the universal form
    # next to the native one (ds_to_universal --inject_missing_state) and loaded from there.
    step3 = tmp_path / "run" / "checkpoints" / "step-00000003"
    assert (step3 / "ds_universal" / "CONVERTED").is_file()
