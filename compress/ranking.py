"""Removing the lowest scores from one tensor or from many at once, without joining them.

Global pruning ranks every weight of a model together. Joining all scores into one tensor and calling
``kthvalue`` (or ``topk``) costs a copy of every score plus the sort's own buffers: 16–30 bytes per weight,
9 GB for a 600 M-weight model. Here the threshold comes from a two-pass radix select over the
float32 scores' order-preserving integer keys, one chunk at a time: the extra memory is one chunk's
keys and a 65,536-bin histogram, whatever the model's size. The result is exactly what sorting the
joined scores would give: among equal scores at the threshold, the first positions (tensor order, then
position) go.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

_CHUNK = 1 << 24  # scores looked at at once
_BINS = 1 << 16  # one radix pass sorts 16 of the key's 32 bits


def keep_top(scores: torch.Tensor, rate: float) -> torch.Tensor:
    """Boolean mask keeping all but the lowest ``rate`` % of ``scores`` (a flat tensor); a rate below
    100 always keeps at least one element."""
    n_remove = int(round(scores.numel() * rate / 100.0))
    if rate < 100.0:
        n_remove = min(n_remove, scores.numel() - 1)
    return keep_all_but(scores, n_remove)


def keep_all_but(scores: torch.Tensor, n_remove: int) -> torch.Tensor:
    """Boolean mask (shaped as ``scores``) removing its ``n_remove`` lowest scores; ties: first positions go."""
    return keep_all_but_many([scores], n_remove)[0]


def keep_all_but_many(scores: Sequence[torch.Tensor], n_remove: int) -> list[torch.Tensor]:
    """Boolean masks removing the ``n_remove`` lowest scores across all ``scores`` together, as if they
    were one flat tensor in the given order (among equal scores at the threshold, the first go)."""
    total = sum(s.numel() for s in scores)
    if n_remove <= 0 or n_remove >= total:
        fill = torch.ones_like if n_remove <= 0 else torch.zeros_like
        return [fill(s, dtype=torch.bool) for s in scores]
    threshold = _kth_smallest(scores, n_remove)
    # compared as float32, the precision they were ranked in (no copy for float32 scores)
    below = sum(int((s.float() < threshold).sum()) for s in scores)
    ties_to_remove = n_remove - below  # ≥ 1: the k-th smallest itself is a tie
    masks = []
    for s in scores:
        s = s.float()
        keep = s > threshold
        ties_to_remove = _keep_late_ties(s.flatten(), keep.view(-1), threshold, ties_to_remove)
        masks.append(keep)
    return masks


def _keep_late_ties(flat: torch.Tensor, keep: torch.Tensor, threshold: torch.Tensor, to_remove: int) -> int:
    """Marks as kept the ties at ``threshold`` in ``flat`` after the first ``to_remove``; how many of
    the ties to remove are left for the tensors that follow."""
    for start in range(0, flat.numel(), _CHUNK):
        tied = (flat[start:start + _CHUNK] == threshold).nonzero().flatten()
        if to_remove >= tied.numel():
            to_remove -= tied.numel()
            continue
        keep[tied[to_remove:] + start] = True
        to_remove = 0
    return to_remove


def _chunks(scores: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
    for s in scores:
        flat = s.reshape(-1)
        for start in range(0, flat.numel(), _CHUNK):
            yield flat[start:start + _CHUNK]


def _keys(chunk: torch.Tensor) -> torch.Tensor:
    """int32 keys ordered as the float32 values are (negative floats' magnitude bits flipped)."""
    bits = chunk.float().contiguous().view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)


def _kth_smallest(scores: Sequence[torch.Tensor], k: int) -> torch.Tensor:
    """The ``k``-th smallest value (1-based) of all scores, as a 0-d float32 tensor on their device."""
    device = scores[0].device
    high_counts = torch.zeros(_BINS, dtype=torch.long, device=device)
    for chunk in _chunks(scores):
        high_counts += torch.bincount(((_keys(chunk) >> 16) + _BINS // 2).long(), minlength=_BINS)
    high, k = _bin_of(high_counts, k)
    low_counts = torch.zeros(_BINS, dtype=torch.long, device=device)
    for chunk in _chunks(scores):
        keys = _keys(chunk)
        in_bin = keys[(keys >> 16) + _BINS // 2 == high]
        low_counts += torch.bincount((in_bin & 0xFFFF).long(), minlength=_BINS)
    low, _ = _bin_of(low_counts, k)
    key = torch.tensor(((high - _BINS // 2) << 16) | low, dtype=torch.int32)
    bits = torch.where(key < 0, key ^ 0x7FFFFFFF, key)
    return bits.view(torch.float32).to(device)


def _bin_of(counts: torch.Tensor, k: int) -> tuple[int, int]:
    """The bin holding the ``k``-th smallest element, and its rank within that bin."""
    cumulative = counts.cumsum(0)
    index = int(torch.searchsorted(cumulative, torch.tensor(k, device=counts.device)))
    before = int(cumulative[index - 1]) if index > 0 else 0
    return index, k - before
