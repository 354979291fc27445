"""Data-parallel runs under torch's launcher: identical weights on every rank, the single-process result
within a documented tolerance, rank 0 the only writer, one clear error, no hang."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import compress
from tests.conftest import tiny_recipe

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4  # |weight difference| vs one process with the same global batch: float summation order only

SCRIPT = """
import hashlib, os, sys
import compress
res = compress.run(compress.load_recipe(sys.argv[1]))
blob = b"".join(p.detach().contiguous().numpy().tobytes() for p in res.model.parameters())
with open(os.path.join(sys.argv[2], "rank" + os.environ["RANK"] + ".sha"), "w") as fh:
    fh.write(hashlib.sha256(blob).hexdigest() + " " + str(res.output))
"""


def _recipe(tmp_path: Path, streamed: bool = False) -> Path:
    raw = tiny_recipe(tmp_path, model={"name": "lenet-300-100"},
                      pipeline=[{"train": {"epochs": 2, "batch_size": 64, "optimizer": "adamw", "lr": 0.002}},
                                {"prune": {"rate": 80}}, {"finetune": {"epochs": 1, "batch_size": 64}}, "evaluate"])
    if streamed:  # each rank decodes only its share of every batch
        raw["data"] = {"name": "digits", "in_memory": False, "workers": 0}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


@pytest.mark.slow
@pytest.mark.parametrize("streamed", [False, True], ids=["in-memory", "streamed"])
def test_two_ranks_hold_identical_weights_and_match_one_process(tmp_path, streamed):
    recipe = _recipe(tmp_path, streamed)
    (tmp_path / "script.py").write_text(SCRIPT)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(tmp_path / "script.py"), str(recipe), str(tmp_path)], env=_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (h0, out0), (h1, out1) = ((tmp_path / f"rank{r}.sha").read_text().split() for r in (0, 1))
    assert h0 == h1  # every rank holds the same weights (masks applied after the all-reduce)
    assert out0.endswith("model.mzip") and out1 == "None"  # rank 0 alone wrote
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model.mzip"]
    single = compress.run(compress.load_recipe(recipe, overrides=[f"output={tmp_path / 'single'}"]))
    job = compress.load(tmp_path / "out" / "model.mzip")
    diff = max(float((a - b).abs().max()) for a, b in zip(job.state_dict().values(),
                                                            single.model.state_dict().values(), strict=True))
    assert diff <= TOLERANCE
    assert int((job[1].weight == 0).sum()) == int((single.model[1].weight == 0).sum())  # the same sparsity


@pytest.mark.slow
def test_nproc_runs_the_job_and_a_failing_rank_is_one_line(tmp_path):
    recipe = _recipe(tmp_path)
    cli = [sys.executable, "-m", "cli", "run", str(recipe)]
    done = subprocess.run([*cli, "--nproc", "2", "--json", str(tmp_path / "r.json"), "-q"], env=_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("wrote ") == 1 and (tmp_path / "r.json").is_file()
    bad = subprocess.run([*cli, "--nproc", "2", "--set", "prune.rate=100"], env=_env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    lines = [line for line in bad.stderr.splitlines() if line.strip() and not line.startswith("using ")]
    assert bad.returncode == 2 and lines[0].startswith("rank ") and "prune.rate: must be < 100.0" in lines[0]
    assert len(lines) <= 2 and "Traceback" not in bad.stderr
    zero = subprocess.run([*cli, "--nproc", "0"], env=_env(), cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert zero.returncode == 2 and "--nproc must be a whole number ≥ 1" in zero.stderr


def test_a_rank_that_cannot_reach_the_rendezvous_exits_2_without_hanging(tmp_path):
    recipe = _recipe(tmp_path)
    env = _env(WORLD_SIZE="2", RANK="1", LOCAL_RANK="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29577",
               MODELZIP_DIST_TIMEOUT="2")
    done = subprocess.run([sys.executable, "-m", "cli", "run", str(recipe), "-q"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and lines[0].startswith("rank 1: error: cannot join the job's rendezvous"), done.stderr
    assert not (tmp_path / "out").exists()


def test_a_device_without_a_distributed_backend_is_refused(monkeypatch):
    from compress.distributed import join
    from compress.errors import InputError

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(InputError, match="no backend for device 'mps'"):
        join(torch.device("mps"))
