"""An adaptive range coder (LZMA's carry-propagating design) over frequency-count models.

Pure Python, so it is used only where every byte counts and the symbol count is small (the
caller bounds it): the weight grids of small sparse models, where it codes each symbol close to
its adaptive probability instead of LZMA's byte-oriented order-0 estimate.
"""
from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

_TOP = 1 << 24
_MASK32 = 0xFFFFFFFF
_MAX_TOTAL = 1 << 16  # counts are halved beyond this, so range // total keeps ≥ 8 bits of precision
_STEP = 2  # count increment; a fresh symbol starts at 1 (the KT estimator's ½ prior, doubled)


class Model:
    """Adaptive frequencies over ``size`` symbols (all seen once at the start)."""

    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        if not 1 <= size <= 256:
            raise ValueError(f"a model has 1 to 256 symbols, not {size}")
        self.counts = [1] * size
        self.total = size

    def update(self, symbol: int) -> None:
        self.counts[symbol] += _STEP
        self.total += _STEP
        if self.total > _MAX_TOTAL:
            self.counts = [(c + 1) >> 1 for c in self.counts]
            self.total = sum(self.counts)


class Encoder:
    """Symbols in, bytes out: ``encode`` each symbol with its model, then ``finish``."""

    def __init__(self) -> None:
        self.low, self.range, self.cache, self.pending = 0, _MASK32, 0, 1
        self.out = bytearray()

    def encode(self, model: Model, symbol: int) -> None:
        counts = model.counts
        start = sum(counts[:symbol])
        r = self.range // model.total
        self.low += start * r
        self.range = r * counts[symbol]
        while self.range < _TOP:
            self.range <<= 8
            self._shift_low()
        model.update(symbol)

    def _shift_low(self) -> None:
        low = self.low
        if low < 0xFF000000 or low > _MASK32:  # the top byte is settled: emit it and the 0xFF run before it
            carry = low >> 32
            byte = self.cache
            while self.pending:
                self.out.append((byte + carry) & 0xFF)
                byte = 0xFF
                self.pending -= 1
            self.cache = (low >> 24) & 0xFF
        self.pending += 1
        self.low = (low & 0x00FFFFFF) << 8

    def finish(self) -> bytes:
        for _ in range(5):
            self._shift_low()
        return bytes(self.out)


class Decoder:
    """Bytes in, symbols out; reading past the end reads zeros (a forged stream decodes to garbage that
    the caller's checks reject, never to an exception or a hang)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 5
        self.code = int.from_bytes(data[1:5].ljust(4, b"\0"), "big")
        self.range = _MASK32

    def decode(self, model: Model) -> int:
        counts = model.counts
        r = self.range // model.total
        target = min(self.code // r, model.total - 1)
        cumulative = list(accumulate(counts))
        symbol = bisect_right(cumulative, target)
        start = cumulative[symbol - 1] if symbol else 0
        self.code -= start * r
        self.range = r * counts[symbol]
        while self.range < _TOP:
            self.range <<= 8
            byte = self.data[self.pos] if self.pos < len(self.data) else 0
            self.code = ((self.code << 8) | byte) & _MASK32
            self.pos += 1
        model.update(symbol)
        return symbol
