"""The context-adaptive coder: exact round trips, rates near the entropy, bounded decoding of forged streams,
and a per-file budget the encoder and the reader agree on."""
import math
import random

import numpy as np
import pytest
import torch

from compress.artifact import gridcode
from compress.artifact.container import _check_shapes
from compress.artifact.encodings import decode_tensor, encode_tensor
from compress.artifact.rangecoder import Decoder, Encoder, Model
from compress.errors import ArtifactError


def _roundtrip(symbols: list[int], size: int) -> bytes:
    enc, model = Encoder(), Model(size)
    for s in symbols:
        enc.encode(model, s)
    data = enc.finish()
    dec, model = Decoder(data), Model(size)
    assert [dec.decode(model) for _ in symbols] == symbols
    return data


@pytest.mark.parametrize("size", [1, 2, 3, 17, 256])
def test_range_coder_round_trips(size):
    rng = random.Random(size)
    for n in (0, 1, 5, 3000):
        _roundtrip([min(size - 1, int(rng.expovariate(0.7))) for _ in range(n)], size)


def test_range_coder_carries_and_long_runs():
    _roundtrip([0] * 100_000 + [1] + [0] * 1000 + [1] * 5, 2)  # the carry path: 0xFF runs in ``low``
    _roundtrip([255] * 70_000 + [0], 256)  # counts halved past 2^16


def test_range_coder_is_within_one_percent_of_the_entropy():
    rng = random.Random(0)
    p, n = 0.12, 200_000
    data = _roundtrip([int(rng.random() < p) for _ in range(n)], 2)
    entropy = n * -(p * math.log2(p) + (1 - p) * math.log2(1 - p)) / 8
    assert len(data) <= entropy * 1.01 + 8, (len(data), entropy)


def test_forged_streams_decode_to_valid_codes_without_errors():
    rng = np.random.default_rng(0)
    for _ in range(50):
        data = rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
        codes = gridcode.decode(data, (7, 9), 5, 2)
        assert codes.shape == (7, 9) and codes.min() >= 0 and codes.max() < 5


@pytest.mark.parametrize("zero", [None, 0, 3])
def test_grids_round_trip(zero):
    rng = np.random.default_rng(1)
    for _ in range(100):
        rows, cols = (int(x) for x in rng.integers(1, 25, 2))
        book = int(rng.integers(max(1, (zero or 0) + 1), 40))
        codes = rng.integers(0, book, (rows, cols))
        if zero is not None:
            codes[rng.random((rows, cols)) < rng.random()] = zero
            codes[rng.random(rows) < 0.3] = zero  # dead rows
            codes[:, rng.random(cols) < 0.3] = zero  # dead columns
        assert np.array_equal(gridcode.decode(gridcode.encode(codes, book, zero), (rows, cols), book, zero), codes)


def _structured(seed: int = 0) -> torch.Tensor:
    """A pruned, weight-shared layer as variational dropout leaves one: dead units, dead inputs, skewed codes."""
    g = torch.Generator().manual_seed(seed)
    book = torch.linspace(-0.4, 0.4, 32)
    codes = torch.clamp(torch.round(torch.randn(300, 784, generator=g) * 4 + 16), 0, 31).long()
    keep = torch.rand(300, 784, generator=g) < 0.12
    keep[torch.rand(300, generator=g) < 0.7] = False
    keep[:, torch.rand(784, generator=g) < 0.4] = False
    return book[codes] * keep


def test_context_coding_beats_the_index_and_lzma_forms_on_a_pruned_layer():
    w = _structured()
    plain = encode_tensor(w)
    budget = gridcode.Budget()
    coded = encode_tensor(w, budget=budget)
    assert coded.meta["z"] == "ctx" and plain.meta.get("z") != "ctx"
    assert len(coded.payload) < 0.9 * len(plain.payload), (len(coded.payload), len(plain.payload))
    assert torch.equal(decode_tensor(coded.meta, coded.payload), w)
    assert budget.room == gridcode.LIMIT - w.numel()


def test_a_float16_exact_book_is_context_coded_in_half_its_bytes():
    wide = _structured()
    half = wide.half().float()
    assert not torch.equal(half, wide)  # linspace's values are not all float16
    a, b = encode_tensor(half, budget=gridcode.Budget()), encode_tensor(wide, budget=gridcode.Budget())
    assert a.meta["z"] == b.meta["z"] == "ctx" and a.meta.get("bh") == 1 and "bh" not in b.meta
    assert len(b.payload) - len(a.payload) == 2 * 32  # the book's bytes; the codes' stream is the same
    assert torch.equal(decode_tensor(a.meta, a.payload), half)


def test_the_budget_is_spent_only_within_the_limit():
    w = _structured()
    budget = gridcode.Budget(room=w.numel() - 1)
    assert encode_tensor(w, budget=budget).meta.get("z") != "ctx"  # no room: the other forms
    assert budget.tries == gridcode.LIMIT  # and no time spent trying
    budget = gridcode.Budget(tries=w.numel() * 2)
    encode_tensor(w, budget=budget)
    assert budget.tries == w.numel() and not budget.allows(w.numel() + 1)


def test_reader_refuses_more_context_coded_values_than_any_writer_stores(tmp_path):
    meta = {"dtype": "float32", "shape": [1024, 512], "enc": "codebook", "bits": 1, "book": 2, "z": "ctx",
            "parts": [8, 1]}
    with pytest.raises(ArtifactError, match="context-coded"):
        _check_shapes(tmp_path / "f.mzip", {"a": meta, "b": {**meta, "shape": [1]}}, None)
    with pytest.raises(ValueError, match="impossible size"):
        decode_tensor({**meta, "shape": [1024, 513]}, bytes(9))
    with pytest.raises(ValueError, match="code of zero"):
        decode_tensor({**meta, "shape": [4], "zero": 2}, bytes(9))


def test_inspect_names_the_coder_and_counts_the_non_zeros(tmp_path):
    from compress import artifact
    from compress.artifact import ModelSpec

    w = _structured()
    path = tmp_path / "m.mzip"
    path.write_bytes(artifact.to_bytes({"1.weight": w}, ModelSpec("lenet-300-100")))
    (row,) = artifact.describe(artifact.read_header(path))
    assert row["encoding"] == "codebook+context"
    assert row["sparsity"] == pytest.approx(1 - int((w != 0).sum()) / w.numel())
