"""Splits decoded batch by batch by DataLoader workers: data larger than memory.

The order of samples comes from the run's generator (as for in-memory splits), so a streamed run
is as reproducible as the number of workers allows; a rank of a job decodes only its share of
each batch (what a DistributedSampler would give it). A file that cannot be read stops the run
with its name: skipping it silently would change what the model is trained and judged on.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from compress.data.base import Part, Samples, Split, Tensors, share
from compress.errors import DataError

Items = Sequence[tuple[Any, int]]  # index → (undecoded image, label)


class _View(torch.utils.data.Dataset):
    """``items`` through ``transform``; an unreadable item comes back as label ``-1 - index`` (the main
    process names its file: an exception inside a worker would reach it as a traceback string)."""

    def __init__(self, items: Items, transform: Callable[[Any], torch.Tensor], shape: tuple[int, ...]) -> None:
        self.items, self.transform, self.shape = items, transform, shape

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        try:
            image, label = self.items[index]
            x = self.transform(image)
            if tuple(x.shape) != self.shape:
                raise ValueError(f"decoded to {tuple(x.shape)}, not {self.shape}")
            return x, int(label)
        except Exception:  # noqa: BLE001 - named by StreamSplit._unreadable in the main process
            return torch.zeros(self.shape), -1 - index


def _worker_init(worker_id: int) -> None:
    """In a DataLoader worker: a lost connection to the main process means the run was interrupted or
    failed there, which the main process reports; the worker's own traceback about it is noise."""
    default = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if not issubclass(kind, ConnectionError | EOFError):
            default(kind, value, tb)

    sys.excepthook = hook


@dataclass(frozen=True)
class StreamSplit(Samples):
    """The samples ``indices`` of ``items``, decoded with ``eval_tf`` (``train_tf`` when augmenting)."""

    items: Items
    indices: torch.Tensor
    eval_tf: Callable[[Any], torch.Tensor]
    train_tf: Callable[[Any], torch.Tensor]
    shape: tuple[int, ...]
    describe: Callable[[int], str]  # an item's file, for errors
    workers: int = 0
    pin_memory: bool = False

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.shape

    def head(self, n: int) -> Split:
        loaded = list(self._load(self.indices[:n], self.eval_tf))
        if not loaded:
            return Split(torch.zeros(0, *self.shape), torch.zeros(0, dtype=torch.int64))
        return Split(torch.cat([x for x, _ in loaded]), torch.cat([y for _, y in loaded]))

    def first(self, n: int) -> StreamSplit:
        return replace(self, indices=self.indices[:n])

    def part(self, rank: int, world: int) -> StreamSplit:
        return replace(self, indices=self.indices[rank::world])

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                augment: bool = False, part: Part | None = None) -> Iterator[Tensors]:
        n = len(self)
        order = self.indices[torch.randperm(n, generator=generator)] if shuffle else self.indices
        chunks = [share(order[s:s + batch_size], part) for s in range(0, n, batch_size)]
        yield from self._load_chunks(chunks, self.train_tf if augment else self.eval_tf, generator)

    def _load(self, indices: torch.Tensor, transform: Callable[[Any], torch.Tensor]) -> Iterator[Tensors]:
        chunks = [indices[s:s + 256] for s in range(0, len(indices), 256)]
        return self._load_chunks(chunks, transform, None)

    def _load_chunks(self, chunks: list[torch.Tensor], transform: Callable[[Any], torch.Tensor],
                     generator: torch.Generator | None) -> Iterator[Tensors]:
        # the workers' random augmentations follow the run's generator, so reruns draw the same crops
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator)) if generator is not None else 0
        loader = torch.utils.data.DataLoader(
            _View(self.items, transform, self.shape), batch_sampler=[c.tolist() for c in chunks],
            num_workers=self.workers, pin_memory=self.pin_memory, generator=torch.Generator().manual_seed(seed),
            worker_init_fn=_worker_init if self.workers else None)
        for x, y in loader:
            if bool((y < 0).any()):
                raise self._unreadable(int(-1 - y[y < 0][0]), transform)
            yield x, y

    def _unreadable(self, index: int, transform: Callable[[Any], torch.Tensor]) -> DataError:
        """The error for item ``index``, with the reason found by decoding it again here."""
        try:
            image, _ = self.items[index]
            x = transform(image)
            reason: str | BaseException = f"decoded to {tuple(x.shape)}, not {self.shape}"
        except Exception as exc:  # noqa: BLE001 - its message is the reason we report
            reason = exc
        return unreadable(self.describe(index), reason)


def unreadable(what: str, reason: str | BaseException) -> DataError:
    """The one error for a sample that cannot be decoded (``reason``: a text, or what decoding raised)."""
    if isinstance(reason, BaseException):
        reason = f"{type(reason).__name__}: {str(reason).splitlines()[0][:200] if str(reason) else ''}"
    return DataError(f"cannot read {what} ({reason})",
                     "remove or replace the file: every sample must be readable, and skipping one "
                     "would change what the model is trained and judged on")
