"""Per-tensor encodings: the smallest representation that reproduces the tensor exactly.

Candidates are sized analytically first; only the winner is actually encoded.
"""
from __future__ import annotations

import lzma
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from compress.artifact import bitpack

_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool)}
_FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_SAMPLE = 1 << 16  # bytes probed (with fast zlib) before paying for LZMA over a whole tensor
_MIN_GAIN = 0.10  # raw float weights gain ~7 %: not worth LZMA's time at scale
MAX_CODEBOOK = 256


@dataclass(frozen=True)
class LinearGrid:
    """Uniform affine grid: ``w = (q − zero_point) · scale``, q in [0, 2**bits)."""

    bits: int
    scale: torch.Tensor  # float32, one per channel along ``axis`` (or one value)
    zero_point: torch.Tensor  # integer, same shape as ``scale``
    axis: int | None = 0

    def _view(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        if self.axis is None:
            return t.reshape(())
        shape = [1] * ndim
        shape[self.axis] = -1
        return t.reshape(shape)

    def dequantize(self, q: torch.Tensor) -> torch.Tensor:
        s, z = self._view(self.scale.float(), q.dim()), self._view(self.zero_point.float(), q.dim())
        return (q.float() - z) * s

    def quantize(self, w: torch.Tensor) -> torch.Tensor:
        s, z = self._view(self.scale.float(), w.dim()), self._view(self.zero_point.float(), w.dim())
        return torch.clamp(torch.round(w.float() / s) + z, 0, 2 ** self.bits - 1).to(torch.int32)


@dataclass
class Encoded:
    meta: dict[str, Any]
    payload: bytes


def raw_bytes(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def from_raw(data: bytes, dtype: torch.dtype, count: int) -> torch.Tensor:
    size = torch.empty((), dtype=dtype).element_size()
    if len(data) != count * size:
        raise ValueError(f"expected {count * size} bytes of {dtype}, got {len(data)}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype) if count else torch.empty(0, dtype=dtype)


def encode_tensor(t: torch.Tensor, grid: LinearGrid | None = None, entropy: bool = True) -> Encoded:
    """Encode ``t`` with the smallest exact encoding; ``grid`` offers integer codes."""
    t = t.detach().cpu().contiguous()
    meta: dict[str, Any] = {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
    candidates = _candidates(t, grid)
    _, build = min(candidates, key=lambda c: c[0])
    enc_meta, parts = build()
    meta.update(enc_meta)
    meta["parts"] = [len(p) for p in parts]
    payload = b"".join(parts)
    if entropy and len(payload) > 64:
        packed = _entropy(payload)
        if packed is not None:
            meta["z"], payload = "lzma", packed
    return Encoded(meta, payload)


Builder = Callable[[], tuple[dict[str, Any], list[bytes]]]


def _candidates(t: torch.Tensor, grid: LinearGrid | None) -> list[tuple[int, Builder]]:
    flat, n, size = t.reshape(-1), t.numel(), t.element_size()
    out: list[tuple[int, Builder]] = [(n * size, lambda: ({"enc": "dense"}, [raw_bytes(t)]))]
    if t.dtype not in _FLOATS or n == 0:
        return out
    nonzero = flat != 0
    nnz = int(nonzero.sum())
    pos = np.flatnonzero(nonzero.numpy()) if nnz < n else None
    index_cost = bitpack.index_nbytes(pos) if pos is not None else 0
    if pos is not None:
        out.append((index_cost + nnz * size, lambda: _sparse(flat, pos, {"enc": "sparse"}, [raw_bytes(flat[pos])])))
    if t.dtype == torch.float32 and torch.equal(flat.half().float(), flat):  # fp16-exact values (bits: 16)
        out.append((n * 2, lambda: ({"enc": "half"}, [raw_bytes(flat.half())])))
        if pos is not None:
            out.append((index_cost + nnz * 2, lambda: _sparse(flat, pos, {"enc": "half"}, [raw_bytes(flat[pos].half())])))
    if grid is not None:
        out.append(_linear_candidate(t, grid, None))
        if pos is not None:
            out.append(_linear_candidate(t, grid, pos, index_cost))
    for subset, cost in ((None, 0), (pos, index_cost)) if pos is not None else ((None, 0),):
        book = _codebook_of(flat if subset is None else flat[subset])
        if book is not None:
            count = n if subset is None else len(subset)
            bits = max(1, math.ceil(math.log2(len(book))))
            total = cost + bitpack.packed_nbytes(count, bits) + len(book) * size
            out.append((total, _codebook_builder(flat, book, bits, subset)))
    return out


def _sparse(flat: torch.Tensor, pos: np.ndarray, meta: dict[str, Any], parts: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    k, unary, rem = bitpack.encode_index(pos)
    meta = {**meta, "nnz": len(pos), "k": k}
    return meta, [unary, rem, *parts]


def _codebook_of(values: torch.Tensor) -> torch.Tensor | None:
    if len(values) == 0 or torch.unique(values[:4096]).numel() > MAX_CODEBOOK:
        return None
    book = torch.unique(values)
    return book if book.numel() <= MAX_CODEBOOK else None


def _codebook_builder(flat: torch.Tensor, book: torch.Tensor, bits: int, pos: np.ndarray | None) -> Builder:
    def build() -> tuple[dict[str, Any], list[bytes]]:
        values = flat if pos is None else flat[pos]
        codes = torch.searchsorted(book, values).numpy()
        meta: dict[str, Any] = {"enc": "codebook", "bits": bits, "book": book.numel()}
        parts = [raw_bytes(book), bitpack.pack(codes, bits)]
        return _sparse(flat, pos, meta, parts) if pos is not None else (meta, parts)

    return build


def _linear_candidate(t: torch.Tensor, grid: LinearGrid, pos: np.ndarray | None,
                      index_cost: int = 0) -> tuple[int, Builder]:
    q = grid.quantize(t)
    if not torch.equal(grid.dequantize(q).to(t.dtype), t):
        return (1 << 62, lambda: ({}, []))  # not on the grid: never the smallest
    count = t.numel() if pos is None else len(pos)
    channels = grid.scale.numel()
    cost = index_cost + bitpack.packed_nbytes(count, grid.bits) + channels * 5

    def build() -> tuple[dict[str, Any], list[bytes]]:
        codes = q.reshape(-1).numpy()
        codes = codes if pos is None else codes[pos]
        meta: dict[str, Any] = {"enc": "linear", "bits": grid.bits, "axis": grid.axis}
        parts = [raw_bytes(grid.scale.float()), grid.zero_point.to(torch.uint8).numpy().tobytes(),
                 bitpack.pack(codes, grid.bits)]
        return _sparse(t.reshape(-1), pos, meta, parts) if pos is not None else (meta, parts)

    return cost, build


def _entropy(payload: bytes) -> bytes | None:
    """LZMA over the payload when a quick probe promises ≥ 10 %; ``None`` if it does not pay."""
    sample = payload[:_SAMPLE]
    if len(zlib.compress(sample, 1)) > (1 - _MIN_GAIN) * len(sample):
        return None
    size = len(payload)
    preset = 9 | lzma.PRESET_EXTREME if size < (1 << 20) else 6 if size < (16 << 20) else 1
    dict_size = max(1 << 12, min(1 << 26, 1 << (size - 1).bit_length()))
    filters = [{"id": lzma.FILTER_LZMA1, "preset": preset, "dict_size": dict_size}]
    packed = lzma.compress(payload, format=lzma.FORMAT_ALONE, filters=filters)
    return packed if len(packed) < size else None


def decode_tensor(meta: dict[str, Any], payload: bytes) -> torch.Tensor:
    """Inverse of :func:`encode_tensor`; raises ``ValueError``/``KeyError`` on inconsistent input."""
    dtype = _DTYPES[meta["dtype"]]
    shape = [int(s) for s in meta["shape"]]
    n = math.prod(shape)
    if meta.get("z") == "lzma":
        payload = lzma.decompress(payload, format=lzma.FORMAT_ALONE, memlimit=1 << 28)
    elif meta.get("z") is not None:
        raise ValueError(f"unknown entropy coder {meta['z']!r}")
    lengths = [int(x) for x in meta["parts"]]
    if sum(lengths) != len(payload) or min(lengths, default=0) < 0:
        raise ValueError("part lengths do not add up to the payload")
    parts, start = [], 0
    for length in lengths:
        parts.append(payload[start:start + length])
        start += length
    pos = None
    if "nnz" in meta:
        unary, rem, *parts = parts
        pos = bitpack.decode_index(int(meta["k"]), unary, rem, int(meta["nnz"]))
        if len(pos) and (pos[-1] >= n or pos[0] < 0):
            raise ValueError("sparse index points outside the tensor")
    values = _decode_values(meta, parts, dtype, pos, shape)
    if pos is None:
        return values.reshape(shape)
    out = torch.zeros(n, dtype=dtype)
    out[torch.from_numpy(pos)] = values.reshape(-1)
    return out.reshape(shape)


def _decode_values(meta: dict[str, Any], parts: list[bytes], dtype: torch.dtype, pos: np.ndarray | None,
                   shape: list[int]) -> torch.Tensor:
    enc = meta["enc"]
    count = math.prod(shape) if pos is None else len(pos)
    if enc in ("dense", "sparse"):
        (raw,) = parts
        return from_raw(raw, dtype, count)
    if enc == "half":
        (raw,) = parts
        return from_raw(raw, torch.float16, count).to(dtype)
    bits = int(meta["bits"])
    if not 1 <= bits <= 8:
        raise ValueError(f"bit width {bits} out of range")
    if enc == "codebook":
        book_raw, codes_raw = parts
        book = from_raw(book_raw, dtype, int(meta["book"]))
        codes = torch.from_numpy(bitpack.unpack(codes_raw, bits, count).astype(np.int64))
        if count and int(codes.max()) >= book.numel():
            raise ValueError("code outside the codebook")
        return book[codes]
    if enc == "linear":
        scale_raw, zero_raw, codes_raw = parts
        axis = None if meta["axis"] is None else int(meta["axis"])
        channels = 1 if axis is None else shape[axis]
        if len(zero_raw) != channels:
            raise ValueError(f"expected {channels} zero points, got {len(zero_raw)}")
        grid = LinearGrid(bits, from_raw(scale_raw, torch.float32, channels),
                          torch.frombuffer(bytearray(zero_raw), dtype=torch.uint8), axis)
        codes = torch.from_numpy(bitpack.unpack(codes_raw, bits, count).astype(np.int32))
        if pos is None:
            return grid.dequantize(codes.reshape(shape)).to(dtype)
        return _dequantize_sparse(grid, codes, pos, shape).to(dtype)
    raise ValueError(f"unknown encoding {enc!r}")


def _dequantize_sparse(grid: LinearGrid, codes: torch.Tensor, pos: np.ndarray, shape: list[int]) -> torch.Tensor:
    """Dequantize the non-zeros only: each takes its channel's scale and zero point."""
    if grid.axis is None:
        return (codes.float() - grid.zero_point.float()) * grid.scale.float()
    inner = math.prod(shape[grid.axis + 1:])
    channel = torch.from_numpy((pos // inner) % shape[grid.axis])
    return (codes.float() - grid.zero_point.float()[channel]) * grid.scale.float()[channel]
