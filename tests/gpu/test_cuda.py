"""The CUDA path end to end (skipped without a CUDA device; run on a GPU machine, never required by CI)."""
from __future__ import annotations

import pytest
import torch

import compress
from tests.conftest import tiny_recipe

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("in_memory", [True, False])
def test_train_prune_quantize_evaluate_save_load_on_cuda(tmp_path, in_memory):
    raw = tiny_recipe(tmp_path, device="cuda")
    raw["data"] = {"name": "digits", "in_memory": in_memory, "workers": 2}
    raw["pipeline"] = [{"train": {"epochs": 3, "batch_size": 32, "optimizer": "adamw", "lr": 0.002,
                                  "precision": "bf16"}},
                       {"prune": {"rate": 50}}, {"quantize": {"bits": 8}},
                       {"finetune": {"epochs": 1, "precision": "fp16"}}, "evaluate"]
    res = compress.run(compress.load_recipe(raw))
    assert res.state.ctx.device.type == "cuda" and res.report.rows[-1].accuracy > 90.0
    x = res.state.data.test.head(64).x
    expected = res.model.cpu().eval()(x)
    assert torch.equal(compress.load(res.output, device="cpu")(x), expected)
    on_gpu = compress.load(res.output, device="cuda")(x.cuda()).cpu()
    assert torch.allclose(on_gpu, expected, atol=1e-3)


def test_channel_pruning_and_latency_on_cuda(tmp_path):
    raw = tiny_recipe(tmp_path, device="cuda")
    raw["pipeline"] = [raw["pipeline"][0], {"prune": {"granularity": "channel", "rate": 50}},
                       {"finetune": {"epochs": 1}}, "evaluate"]
    res = compress.run(compress.load_recipe(raw))
    rows = res.report.rows
    assert rows[-1].macs < rows[0].macs and rows[-1].latency_ms > 0
