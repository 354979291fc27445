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

from compress.artifact import bitpack, gridcode
from compress.artifact.bitpack import book_bytes, book_from, from_raw, raw_bytes

_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
    torch.int16, torch.int8, torch.uint8, torch.bool)}
_FLOATS = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_SAMPLE = 1 << 16  # bytes probed (with fast zlib) before paying for LZMA over a whole tensor
_MIN_GAIN = 0.10  # raw float weights gain ~7 %: not worth LZMA's time at scale
MAX_CODEBOOK = 256
_NEVER = 1 << 62  # cost of a candidate that cannot be used


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
        """``(q − z)·s`` in float32, built in one new tensor (a large layer decodes in about 1.5× its size)."""
        s, z = self._view(self.scale.float(), q.dim()), self._view(self.zero_point.float(), q.dim())
        return q.to(torch.float32, copy=True).sub_(z).mul_(s)

    def quantize(self, w: torch.Tensor) -> torch.Tensor:
        s, z = self._view(self.scale.float(), w.dim()), self._view(self.zero_point.float(), w.dim())
        return torch.clamp(torch.round(w.float() / s) + z, 0, 2 ** self.bits - 1).to(torch.int32)


@dataclass
class Encoded:
    meta: dict[str, Any]
    payload: bytes


def encode_tensor(t: torch.Tensor, grid: LinearGrid | None = None, entropy: bool = True,
                  budget: gridcode.Budget | None = None) -> Encoded:
    """Encode ``t`` with the smallest exact encoding; ``grid`` offers integer codes; ``budget`` (the file's)
    lets a small tensor of shared values try the context-adaptive coder too."""
    t = t.detach().cpu().contiguous()
    meta: dict[str, Any] = {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
    ranked = sorted(_candidates(t, grid), key=lambda c: c[0])
    enc_meta, payload = _materialize(ranked[0][1], entropy)
    if enc_meta.get("stride") == 8:  # entropy-coded codes were estimated best: check against packed ones
        packed = next((b for c, b in ranked if c < _NEVER and b.__name__ != "bytewise"), None)
        if packed is not None and (enc_meta.get("z") is None or enc_meta["bits"] < 8):
            alt_meta, alt_payload = _materialize(packed, entropy)
            if len(alt_payload) <= len(payload):
                enc_meta, payload = alt_meta, alt_payload
    if entropy and budget is not None and budget.allows(t.numel()) and _on_grid(t, grid) is None:
        budget.tries -= t.numel()
        book = _codebook_of(t.reshape(-1))
        if book is not None and book.numel() <= gridcode.MAX_BOOK:
            ctx_meta, ctx_payload = gridcode.encode_tensor(t, book)
            if len(ctx_payload) < len(payload):
                enc_meta, payload = ctx_meta, ctx_payload
                budget.room -= t.numel()
    meta.update(enc_meta)
    return Encoded(meta, payload)


def _materialize(build: Builder, entropy: bool) -> tuple[dict[str, Any], bytes]:
    """Run a candidate's builder and its entropy stage: order-0 for bytewise codes, gated LZMA otherwise."""
    enc_meta, parts = build()
    enc_meta = {**enc_meta, "parts": [len(p) for p in parts]}
    payload = b"".join(parts)
    if entropy and len(payload) > 64:
        coded = _entropy(payload, order0=enc_meta.get("stride") == 8)
        if coded is not None:
            enc_meta["z"], payload = "lzma", coded
    return enc_meta, payload


Builder = Callable[[], tuple[dict[str, Any], list[bytes]]]


def _candidates(t: torch.Tensor, grid: LinearGrid | None) -> list[tuple[int, Builder]]:
    flat, n, size = t.reshape(-1), t.numel(), t.element_size()
    out: list[tuple[int, Builder]] = [(n * size, lambda: ({"enc": "dense"}, [raw_bytes(t)]))]
    if t.dtype not in _FLOATS or n == 0:
        return out
    half = t.dtype == torch.float32 and torch.equal(flat.half().float(), flat)  # fp16-exact values (bits: 16)
    if half:
        out.append((n * 2, lambda: ({"enc": "half"}, [raw_bytes(flat.half())])))
    q = _on_grid(t, grid)
    if q is not None:
        out.extend(_linear_candidates(t, grid, q, None))
    book = _codebook_of(flat)
    if book is not None:
        out.extend(_book_candidates(flat, book, None, 0, size))
    nonzero = flat != 0
    nnz = int(nonzero.sum())
    if nnz == n or _sparse_loses(n, nnz, min(c for c, _ in out), size, half, grid.bits if q is not None else None,
                                 book is not None):
        return out
    pos = np.flatnonzero(nonzero.numpy())
    index_cost = bitpack.index_nbytes(pos)
    out.append((index_cost + nnz * size, lambda: _sparse(flat, pos, {"enc": "sparse"}, [raw_bytes(flat[pos])])))
    if half:
        out.append((index_cost + nnz * 2, lambda: _sparse(flat, pos, {"enc": "half"}, [raw_bytes(flat[pos].half())])))
    if q is not None:
        out.extend(_linear_candidates(t, grid, q, pos, index_cost))
    values = flat[pos]
    book = _codebook_of(values)
    if book is not None:
        out.extend(_book_candidates(flat, book, pos, index_cost, size, values))
    return out


def _sparse_loses(n: int, nnz: int, cheapest: int, size: int, half: bool, grid_bits: int | None,
                  coded: bool) -> bool:
    """True when no sparse form can be estimated cheaper than a dense one, so their positions (an int64
    per weight while built) are never computed. Positions cost at least one bit each (Rice-coded gaps),
    packed or raw values at least their width; entropy-coded codes lose to the dense codes whenever one bit
    per position is more than the zero/non-zero pattern's entropy (the rest of the two estimates is equal)."""
    widths = [8 * size] + ([16] if half else []) + ([grid_bits] if grid_bits else []) + ([1] if coded else [])
    if nnz * (min(widths) + 1) / 8 < cheapest:
        return False
    if grid_bits is None and not coded:
        return True
    d = nnz / n
    return nnz >= 1.03 * n * -(d * math.log2(d) + (1 - d) * math.log2(1 - d))


def _book_candidates(flat: torch.Tensor, book: torch.Tensor, pos: np.ndarray | None, cost: int, size: int,
                     values: torch.Tensor | None = None) -> list[tuple[int, Builder]]:
    bits = max(1, math.ceil(math.log2(len(book))))
    codes = torch.searchsorted(book, flat if values is None else values).numpy()
    book_size = len(book_bytes(book)[0])
    return [(cost + _codes_cost(codes, bits, bytewise) + book_size,
             _codebook_builder(flat, book, bits, pos, codes, bytewise)) for bytewise in (False, True)]


def _codes_cost(codes: np.ndarray, bits: int, bytewise: bool) -> int:
    """Bytes for ``codes``: packed at ``bits`` each, or (bytewise) one byte each then entropy coded,
    estimated from the order-0 entropy plus the coder's overhead."""
    if not bytewise:
        return bitpack.packed_nbytes(len(codes), bits)
    if len(codes) < 256:
        return _NEVER
    p = np.bincount(codes.astype(np.int64, copy=False)) / len(codes)
    p = p[p > 0]
    return int(-(p * np.log2(p)).sum() * len(codes) / 8 * 1.03) + 64


def _sparse(flat: torch.Tensor, pos: np.ndarray, meta: dict[str, Any], parts: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    k, unary, rem = bitpack.encode_index(pos)
    meta = {**meta, "nnz": len(pos), "k": k}
    return meta, [unary, rem, *parts]


def _codebook_of(values: torch.Tensor) -> torch.Tensor | None:
    """The sorted distinct values when there are at most ``MAX_CODEBOOK`` of them, else None. A sample spread
    over the tensor answers most tensors at once; a candidate book is then checked by lookup, not by sorting
    every value (``torch.unique`` took 15 s on alexnet's 38 M-weight layer)."""
    if len(values) == 0:
        return None
    sample = torch.unique(values[:: max(1, len(values) // 65536)])
    if sample.numel() > MAX_CODEBOOK:
        return None
    idx = torch.searchsorted(sample, values).clamp_(max=sample.numel() - 1)
    if torch.equal(sample[idx], values):
        return sample
    book = torch.unique(values)  # values the sample missed: the full set decides
    return book if book.numel() <= MAX_CODEBOOK else None


def _codebook_builder(flat: torch.Tensor, book: torch.Tensor, bits: int, pos: np.ndarray | None,
                      codes: np.ndarray, bytewise: bool) -> Builder:
    def build() -> tuple[dict[str, Any], list[bytes]]:
        raw, flag = book_bytes(book)
        meta: dict[str, Any] = {"enc": "codebook", "bits": bits, "book": book.numel(), **flag, **_stride(bytewise)}
        parts = [raw, bitpack.pack(codes, 8 if bytewise else bits)]
        return _sparse(flat, pos, meta, parts) if pos is not None else (meta, parts)

    build.__name__ = "bytewise" if bytewise else "packed"
    return build


def _on_grid(t: torch.Tensor, grid: LinearGrid | None) -> torch.Tensor | None:
    """``t``'s integer codes on ``grid``, or None when ``t`` is not exactly on it."""
    if grid is None:
        return None
    q = grid.quantize(t)
    return q if torch.equal(grid.dequantize(q).to(t.dtype), t) else None


def _linear_candidates(t: torch.Tensor, grid: LinearGrid, q: torch.Tensor, pos: np.ndarray | None,
                       index_cost: int = 0) -> list[tuple[int, Builder]]:
    codes = q.reshape(-1).numpy()
    codes = codes if pos is None else codes[pos]
    fixed = index_cost + grid.scale.numel() * 5

    def builder(bytewise: bool) -> Builder:
        def build() -> tuple[dict[str, Any], list[bytes]]:
            meta: dict[str, Any] = {"enc": "linear", "bits": grid.bits, "axis": grid.axis, **_stride(bytewise)}
            parts = [raw_bytes(grid.scale.float()), grid.zero_point.to(torch.uint8).numpy().tobytes(),
                     bitpack.pack(codes, 8 if bytewise else grid.bits)]
            return _sparse(t.reshape(-1), pos, meta, parts) if pos is not None else (meta, parts)

        build.__name__ = "bytewise" if bytewise else "packed"
        return build

    return [(fixed + _codes_cost(codes, grid.bits, bw), builder(bw)) for bw in (False, True)]


def _stride(bytewise: bool) -> dict[str, Any]:
    """Codes stored one per byte (then entropy coded) are marked; packed ones are the default."""
    return {"stride": 8} if bytewise else {}


def _entropy(payload: bytes, order0: bool = False) -> bytes | None:
    """LZMA over the payload when a quick probe promises ≥ 10 %; ``None`` if it does not pay.

    ``order0``: the payload is mostly one code per byte, so LZMA runs without literal context
    (lc=lp=pb=0), which makes its literal coder an adaptive order-0 arithmetic coder.
    """
    sample = payload[:_SAMPLE]
    if not order0 and len(zlib.compress(sample, 1)) > (1 - _MIN_GAIN) * len(sample):
        return None
    size = len(payload)
    preset = 9 | lzma.PRESET_EXTREME if size < (1 << 20) else 6 if size < (16 << 20) else 1
    dict_size = max(1 << 12, min(1 << 26, 1 << (size - 1).bit_length()))
    filters: list[dict[str, Any]] = [{"id": lzma.FILTER_LZMA1, "preset": preset, "dict_size": dict_size}]
    if order0:
        filters = [{"id": lzma.FILTER_LZMA1, "preset": 6 if size < (8 << 20) else 1, "dict_size": 1 << 16,
                    "lc": 0, "lp": 0, "pb": 0}]
    packed = lzma.compress(payload, format=lzma.FORMAT_ALONE, filters=filters)
    return packed if len(packed) < size else None


def decode_tensor(meta: dict[str, Any], payload: bytes, grid_out: list[LinearGrid] | None = None) -> torch.Tensor:
    """Inverse of :func:`encode_tensor`; raises ``ValueError``/``KeyError`` on inconsistent input.

    For a tensor stored as linear codes, its grid is appended to ``grid_out`` when given.
    """
    dtype = _DTYPES[meta["dtype"]]
    shape = [int(s) for s in meta["shape"]]
    n = math.prod(shape)
    lengths = [int(x) for x in meta["parts"]]
    if min(lengths, default=0) < 0 or sum(lengths) > payload_limit(meta):
        raise ValueError("part lengths are negative or larger than the tensor's shape allows")
    if meta.get("z") == "lzma":
        payload = _bounded_lzma(payload, sum(lengths))
    elif meta.get("z") == "ctx":
        return gridcode.decode_tensor(meta, lengths, payload, dtype, shape)
    elif meta.get("z") is not None:
        raise ValueError(f"unknown entropy coder {str(meta['z'])[:20]!r}")
    if sum(lengths) != len(payload):
        raise ValueError("part lengths do not add up to the payload")
    parts, start = [], 0
    for length in lengths:
        parts.append(payload[start:start + length])
        start += length
    pos = None
    if "nnz" in meta:
        unary, rem, *parts = parts
        nnz, k = int(meta["nnz"]), int(meta["k"])
        if not 0 <= nnz <= n or not 0 <= k <= 40:
            raise ValueError(f"sparse index of {nnz} entries (k={k}) does not fit {n} elements")
        pos = bitpack.decode_index(k, unary, rem, nnz)
        if len(pos) and (pos[-1] >= n or pos[0] < 0):
            raise ValueError("sparse index points outside the tensor")
    values = _decode_values(meta, parts, dtype, pos, shape, grid_out if grid_out is not None else [])
    if pos is None:
        return values.reshape(shape)
    out = torch.zeros(n, dtype=dtype)
    out[torch.from_numpy(pos)] = values.reshape(-1)
    return out.reshape(shape)


def payload_limit(meta: dict[str, Any]) -> int:
    """The most bytes any encoding of a tensor of this shape and dtype may need (bounds decoding)."""
    shape = [int(s) for s in meta["shape"]]
    n = math.prod(shape)
    size = _DTYPES[meta["dtype"]].itemsize
    return n * max(size, 2) + n // 2 + 8 * (shape[0] if shape else 1) + 4096


def _bounded_lzma(data: bytes, expected: int) -> bytes:
    """LZMA-decode at most ``expected`` bytes: a small file cannot expand into gigabytes."""
    dec = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE, memlimit=1 << 28)
    out = dec.decompress(data, max_length=expected + 1)
    if len(out) != expected:
        raise ValueError(f"entropy-coded payload decodes to {'more' if len(out) > expected else 'fewer'} "
                         f"bytes than the {expected} its parts list")
    return out


def _decode_values(meta: dict[str, Any], parts: list[bytes], dtype: torch.dtype, pos: np.ndarray | None,
                   shape: list[int], grid_out: list[LinearGrid]) -> torch.Tensor:
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
    stride = int(meta.get("stride", bits))
    if stride not in (bits, 8):
        raise ValueError(f"code stride {stride} is neither {bits} nor 8")
    if enc == "codebook":
        book_raw, codes_raw = parts
        book = book_from(book_raw, meta, dtype, int(meta["book"]))
        codes = torch.from_numpy(bitpack.unpack(codes_raw, stride, count).astype(np.int64))
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
        codes = torch.from_numpy(bitpack.unpack(codes_raw, stride, count))  # uint8: one byte per weight
        if count and int(codes.max()) >= 2 ** bits:
            raise ValueError(f"code outside the {bits}-bit range")
        grid_out.append(grid)
        if pos is None:
            return grid.dequantize(codes.reshape(shape)).to(dtype)
        return _dequantize_sparse(grid, codes.to(torch.int32), pos, shape).to(dtype)
    raise ValueError(f"unknown encoding {enc!r}")


def _dequantize_sparse(grid: LinearGrid, codes: torch.Tensor, pos: np.ndarray, shape: list[int]) -> torch.Tensor:
    """Dequantize the non-zeros only: each takes its channel's scale and zero point."""
    if grid.axis is None:
        return (codes.float() - grid.zero_point.float()) * grid.scale.float()
    inner = math.prod(shape[grid.axis + 1:])
    channel = torch.from_numpy((pos // inner) % shape[grid.axis])
    return (codes.float() - grid.zero_point.float()[channel]) * grid.scale.float()[channel]
