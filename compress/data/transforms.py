"""How raw images become a network's inputs: named preprocessing for training and evaluation.

``imagenet`` is what torchvision's pretrained classifiers were trained with (resize, centre crop,
ImageNet mean/std; RandomResizedCrop and flip when augmenting) — or the pretrained weights' own
sizes and statistics when the recipe names weights. ``cifar`` keeps images at their size (folders
are resized and centre-cropped to ``image_size``), normalizes with the training data's statistics
and augments with a padded random crop and flip. ``none`` is ``cifar`` without augmentation.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

Kind = Literal["imagenet", "cifar", "none"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Transform = Callable[[Any], torch.Tensor]


@dataclass(frozen=True)
class Preprocess:
    """Sizes and statistics of one preprocessing (``mean``/``std`` None: measured on the training data)."""

    kind: Kind
    crop: int | None = None  # output height and width; None keeps the data's own size
    resize: int | None = None  # shorter side before the centre crop
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def with_stats(self, mean: tuple[float, ...], std: tuple[float, ...]) -> Preprocess:
        return replace(self, mean=mean, std=std)


def resolve(kind: str, image_size: int, folder: bool, weights: Preprocess | None) -> Preprocess:
    """The preprocessing a recipe asks for: ``kind`` (``auto``: the weights' own when the model starts from
    pretrained weights, else ``cifar``), sized by ``image_size`` for folders of images."""
    if kind == "auto":
        kind = "imagenet" if weights is not None else "cifar"
    if kind == "imagenet":
        if weights is not None:
            return weights
        return Preprocess("imagenet", image_size, round(image_size * 256 / 224), IMAGENET_MEAN, IMAGENET_STD)
    size = image_size if folder else None
    return Preprocess("cifar" if kind == "cifar" else "none", size, size)


class ToTensor:
    """PIL images and arrays to C×H×W float in [0, 1]; tensors (already decoded data) pass through."""

    def __call__(self, image: Any) -> torch.Tensor:
        if isinstance(image, torch.Tensor):
            return image.float()
        import torchvision.transforms.functional as TF

        return TF.to_tensor(image)


def eval_transform(p: Preprocess, normalize: bool = True) -> Transform:
    """Resize and centre-crop (where sized), to tensor, normalize."""
    import torchvision.transforms as T

    steps: list[Any] = []
    if p.crop is not None:
        steps += [T.Resize(p.resize or p.crop, antialias=True), T.CenterCrop(p.crop)]
    steps.append(ToTensor())
    if normalize and p.mean is not None and p.std is not None:
        steps.append(T.Normalize(p.mean, p.std))
    return T.Compose(steps)


def train_transform(p: Preprocess, augment: bool, size: tuple[int, int]) -> Transform:
    """The evaluation transform, or with ``augment`` the kind's augmentation around it (``size``: the
    height and width the evaluation transform gives)."""
    import torchvision.transforms as T

    if not augment or p.kind == "none":
        return eval_transform(p)
    if p.kind == "imagenet" and p.crop is not None:
        return T.Compose([T.RandomResizedCrop(p.crop, antialias=True), T.RandomHorizontalFlip(), ToTensor(),
                          T.Normalize(p.mean, p.std)])
    # padding after normalization pads with the mean, as the in-memory augmentation does
    return T.Compose([eval_transform(p), T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()])


def channel_stats(batches: list[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation over every pixel of ``batches`` (float64 sums)."""
    total = sum(b.shape[0] * b.shape[2] * b.shape[3] for b in batches)
    s = sum(b.double().sum(dim=(0, 2, 3)) for b in batches)
    sq = sum(b.double().pow(2).sum(dim=(0, 2, 3)) for b in batches)
    mean = s / total
    std = (sq / total - mean ** 2).clamp_min(0).sqrt().clamp_min(1e-6)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
