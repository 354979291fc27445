"""Shared fixtures: tiny seeded recipes and hand-written IDX files (no downloads, no ../shared)."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def tiny_recipe(tmp_path: Path, **over: Any) -> dict[str, Any]:
    """mnist-cnn on digits, one quick epoch; output under tmp_path."""
    raw: dict[str, Any] = {
        "model": {"name": "mnist-cnn"},
        "data": {"name": "digits"},
        "pipeline": [{"train": {"epochs": 2, "batch_size": 32, "optimizer": "adamw", "lr": 0.002}}, "evaluate"],
        "seed": 0,
        "output": str(tmp_path / "out"),
        "device": "cpu",
    }
    raw.update(over)
    return raw


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


@pytest.fixture
def recipe_dict(tmp_path: Path) -> dict[str, Any]:
    return tiny_recipe(tmp_path)
