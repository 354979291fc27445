"""Dense bit packing of unsigned integer codes, Rice coding of sparse indices, and tensors as raw bytes.

Everything is vectorized NumPy, processed in chunks so that temporary memory
stays a small multiple of the output.
"""
from __future__ import annotations

import numpy as np
import torch

_CHUNK = 1 << 20  # values per chunk; a multiple of 8 keeps chunk outputs byte aligned


def packed_nbytes(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


def pack(values: np.ndarray, bits: int) -> bytes:
    """Pack unsigned ``values`` (< 2**bits, bits 1–32) into ``ceil(n·bits/8)`` bytes, LSB first."""
    values = np.ascontiguousarray(values, dtype=np.uint32).ravel()
    if bits == 8:
        return values.astype(np.uint8).tobytes()
    out = []
    for start in range(0, len(values), _CHUNK):
        chunk = values[start:start + _CHUNK]
        as_bits = np.unpackbits(chunk.astype("<u4").view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")
        out.append(np.packbits(as_bits[:, :bits].ravel(), bitorder="little").tobytes())
    return b"".join(out)


def unpack(data: bytes | np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``count`` values as ``uint32`` (``uint8`` when bits ≤ 8)."""
    raw = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray | memoryview) else data
    if len(raw) < packed_nbytes(count, bits):
        raise ValueError(f"packed stream too short: {len(raw)} bytes for {count}×{bits} bits")
    if bits == 8:
        return raw[:count].copy()
    dtype = np.uint8 if bits <= 8 else np.uint32
    weights = (1 << np.arange(bits, dtype=np.uint64)).astype(np.uint32)
    out = np.empty(count, dtype=dtype)
    step = _CHUNK * bits // 8
    for i, start in enumerate(range(0, count, _CHUNK)):
        n = min(_CHUNK, count - start)
        as_bits = np.unpackbits(raw[i * step:i * step + packed_nbytes(n, bits)], bitorder="little")
        out[start:start + n] = (as_bits[:n * bits].reshape(n, bits) @ weights).astype(dtype)
    return out


def rice_parameter(gaps: np.ndarray) -> tuple[int, int]:
    """The Rice parameter ``k`` that minimises the coded size, and that size in bits."""
    if len(gaps) == 0:
        return 0, 0
    best = (0, -1)
    top = max(1, int(gaps.max()).bit_length() + 1)
    for k in range(0, min(top, 31)):
        cost = len(gaps) * (k + 1) + int((gaps >> k).sum())
        if best[1] < 0 or cost < best[1]:
            best = (k, cost)
    return best


def index_nbytes(positions: np.ndarray) -> int:
    """Bytes :func:`encode_index` needs for these sorted positions (without writing them)."""
    gaps = _gaps(positions)
    k, _ = rice_parameter(gaps)
    unary_bits = len(gaps) + int((gaps >> k).sum())
    return (unary_bits + 7) // 8 + packed_nbytes(len(gaps), k)


def encode_index(positions: np.ndarray) -> tuple[int, bytes, bytes]:
    """Rice-code the gaps between sorted ``positions``: ``(k, unary stream, remainder stream)``.

    The unary quotients and the k-bit remainders are separate streams so that
    decoding is vectorized (zeros in the unary stream end each quotient).
    """
    gaps = _gaps(positions)
    k, _ = rice_parameter(gaps)
    quot = gaps >> k
    ends = np.cumsum(quot + 1) - 1
    unary = np.ones(int(ends[-1]) + 1 if len(ends) else 0, dtype=np.uint8)
    unary[ends] = 0
    rem = pack(gaps & ((1 << k) - 1), k) if k else b""
    return k, np.packbits(unary, bitorder="little").tobytes(), rem


def decode_index(k: int, unary: bytes, rem: bytes, count: int) -> np.ndarray:
    """Inverse of :func:`encode_index`: ``count`` sorted positions as ``int64``."""
    bits = np.unpackbits(np.frombuffer(unary, dtype=np.uint8), bitorder="little")
    ends = np.flatnonzero(bits == 0)[:count]
    if len(ends) < count:
        raise ValueError("index stream ended early")
    quot = np.diff(ends, prepend=-1) - 1
    gaps = quot.astype(np.int64) << k
    if k:
        gaps |= unpack(rem, k, count).astype(np.int64)
    return np.cumsum(gaps + 1) - 1


def _gaps(positions: np.ndarray) -> np.ndarray:
    positions = np.asarray(positions, dtype=np.int64)
    return np.diff(positions, prepend=-1) - 1


def raw_bytes(t: torch.Tensor) -> bytes:
    """The tensor's elements as bytes, in memory order (native byte order)."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def from_raw(data: bytes, dtype: torch.dtype, count: int) -> torch.Tensor:
    """``count`` elements of ``dtype`` from ``data`` (a copy); a length that does not match is an error."""
    size = torch.empty((), dtype=dtype).element_size()
    if len(data) != count * size:
        raise ValueError(f"expected {count * size} bytes of {dtype}, got {len(data)}")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(dtype) if count else torch.empty(0, dtype=dtype)


def book_bytes(book: torch.Tensor) -> tuple[bytes, dict[str, int]]:
    """A codebook's values as bytes, and the manifest flag saying how: float16 when every value of a wider
    float book is exactly a float16 (k-means centroids are rounded so: half the book's bytes, which in a
    6 KB LeNet-5 file is 3 %), else the book's own dtype."""
    if book.dtype in (torch.float32, torch.float64):
        half = book.half()
        if torch.equal(half.to(book.dtype), book):
            return raw_bytes(half), {"bh": 1}
    return raw_bytes(book), {}


def book_from(data: bytes, meta: dict, dtype: torch.dtype, count: int) -> torch.Tensor:
    """Inverse of :func:`book_bytes`: ``count`` values of ``dtype``."""
    half = meta.get("bh") == 1 and dtype in (torch.float32, torch.float64)
    if meta.get("bh") not in (None, 1) or (meta.get("bh") == 1 and not half):
        raise ValueError("codebook stored at a precision its tensor's dtype cannot take")
    return from_raw(data, torch.float16, count).to(dtype) if half else from_raw(data, dtype, count)
