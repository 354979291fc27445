"""Hostile files the safety tests feed modelzip: forged artifacts with valid checksums, bombs, odd files."""
from __future__ import annotations

import json
import lzma
import os
from pathlib import Path
from typing import Any

import torch

from compress import artifact
from compress.artifact import ModelSpec
from compress.models import build_model


def reassemble(path: Path, out: Path, *, spec: ModelSpec | None = None,
               edit: Any = None, payloads: dict[str, bytes] | None = None) -> Path:
    """Rewrite the artifact at ``path`` with a forged spec/manifest edits, checksum recomputed (a forger's file)."""
    header = artifact.read_header(path)
    metas = json.loads(json.dumps(header.manifest["tensors"]))
    data = dict(header.payloads)
    if edit is not None:
        edit(metas, data)
    if payloads:
        data.update(payloads)
    blob = artifact.assemble((metas, data), spec or header.spec, recipe=header.manifest.get("recipe"),
                             report=header.manifest.get("report"))
    out.write_bytes(blob)
    return out


def small_artifact(path: Path, name: str = "mnist-cnn") -> Path:
    torch.manual_seed(0)
    model = build_model(name, {})
    blob = artifact.to_bytes({k: v.detach() for k, v in model.state_dict().items()}, ModelSpec(name))
    path.write_bytes(blob)
    return path


def lzma_bomb(src: Path, out: Path) -> Path:
    """One tensor whose parts claim little but whose LZMA stream expands to 64 MiB of zeros."""
    bomb = lzma.compress(b"\0" * (64 << 20), format=lzma.FORMAT_ALONE)

    def edit(metas: dict, data: dict) -> None:
        name = "7.weight"
        metas[name] = {"dtype": "float32", "shape": [100, 1600], "enc": "dense", "parts": [640_000], "z": "lzma"}
        data[name] = bomb

    return reassemble(src, out, edit=edit)


def shape_inflation(src: Path, out: Path) -> Path:
    """A sparse tensor with one non-zero declaring shape [100, 2^23] (3.4 GB dense)."""
    def edit(metas: dict, data: dict) -> None:
        name = "7.weight"
        metas[name] = {"dtype": "float32", "shape": [100, 1 << 23], "enc": "sparse", "nnz": 1, "k": 0,
                       "parts": [1, 0, 4]}
        data[name] = b"\x00" + b"\x00\x00\x80\x3f"

    return reassemble(src, out, edit=edit)


def nan_weights(src: Path, out: Path) -> Path:
    state = {k: v.clone() for k, v in artifact.read(src).state.items()}
    state["7.weight"][0, 0] = float("nan")
    out.write_bytes(artifact.to_bytes(state, artifact.read_header(src).spec))
    return out


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


class _DataDependent(torch.nn.Module):
    """A classifier whose forward branches on its input's values: torch.export cannot capture it."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(in_channels * 28 * 28, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x.flatten(1))
        if bool(out.sum() > 0):
            return out
        return -out


def data_dependent(num_classes: int = 10, in_channels: int = 1) -> torch.nn.Module:
    return _DataDependent(num_classes, in_channels)
