"""Round trips for every encoding and bit width, and sizes against the exact budget."""
import math

import numpy as np
import pytest
import torch

from compress.artifact import LinearGrid, decode_tensor, encode_tensor
from compress.artifact.bitpack import decode_index, encode_index, pack, unpack

ALLOWANCE = 64  # bytes of fixed per-tensor overhead allowed beside the payload budget


def roundtrip(t: torch.Tensor, grid: LinearGrid | None = None) -> tuple[torch.Tensor, int]:
    enc = encode_tensor(t, grid)
    return decode_tensor(enc.meta, enc.payload), len(enc.payload)


@pytest.mark.parametrize("bits", range(1, 21))
def test_pack_unpack_every_width(bits):
    v = np.random.default_rng(bits).integers(0, 2 ** bits, 1001)
    data = pack(v, bits)
    assert len(data) == math.ceil(1001 * bits / 8)
    assert np.array_equal(unpack(data, bits, 1001), v)


@pytest.mark.parametrize("density", [0.0, 0.001, 0.05, 0.5, 1.0])
def test_index_roundtrip(density):
    rng = np.random.default_rng(0)
    pos = np.sort(rng.choice(10_000, int(10_000 * density), replace=False))
    k, unary, rem = encode_index(pos)
    assert np.array_equal(decode_index(k, unary, rem, len(pos)), pos)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int64])
def test_dense_exact(dtype):
    t = (torch.randn(17, 9) * 100).to(dtype)
    out, _ = roundtrip(t)
    assert out.dtype == dtype and torch.equal(out, t)


def test_sparse_exact_and_within_budget():
    torch.manual_seed(0)
    n, s = 100_000, 0.9
    t = torch.randn(n) * (torch.rand(n) > s)
    out, size = roundtrip(t)
    assert torch.equal(out, t)
    assert size <= n * (1 - s) * 32 / 8 + n / 8 + ALLOWANCE


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("per_channel", [True, False])
def test_linear_codes_every_width(bits, per_channel):
    torch.manual_seed(bits)
    w = torch.randn(64, 32, 3, 3)
    qmax = 2 ** bits - 1
    if per_channel:
        lo, hi = w.amin((1, 2, 3)), w.amax((1, 2, 3))
        grid = LinearGrid(bits, (hi - lo) / qmax, torch.round(-lo / ((hi - lo) / qmax)).to(torch.int32), 0)
    else:
        lo, hi = w.min(), w.max()
        grid = LinearGrid(bits, ((hi - lo) / qmax).reshape(1), torch.round(-lo / ((hi - lo) / qmax)).reshape(1).int(), None)
    wq = grid.dequantize(grid.quantize(w))
    out, size = roundtrip(wq, grid)
    assert torch.equal(out, wq)
    channels = 64 if per_channel else 1
    assert size <= w.numel() * bits / 8 + channels * 5 + ALLOWANCE


@pytest.mark.parametrize("bits", range(1, 9))
def test_codebook_every_width_dense_and_sparse(bits):
    torch.manual_seed(bits)
    book = torch.randn(2 ** bits)
    t = book[torch.randint(0, 2 ** bits, (5000,))]
    out, size = roundtrip(t)
    assert torch.equal(out, t) and size <= 5000 * bits / 8 + 4 * 2 ** bits + ALLOWANCE
    s = 0.8
    sparse = t * (torch.rand(5000) > s)
    out, size = roundtrip(sparse)
    assert torch.equal(out, sparse)
    assert size <= 5000 * (1 - s) * bits / 8 * 1.1 + 5000 / 8 + 4 * 2 ** bits + ALLOWANCE


def test_sparse_linear_codes_keep_zeros():
    torch.manual_seed(0)
    w = torch.randn(100, 50)
    scale = w.abs().amax(1) / 7
    grid = LinearGrid(4, scale, torch.full((100,), 8, dtype=torch.int32), 0)
    wq = grid.dequantize(grid.quantize(w)) * (torch.rand(100, 50) > 0.7)
    enc = encode_tensor(wq, grid)
    assert enc.meta["enc"] == "linear" and "nnz" in enc.meta
    assert torch.equal(decode_tensor(enc.meta, enc.payload), wq)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_skewed_codes_are_entropy_coded_below_their_packed_size(bits):
    torch.manual_seed(bits)
    w = torch.distributions.Laplace(0.0, 0.05).sample((128, 512))
    from compress.quantize.linear import fit_grid, project

    grid = fit_grid(w, bits)
    wq = project(w, grid)
    enc = encode_tensor(wq, grid)
    codes = grid.quantize(wq).flatten().numpy()
    p = np.bincount(codes) / codes.size
    entropy_bytes = -(p[p > 0] * np.log2(p[p > 0])).sum() * codes.size / 8
    assert enc.meta["z"] == "lzma"
    assert len(enc.payload) <= 0.92 * w.numel() * bits / 8 and len(enc.payload) <= 1.06 * entropy_bytes + 1024
    assert torch.equal(decode_tensor(enc.meta, enc.payload), wq)


def test_uniform_codes_stay_packed():
    grid = LinearGrid(4, torch.full((64,), 0.1), torch.full((64,), 8, dtype=torch.int32), 0)
    codes = torch.randint(0, 16, (64, 300), generator=torch.Generator().manual_seed(0))
    w = grid.dequantize(codes)
    enc = encode_tensor(w, grid)
    assert "stride" not in enc.meta and len(enc.payload) <= 64 * 300 * 4 / 8 + 64 * 5 + ALLOWANCE
    assert torch.equal(decode_tensor(enc.meta, enc.payload), w)


def test_a_float16_exact_codebook_is_stored_in_half_the_bytes_and_read_back_exactly():
    torch.manual_seed(3)
    book = torch.randn(32).half().float()
    t = book[torch.randint(0, 32, (60, 50))] * (torch.rand(60, 50) > 0.9)
    wide = t + (t != 0) * 1e-4  # the same codes on a book no float16 holds exactly
    half, full = encode_tensor(t), encode_tensor(wide)
    assert half.meta.get("bh") == 1 and "bh" not in full.meta
    assert torch.equal(decode_tensor(half.meta, half.payload), t)
    assert torch.equal(decode_tensor(full.meta, full.payload), wide)
    assert len(full.payload) - len(half.payload) >= 2 * 32 - 8, (len(full.payload), len(half.payload))


def test_a_half_book_flag_on_a_16_bit_tensor_is_refused():
    t = torch.tensor([0.5, -0.25, 0.5, 0.0] * 100, dtype=torch.float16)
    enc = encode_tensor(t)
    assert enc.meta["enc"] == "codebook" and "bh" not in enc.meta
    with pytest.raises(ValueError, match="precision"):
        decode_tensor({**enc.meta, "bh": 1}, enc.payload)
