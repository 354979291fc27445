"""What a run trains and measures on: splits that yield batches, in memory or streamed from files.

Small datasets are decoded once into normalized tensors and batches are slices of them (no
per-sample work on the hot path). Large ones (:class:`compress.data.stream.StreamSplit`) are
decoded batch by batch by DataLoader workers. Both answer the same four questions: how many
samples, the first few as tensors, a rank's part, and batches.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compress.errors import DataError

Tensors = tuple[torch.Tensor, torch.Tensor]
Part = tuple[int, int]  # (rank, world): every world-th sample of each batch, from rank on


def share(batch: torch.Tensor, part: Part | None) -> torch.Tensor:
    """A rank's share of a training batch; a batch smaller than the job is used whole on every rank
    (each rank's gradient is then the same, and so is their average)."""
    if part is None or len(batch) < part[1]:
        return batch
    return batch[part[0]::part[1]]


class Samples(ABC):
    """One split of a dataset: labelled, normalized samples."""

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def sample_shape(self) -> tuple[int, ...]:
        """C×H×W of one normalized input."""

    @abstractmethod
    def head(self, n: int) -> Split:
        """The first ``n`` samples as in-memory tensors (examples, calibration sets)."""

    @abstractmethod
    def first(self, n: int) -> Samples:
        """The first ``n`` samples, held the way this split is (a streamed split stays streamed)."""

    @abstractmethod
    def part(self, rank: int, world: int) -> Samples:
        """Every ``world``-th sample from ``rank`` on: the parts of a job partition the split."""

    @abstractmethod
    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                augment: bool = False, part: Part | None = None) -> Iterator[Tensors]:
        """``(x, y)`` batches in order or shuffled by ``generator``; ``augment`` applies the training
        augmentation; ``part`` keeps a rank's share of each batch (see :func:`share`)."""


@dataclass(frozen=True)
class Split(Samples):
    """Inputs ``x`` (N×C×H×W float, normalized) and labels ``y`` (N, int64), held in memory."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def head(self, n: int) -> Split:
        return Split(self.x[:n], self.y[:n])

    def first(self, n: int) -> Split:
        return self.head(n)

    def part(self, rank: int, world: int) -> Split:
        return Split(self.x[rank::world], self.y[rank::world])

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                augment: bool = False, part: Part | None = None) -> Iterator[Tensors]:
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                x, y = self.x[start:start + batch_size], self.y[start:start + batch_size]
            else:
                idx = order[start:start + batch_size]
                x, y = self.x[idx], self.y[idx]
            # augmented whole, then shared: a job draws the same crops as one process with its global batch
            yield share(random_crop_flip(x, generator) if augment else x, part), share(y, part)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Samples
    test: Samples
    val: Samples | None
    num_classes: int
    augment: bool
    streamed: bool = False  # decoded batch by batch from files rather than held in memory
    eval_batch_size: int = 1000  # evaluation batches (smaller when streamed: each is decoded by workers)
    calibration_samples: int | None = None  # what searches and analyses measure on at most (None: whole splits)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.sample_shape

    def split(self, name: str) -> Samples:
        if name == "val":
            if self.val is None:
                raise DataError("no validation split", "set data.val_fraction above 0")
            return self.val
        return self.test if name == "test" else self.train


def iter_batches(split: Samples, batch_size: int, *, shuffle: bool = False,
                 generator: torch.Generator | None = None, augment: bool = False,
                 part: Part | None = None) -> Iterator[Tensors]:
    """Yield ``(x, y)`` batches of ``split`` (see :meth:`Samples.batches`)."""
    return split.batches(batch_size, shuffle=shuffle, generator=generator, augment=augment, part=part)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator | None, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and horizontal flip of a batch of tensors."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = (oy[:, None] + torch.arange(h))[:, :, None]
    cols = (ox[:, None] + torch.arange(w))[:, None, :]
    flip = torch.rand(b, generator=generator) < 0.5
    cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
    out = padded[torch.arange(b)[:, None, None], :, rows, cols]  # B×H×W×C
    return out.permute(0, 3, 1, 2).contiguous()
