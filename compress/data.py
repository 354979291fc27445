"""Dataset registry: every dataset becomes in-memory normalized tensors.

Small datasets are decoded once; batches are slices of tensors, so the hot path
does no per-sample PIL work.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from compress.errors import DataError
from compress.recipe.base import DataConfig
from compress.registry import Registry

Tensors = tuple[torch.Tensor, torch.Tensor]
DATASETS: Registry[Callable[[DataConfig], tuple[Tensors, Tensors]]] = Registry("dataset")
_SPLIT_SEED = 0  # the train/val split must not move with the recipe's seed


@dataclass(frozen=True)
class Split:
    """Inputs ``x`` (N×C×H×W float, normalized) and labels ``y`` (N, int64)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    val: Split | None
    num_classes: int
    augment: bool

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def split(self, name: str) -> Split:
        if name == "val":
            if self.val is None:
                raise DataError("no validation split", "set data.val_fraction above 0")
            return self.val
        return self.test if name == "test" else self.train


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load ``cfg.name`` as normalized tensors with a deterministic val split."""
    (x_tr, y_tr), (x_te, y_te) = DATASETS.get(cfg.name)(cfg)
    mean = x_tr.mean(dim=(0, 2, 3), keepdim=True)
    std = x_tr.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    val = None
    if cfg.val_fraction > 0:
        perm = torch.randperm(len(y_tr), generator=torch.Generator().manual_seed(_SPLIT_SEED))
        n_val = max(1, int(len(y_tr) * cfg.val_fraction))
        val = Split(x_tr[perm[:n_val]], y_tr[perm[:n_val]])
        x_tr, y_tr = x_tr[perm[n_val:]], y_tr[perm[n_val:]]
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    return Dataset(cfg.name, Split(x_tr.contiguous(), y_tr), Split(x_te.contiguous(), y_te),
                   val, num_classes, cfg.augment)


def iter_batches(split: Split, batch_size: int, *, shuffle: bool = False,
                 generator: torch.Generator | None = None, augment: bool = False) -> Iterator[Tensors]:
    """Yield ``(x, y)`` batches; ``augment`` applies random crop (pad 4) and horizontal flip."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else None
    for start in range(0, n, batch_size):
        if order is None:
            x, y = split.x[start:start + batch_size], split.y[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            x, y = split.x[idx], split.y[idx]
        yield (random_crop_flip(x, generator) if augment else x), y


def random_crop_flip(x: torch.Tensor, generator: torch.Generator | None, pad: int = 4) -> torch.Tensor:
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


@DATASETS.register("digits")
def _digits(cfg: DataConfig) -> tuple[Tensors, Tensors]:
    """scikit-learn's bundled 8×8 digits, upscaled to 1×28×28; fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    i_tr, i_te = train_test_split(range(len(y)), test_size=0.2, stratify=bunch.target, random_state=0)
    return (x[i_tr], y[i_tr]), (x[i_te], y[i_te])


def _torchvision(cfg: DataConfig, cls_name: str, **kwargs: object) -> Tensors:
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
    data = torch.as_tensor(ds.data)
    labels = torch.as_tensor(ds.labels if hasattr(ds, "labels") else ds.targets, dtype=torch.int64)
    if data.ndim == 3:  # N×H×W (MNIST family)
        data = data.unsqueeze(1)
    elif data.shape[-1] in (1, 3):  # N×H×W×C (CIFAR)
        data = data.permute(0, 3, 1, 2)
    return data.float().div_(255.0), labels


def _register_torchvision(name: str, cls_name: str, split_kw: str, values: tuple[object, object]) -> None:
    def load(cfg: DataConfig) -> tuple[Tensors, Tensors]:
        return (_torchvision(cfg, cls_name, **{split_kw: values[0]}),
                _torchvision(cfg, cls_name, **{split_kw: values[1]}))

    DATASETS.register(name)(load)


for _name, _cls in (("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST"), ("kmnist", "KMNIST"),
                    ("cifar10", "CIFAR10"), ("cifar100", "CIFAR100")):
    _register_torchvision(_name, _cls, "train", (True, False))
_register_torchvision("svhn", "SVHN", "split", ("train", "test"))


@DATASETS.register("imagefolder")
def _imagefolder(cfg: DataConfig) -> tuple[Tensors, Tensors]:
    """``root/train/<class>/*`` and ``root/val/<class>/*``, resized to ``image_size``."""
    return _folder(cfg, "train"), _folder(cfg, "val")


def _folder(cfg: DataConfig, part: str) -> Tensors:
    import torchvision.datasets as tvd
    import torchvision.transforms as T

    path = Path(cfg.root) / part
    if not path.is_dir():
        raise DataError(f"imagefolder: {path} is not a folder",
                        f"put one sub-folder per class under {path}")
    tf = T.Compose([T.Resize(cfg.image_size), T.CenterCrop(cfg.image_size), T.ToTensor()])
    ds = tvd.ImageFolder(str(path), transform=tf)
    xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)
