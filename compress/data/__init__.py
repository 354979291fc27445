"""Datasets: small ones as in-memory normalized tensors, large ones streamed from files.

``load_dataset`` turns a recipe's ``data`` section into a :class:`Dataset` whose splits yield
batches (:func:`iter_batches`); ``DATASETS`` names the sources.
"""
from compress.data.base import Dataset, Part, Samples, Split, Tensors, iter_batches, random_crop_flip, share
from compress.data.load import IN_MEMORY_BYTES, load_dataset
from compress.data.sources import DATASETS, Source
from compress.data.stream import StreamSplit
from compress.data.transforms import Preprocess

__all__ = ["DATASETS", "IN_MEMORY_BYTES", "Dataset", "Part", "Preprocess", "Samples", "Source", "Split",
           "StreamSplit", "Tensors", "iter_batches", "load_dataset", "random_crop_flip", "share"]
