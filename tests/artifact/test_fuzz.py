"""Property-based fuzzing of the artifact decoder: mutated bytes and forged manifests with recomputed
checksums only ever give a model or a ModelzipError, never another exception or unbounded memory."""
from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compress
from compress import artifact
from compress.artifact import ModelSpec
from compress.errors import ModelzipError
from compress.models import build_model
from compress.quantize import linear

KEYS = ["shape", "dtype", "enc", "parts", "nnz", "k", "bits", "stride", "axis", "book", "z", "zero"]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.sampled_from(
    ["float32", "int8", "bool", "dense", "sparse", "half", "codebook", "linear", "lzma", "ctx", "zstd", ""]),
    st.lists(st.integers(-3, 1 << 24), max_size=4))


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> bytes:
    """mnist-cnn stored with every encoding: dense, 8-bit grid, sparse 4-bit codebook (index + LZMA, and
    context-coded), fp16."""
    torch.manual_seed(0)
    model = build_model("mnist-cnn", {})
    with torch.no_grad():
        grid = linear.fit_grid(model[3].weight, 8)
        model[3].weight.copy_(linear.project(model[3].weight, grid))
        w = model[7].weight
        book = torch.linspace(float(w.min()), float(w.max()), 16)
        w.copy_(book[torch.randint(0, 16, w.shape)] * (torch.rand_like(w) < 0.1))
        w = model[9].weight  # skewed codes and dead inputs: the context coder wins
        codes = torch.where(torch.rand(w.shape) < 0.9, 3, torch.randint(0, 16, w.shape))
        w.copy_(torch.linspace(-0.3, 0.3, 16)[codes] * (torch.rand_like(w) < 0.4))
        w[:, 50:] = 0
        model[9].bias.copy_(model[9].bias.half().float())
    path = tmp_path_factory.mktemp("fuzz") / "v.mzip"
    compress.save(model, path, "mnist-cnn", grids={"3.weight": grid})
    header = artifact.read_header(path)  # 7.weight as the sparse index + LZMA form (the context coder won)
    enc = artifact.encode_tensor(model[7].weight)
    header.manifest["tensors"]["7.weight"], header.payloads["7.weight"] = enc.meta, enc.payload
    return artifact.assemble((header.manifest["tensors"], header.payloads), header.spec)


def _load(data: bytes, path: Path) -> None:
    path.write_bytes(data)
    try:
        compress.load(path)
    except ModelzipError:
        pass


_SETTINGS = settings(max_examples=int(os.environ.get("MODELZIP_FUZZ_EXAMPLES", 60)), deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@_SETTINGS
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=6),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_bytes_give_only_clean_errors(valid, tmp_path, flips, cut):
    buf = bytearray(valid)
    for where, mask in flips:
        buf[int(where * len(buf))] ^= mask
    if cut is not None:
        buf = buf[:int(cut * len(buf))]
    _load(bytes(buf), tmp_path / "m.mzip")


@_SETTINGS
@given(edits=st.lists(st.tuples(st.sampled_from(["0.weight", "3.weight", "7.weight", "9.weight", "9.bias"]),
                                st.sampled_from(KEYS), VALUES), min_size=1, max_size=4),
       junk=st.one_of(st.none(), st.binary(max_size=64)), versions=st.one_of(st.none(), st.dictionaries(
           st.sampled_from(["", "0", "7", "x"]), st.one_of(st.integers(-5, 5), st.text(max_size=3)), max_size=3)))
def test_forged_manifests_with_valid_checksums_give_only_clean_errors(valid, tmp_path, edits, junk, versions):
    src = tmp_path / "v.mzip"
    src.write_bytes(valid)
    header = artifact.read_header(src)
    metas = json.loads(json.dumps(header.manifest["tensors"]))
    payloads = dict(header.payloads)
    for name, key, value in edits:
        metas[name][key] = value
        if junk is not None:
            payloads[name] = junk
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        blob = artifact.assemble((metas, payloads), ModelSpec("mnist-cnn"),
                                 versions=versions if isinstance(versions, dict) else None)
    except (TypeError, ValueError):
        return  # not even JSON-serializable: no file a forger could write
    _load(blob, tmp_path / "f.mzip")
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) * 1024
    assert grown < 256 << 20, f"decoding grew the peak RSS by {grown >> 20} MB"


def test_the_fixture_is_valid_and_uses_every_encoding(valid, tmp_path):
    path = tmp_path / "v.mzip"
    path.write_bytes(valid)
    encodings = {m["enc"] + ("+sparse" if "nnz" in m else "") + ("+ctx" if m.get("z") == "ctx" else "")
                 for m in artifact.read_header(path).manifest["tensors"].values()}
    assert {"linear", "codebook+sparse", "codebook+ctx", "half"} <= encodings
    assert isinstance(compress.load(path), torch.nn.Module)
