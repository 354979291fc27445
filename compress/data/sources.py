"""Where datasets come from: each registered name gives its train and test splits, undecoded.

A :class:`Source` indexes samples without decoding them all (an ImageFolder's files, a
torchvision dataset), and where the format already holds the whole split as one array (digits,
the MNIST family, CIFAR, SVHN) it offers that too, so small data is decoded in one step.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from compress.data.stream import Items
from compress.errors import DataError
from compress.recipe.base import DataConfig
from compress.registry import Registry


@dataclass(frozen=True)
class Source:
    """One split as found on disk."""

    items: Items  # index → (PIL image or C×H×W tensor in [0, 1], label)
    labels: torch.Tensor  # int64, known without decoding
    describe: Callable[[int], str]  # what an item is called in an error (its file)
    tensors: Callable[[], torch.Tensor] | None = None  # the whole split as N×C×H×W float in [0, 1]
    folder: bool = False  # images of any size, resized to the recipe's image_size

    def __len__(self) -> int:
        return len(self.labels)


DATASETS: Registry[Callable[[DataConfig], tuple[Source, Source]]] = Registry("dataset")


class _TensorItems:
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def _tensor_source(name: str, x: torch.Tensor, y: torch.Tensor) -> Source:
    return Source(_TensorItems(x, y), y, lambda i: f"{name} sample {i}", lambda: x)


@DATASETS.register("digits")
def _digits(cfg: DataConfig) -> tuple[Source, Source]:
    """scikit-learn's bundled 8×8 digits, upscaled to 1×28×28; fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    i_tr, i_te = train_test_split(range(len(y)), test_size=0.2, stratify=bunch.target, random_state=0)
    return _tensor_source("digits train", x[i_tr], y[i_tr]), _tensor_source("digits test", x[i_te], y[i_te])


def _torchvision(cfg: DataConfig, cls_name: str, **kwargs: object) -> Source:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    root = Path(cfg.root)
    try:
        ds = cls(str(root), download=cfg.download, **kwargs)
    except RuntimeError as exc:
        where = root / cls.__name__ if cls_name not in ("CIFAR10", "CIFAR100", "SVHN") else root
        raise DataError(f"dataset '{cfg.name}' not found in {where} ({exc})",
                        "set data.root to the folder that holds it, or data.download: true "
                        "where the network is reachable") from None
    labels = torch.as_tensor(ds.labels if hasattr(ds, "labels") else ds.targets, dtype=torch.int64)

    def tensors() -> torch.Tensor:
        data = torch.as_tensor(ds.data)
        if data.ndim == 3:  # N×H×W (MNIST family)
            data = data.unsqueeze(1)
        elif data.shape[-1] in (1, 3):  # N×H×W×C (CIFAR)
            data = data.permute(0, 3, 1, 2)
        return data.float().div_(255.0)

    return Source(ds, labels, lambda i: f"{cfg.name} sample {i} in {root}", tensors)


def _register_torchvision(name: str, cls_name: str, split_kw: str, values: tuple[object, object]) -> None:
    def load(cfg: DataConfig) -> tuple[Source, Source]:
        return (_torchvision(cfg, cls_name, **{split_kw: values[0]}),
                _torchvision(cfg, cls_name, **{split_kw: values[1]}))

    DATASETS.register(name)(load)


for _name, _cls in (("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST"), ("kmnist", "KMNIST"),
                    ("cifar10", "CIFAR10"), ("cifar100", "CIFAR100")):
    _register_torchvision(_name, _cls, "train", (True, False))
_register_torchvision("svhn", "SVHN", "split", ("train", "test"))


@DATASETS.register("imagefolder")
def _imagefolder(cfg: DataConfig) -> tuple[Source, Source]:
    """``root/train/<class>/*`` and ``root/val/<class>/*`` (val's classes numbered as train's)."""
    train = _folder(cfg, "train", None)
    return train, _folder(cfg, "val", train.items.class_to_idx)  # type: ignore[attr-defined]


def _folder(cfg: DataConfig, part: str, classes: dict[str, int] | None) -> Source:
    import torchvision.datasets as tvd

    path = Path(cfg.root) / part
    hint = f"put one sub-folder per class under {path}, holding .jpg/.png/… images"
    if not path.is_dir():
        raise DataError(f"imagefolder: {path} is not a folder", hint)

    class Folder(tvd.ImageFolder):
        def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
            if classes is None:
                return super().find_classes(directory)
            extra = sorted({e.name for e in os.scandir(directory) if e.is_dir()} - set(classes))
            if extra:
                raise DataError(f"imagefolder: {path} has class folders that train/ lacks: {', '.join(extra[:5])}",
                                "every class must have training images; move or remove these folders")
            return list(classes), dict(classes)

    try:
        ds: Any = Folder(str(path), allow_empty=classes is not None)
    except FileNotFoundError as exc:
        raise DataError(f"imagefolder: {str(exc).splitlines()[0][:300]}", hint) from None
    if not len(ds):
        raise DataError(f"imagefolder: no images under {path}", hint)
    return Source(ds, torch.tensor(ds.targets, dtype=torch.int64), lambda i: ds.samples[i][0], folder=True)
