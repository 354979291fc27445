"""Shared helpers and the session's trained baselines (no downloads, no ../shared).

Training dominates the suite's time, so each baseline is trained once per session and every
test that only needs *a* trained model starts from its artifact (``-c`` / ``model.checkpoint``).
"""
from __future__ import annotations

import copy
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

CNN_TRAIN = {"train": {"epochs": 2, "batch_size": 32, "optimizer": "adamw", "lr": 0.002}}
LENET_TRAIN = {"train": {"epochs": 3, "batch_size": 32, "optimizer": "adamw", "lr": 0.002}}


def tiny_recipe(tmp_path: Path, **over: Any) -> dict[str, Any]:
    """mnist-cnn on digits, two quick epochs; output under tmp_path."""
    raw: dict[str, Any] = {
        "model": {"name": "mnist-cnn"},
        "data": {"name": "digits"},
        "pipeline": [copy.deepcopy(CNN_TRAIN), "evaluate"],
        "seed": 0,
        "output": str(tmp_path / "out"),
        "device": "cpu",
    }
    raw.update(copy.deepcopy(over))
    return raw


def from_checkpoint(tmp_path: Path, checkpoint: Path, *stages: Any, **over: Any) -> dict[str, Any]:
    """A recipe that starts from ``checkpoint`` and runs ``stages`` then evaluates."""
    raw = tiny_recipe(tmp_path, **over)
    raw["model"] = {**raw["model"], "checkpoint": str(checkpoint)}
    raw["pipeline"] = [*stages, "evaluate"]
    return raw


def write_recipe(tmp_path: Path, raw: dict[str, Any], name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def write_idx(root: Path, n_train: int = 64, n_test: int = 32, seed: int = 0) -> Path:
    """Write tiny MNIST-format IDX files under ``root/MNIST/raw`` (class = brightest quadrant)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 50, (n, 28, 28)).astype(np.uint8)
        for i, lab in enumerate(labels):
            images[i, lab * 2:lab * 2 + 6, 4:20] = 255
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())
    return root


def _train(tmp: Path, model: str, train: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    import compress

    raw = tiny_recipe(tmp, model={"name": model}, pipeline=[train, "evaluate"])
    result = compress.run(compress.load_recipe(raw))
    return result.output, result.report.to_dict()


@pytest.fixture(scope="session")
def cnn_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mnist-cnn trained 2 epochs on digits (≈ 95 % test accuracy): the suite's shared baseline artifact."""
    return _train(tmp_path_factory.mktemp("cnn-base"), "mnist-cnn", CNN_TRAIN)[0]


@pytest.fixture(scope="session")
def cnn_base_report(cnn_base: Path) -> dict[str, Any]:
    from compress import artifact

    return artifact.read_header(cnn_base).manifest["report"]


@pytest.fixture(scope="session")
def lenet_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LeNet-300-100 trained 3 epochs on digits: a fast fully connected baseline."""
    return _train(tmp_path_factory.mktemp("lenet-base"), "lenet-300-100", LENET_TRAIN)[0]


@pytest.fixture(autouse=True, scope="session")
def _cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Measured-latency caches go to a session folder, never to the user's ~/.cache."""
    import os

    before = os.environ.get("MODELZIP_CACHE")
    os.environ["MODELZIP_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("MODELZIP_CACHE", None)
    else:
        os.environ["MODELZIP_CACHE"] = before


@pytest.fixture
def recipe_dict(tmp_path: Path) -> dict[str, Any]:
    return tiny_recipe(tmp_path)
