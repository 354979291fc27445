"""Context-adaptive coding of a weight tensor's codes, seen as a grid (output channels × the rest).

The layout the DeepCABAC idea suggests, sized for the sparse, weight-shared layers of small models:
which rows (output units) and columns (inputs) hold any non-zero at all, then, over the alive
rows × alive columns only, a significance bit per weight whose context is its left and upper
neighbours' bits, then each non-zero's code, whose context is the sign of the row's previous
non-zero. Every model adapts as it codes (:mod:`compress.artifact.rangecoder`), so nothing but
the stream is stored. Measured on LeNet-300-100 after variational dropout: 5.6 KB where LZMA
over one code per byte took 6.8 KB (benchmarks/RESULTS.md, session 8).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from compress.artifact.bitpack import book_bytes, book_from
from compress.artifact.rangecoder import Decoder, Encoder, Model

LIMIT = 1 << 19  # elements a file may store this way: pure Python, ~2 µs per element to decode at worst
MAX_BOOK = 64  # codes of up to 6 bits: a symbol's decode scans its model's counts once


@dataclass
class Budget:
    """What one file may still spend on this coder: ``room`` elements stored, ``tries`` elements encoded
    to compare (so saving a large model is not slowed by attempts that lose). One per file written."""

    room: int = LIMIT
    tries: int = LIMIT  # a ResNet-50 4-bit save: 3.2 s without the coder, 3.6 s with this, 4.8 s with 4 × LIMIT

    def allows(self, n: int) -> bool:
        return 0 < n <= min(self.room, self.tries)


class _Models:
    """Every adaptive model of one grid, fresh (encoder and decoder build the same)."""

    def __init__(self, book: int, zero: int | None) -> None:
        self.rows, self.cols = Model(2), Model(2)
        self.sig = [Model(2) for _ in range(4)]  # context: left bit + 2 · upper bit
        alphabet = book - (zero is not None)
        self.code = [Model(alphabet) for _ in range(3)] if alphabet > 0 else []  # previous non-zero: none, <, >
        self.zero = zero
        self.pivot = zero if zero is not None else book // 2  # codes below/above it are "negative"/"positive"


def encode(codes: np.ndarray, book: int, zero: int | None) -> bytes:
    """``codes`` (2-D, values < ``book``) as one range-coded stream; ``zero`` is the code of 0.0 (or None)."""
    models, enc = _Models(book, zero), Encoder()
    rows, cols = _alive(codes, zero)
    if zero is not None:
        for flag in rows.tolist():
            enc.encode(models.rows, flag)
        for flag in cols.tolist():
            enc.encode(models.cols, flag)
    sub = codes[rows.astype(bool)][:, cols.astype(bool)]
    upper = [0] * sub.shape[1]
    for line in sub.tolist():
        _encode_row(enc, models, line, upper)
    return enc.finish()


def _alive(codes: np.ndarray, zero: int | None) -> tuple[np.ndarray, np.ndarray]:
    if zero is None:
        return np.ones(codes.shape[0], bool), np.ones(codes.shape[1], bool)
    nonzero = codes != zero
    return nonzero.any(axis=1).astype(np.int8), nonzero.any(axis=0).astype(np.int8)


def _encode_row(enc: Encoder, models: _Models, line: list[int], upper: list[int]) -> None:
    """One alive row: significance bits (context: left, upper) and the codes of its non-zeros."""
    zero, pivot, left, last = models.zero, models.pivot, 0, 0
    for j, code in enumerate(line):
        if zero is not None:
            bit = int(code != zero)
            enc.encode(models.sig[left + 2 * upper[j]], bit)
            upper[j] = left = bit
            if not bit:
                continue
        enc.encode(models.code[last], code - (zero is not None and code > zero))
        last = 1 if code < pivot else 2


def decode(data: bytes, shape: tuple[int, int], book: int, zero: int | None) -> np.ndarray:
    """Inverse of :func:`encode`. A forged stream decodes to some grid of valid codes (the file's
    checksum has already been verified); the caller bounds ``shape``, and so the time."""
    n_rows, n_cols = shape
    models, dec = _Models(book, zero), Decoder(data)
    out = np.full(shape, zero if zero is not None else 0, dtype=np.int64)
    if zero is not None:
        rows = np.flatnonzero([dec.decode(models.rows) for _ in range(n_rows)])
        cols = np.flatnonzero([dec.decode(models.cols) for _ in range(n_cols)])
    else:
        rows, cols = np.arange(n_rows), np.arange(n_cols)
    upper = [0] * len(cols)
    for i in rows.tolist():
        out[i, cols] = _decode_row(dec, models, len(cols), upper)
    return out


def _decode_row(dec: Decoder, models: _Models, width: int, upper: list[int]) -> list[int]:
    zero, pivot, left, last = models.zero, models.pivot, 0, 0
    line = []
    for j in range(width):
        if zero is not None:
            bit = dec.decode(models.sig[left + 2 * upper[j]])
            upper[j] = left = bit
            if not bit:
                line.append(zero)
                continue
        code = dec.decode(models.code[last])
        code += zero is not None and code >= zero
        line.append(code)
        last = 1 if code < pivot else 2
    return line


def encode_tensor(t: torch.Tensor, book: torch.Tensor) -> tuple[dict[str, Any], bytes]:
    """``t`` (every value in the sorted ``book``) as the book's raw values and the stream of its codes."""
    codes = torch.searchsorted(book, t.reshape(-1)).numpy().reshape(t.shape[0] if t.dim() else 1, -1)
    zero = torch.nonzero(book == 0).flatten().tolist()
    stream = encode(codes, book.numel(), zero[0] if zero else None)
    raw, flag = book_bytes(book)
    meta = {"enc": "codebook", "bits": max(1, math.ceil(math.log2(book.numel()))), "book": book.numel(), **flag,
            **({"zero": zero[0]} if zero else {}), "z": "ctx", "parts": [len(raw), len(stream)]}
    return meta, raw + stream


def decode_tensor(meta: dict[str, Any], lengths: list[int], payload: bytes, dtype: torch.dtype,
                  shape: list[int]) -> torch.Tensor:
    """Inverse of :func:`encode_tensor`; ``ValueError`` on a manifest no writer produces."""
    n = math.prod(shape)
    size, zero = int(meta["book"]), meta.get("zero")
    if not 0 < n <= LIMIT or not 1 <= size <= MAX_BOOK or len(lengths) != 2 or sum(lengths) != len(payload):
        raise ValueError("context-coded tensor with an impossible size, codebook or part list")
    if zero is not None and not (isinstance(zero, int) and 0 <= zero < size):
        raise ValueError("the code of zero lies outside the codebook")
    book = book_from(payload[:lengths[0]], meta, dtype, size)
    rows = shape[0] if shape else 1
    codes = decode(payload[lengths[0]:], (rows, n // rows), size, zero)
    return book[torch.from_numpy(codes)].reshape(shape)
