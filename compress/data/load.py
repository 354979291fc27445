"""A recipe's ``data`` section → a :class:`Dataset`: held in memory when it fits, else streamed."""
from __future__ import annotations

import math
import os

import torch

from compress.data import transforms as tf
from compress.data.base import Dataset, Samples, Split
from compress.data.sources import DATASETS, Source
from compress.data.stream import StreamSplit, unreadable
from compress.errors import DataError
from compress.recipe.base import DataConfig

IN_MEMORY_BYTES = 2 << 30  # auto: decoded float32 data up to 2 GiB is held in memory
STATS_SAMPLES = 1000
STREAMED_CALIBRATION = 5000  # streamed data: searches and analyses measure on this many samples  # streamed data: normalization statistics from this many training images
_SPLIT_SEED = 0  # the train/val split must not move with the recipe's seed


def load_dataset(cfg: DataConfig, weights: tf.Preprocess | None = None, pin_memory: bool = False) -> Dataset:
    """Load ``cfg.name`` with a deterministic validation split. ``weights``: the preprocessing of the
    pretrained weights the model starts from (their sizes and statistics)."""
    train, test = DATASETS.get(cfg.name)(cfg)
    prep = tf.resolve(cfg.transforms, cfg.image_size, train.folder, weights)
    shape = _first_shape(train, prep)
    if prep.mean is not None and len(prep.mean) != shape[0]:
        raise DataError(f"data '{cfg.name}' has {shape[0]}-channel images but {prep.kind} statistics are for "
                        f"{len(prep.mean)} channels", "set data.transforms: cifar (statistics of the data itself)")
    decoded = (len(train) + len(test)) * math.prod(shape) * 4
    in_memory = decoded <= IN_MEMORY_BYTES if cfg.in_memory == "auto" else bool(cfg.in_memory)
    workers = cfg.workers if cfg.workers is not None else min(4, len(os.sched_getaffinity(0)))
    if in_memory:
        tr, te = _decode(train, prep, shape, workers), _decode(test, prep, shape, workers)
        splits = _normalized(tr, te, prep, cfg.val_fraction)
    else:
        splits = _streamed(train, test, prep, shape, cfg, workers, pin_memory)
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    batch = cfg.eval_batch_size or (1000 if in_memory else 64)
    calibration = cfg.calibration_samples or (None if in_memory else STREAMED_CALIBRATION)
    return Dataset(cfg.name, *splits, num_classes, cfg.augment, streamed=not in_memory, eval_batch_size=batch,
                   calibration_samples=calibration)


def _first_shape(source: Source, prep: tf.Preprocess) -> tuple[int, ...]:
    """C×H×W of the first training sample after the evaluation transform (a bad first file is said here)."""
    if not len(source):
        raise DataError("the training split is empty", "check data.root and data.name")
    try:
        image, _ = source.items[0]
        return tuple(tf.eval_transform(prep, normalize=False)(image).shape)
    except Exception as exc:  # noqa: BLE001 - any decoding failure of the first image is reported with its name
        raise unreadable(source.describe(0), exc) from None


def _stream(source: Source, transform: tf.Transform, shape: tuple[int, ...], workers: int,
            indices: torch.Tensor | None = None, train_tf: tf.Transform | None = None,
            pin_memory: bool = False) -> StreamSplit:
    idx = torch.arange(len(source)) if indices is None else indices
    return StreamSplit(source.items, idx, transform, train_tf or transform, shape, source.describe, workers,
                       pin_memory)


def _decode(source: Source, prep: tf.Preprocess, shape: tuple[int, ...], workers: int) -> Split:
    """The whole split as float tensors in [0, 1] (one step where the format holds an array)."""
    if source.tensors is not None and prep.crop is None:
        return Split(source.tensors(), source.labels)
    return _stream(source, tf.eval_transform(prep, normalize=False), shape, workers).head(len(source))


def _normalized(train: Split, test: Split, prep: tf.Preprocess,
                val_fraction: float) -> tuple[Samples, Samples, Samples | None]:
    """Normalize by the preprocessing's statistics, else the training split's own; split off validation."""
    x_tr, y_tr, x_te = train.x, train.y, test.x
    if prep.mean is not None and prep.std is not None:
        mean, std = torch.tensor(prep.mean).view(1, -1, 1, 1), torch.tensor(prep.std).view(1, -1, 1, 1)
    else:
        mean = x_tr.mean(dim=(0, 2, 3), keepdim=True)
        std = x_tr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    val = None
    if val_fraction > 0:
        perm = _split_order(len(y_tr))
        n_val = max(1, int(len(y_tr) * val_fraction))
        val = Split(x_tr[perm[:n_val]], y_tr[perm[:n_val]])
        x_tr, y_tr = x_tr[perm[n_val:]], y_tr[perm[n_val:]]
    return Split(x_tr.contiguous(), y_tr), Split(x_te.contiguous(), test.y), val


def _split_order(n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(_SPLIT_SEED))


def _streamed(train: Source, test: Source, prep: tf.Preprocess, shape: tuple[int, ...], cfg: DataConfig,
              workers: int, pin_memory: bool) -> tuple[Samples, Samples, Samples | None]:
    if prep.mean is None:
        prep = prep.with_stats(*_sample_stats(train, prep, shape, workers))
    eval_tf, train_tf = tf.eval_transform(prep), tf.train_transform(prep, cfg.augment, (shape[1], shape[2]))
    order, val = torch.arange(len(train)), None
    if cfg.val_fraction > 0:
        perm = _split_order(len(train))
        n_val = max(1, int(len(train) * cfg.val_fraction))
        order, val = perm[n_val:], _stream(train, eval_tf, shape, workers, perm[:n_val], pin_memory=pin_memory)
    return (_stream(train, eval_tf, shape, workers, order, train_tf, pin_memory),
            _stream(test, eval_tf, shape, workers, pin_memory=pin_memory), val)


def _sample_stats(train: Source, prep: tf.Preprocess, shape: tuple[int, ...],
                  workers: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of a fixed random sample of the training images."""
    n = min(STATS_SAMPLES, len(train))
    sample = _stream(train, tf.eval_transform(prep, normalize=False), shape, workers, _split_order(len(train))[:n])
    return tf.channel_stats([x for x, _ in sample.batches(100)])
