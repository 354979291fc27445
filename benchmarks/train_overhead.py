"""One epoch of modelzip's training loop vs a plain PyTorch loop, in the same process.

Same model init, batch size, optimizer and in-memory tensors. Also times the
torchvision ``DataLoader(ToTensor)`` way the seed article uses. Uses MNIST from
../shared/datasets when present, else the bundled digits (then the DataLoader
row is skipped).

    python benchmarks/train_overhead.py [--root ../shared/datasets] [--batch 64]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from compress.context import RunContext
from compress.data import load_dataset
from compress.models import build_model
from compress.recipe import DataConfig, TrainConfig
from compress.training import fit


def plain_epoch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    for i in range(0, len(y), batch):
        idx = perm[i:i + batch]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return time.perf_counter() - start


def dataloader_epoch(model: torch.nn.Module, root: str, batch: int) -> float:
    import torchvision.datasets as tvd
    import torchvision.transforms as T

    ds = tvd.MNIST(root, train=True, download=False,
                   transform=T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))]))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.perf_counter()
    for xb, yb in loader:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    have_mnist = (Path(args.root) / "MNIST" / "raw").is_dir()
    data = load_dataset(DataConfig(name="mnist" if have_mnist else "digits", root=args.root))
    print(f"dataset {data.name}: {len(data.train)} training samples, batch {args.batch}, "
          f"{torch.get_num_threads()} threads")
    cfg = TrainConfig(epochs=1, batch_size=args.batch, optimizer="adam", lr=1e-3, schedule="constant")
    for name in ("mnist-cnn", "lenet-300-100"):
        plain_epoch(build_model(name, {}), data.train.x[:2048], data.train.y[:2048], args.batch)  # warm-up
        t_plain, t_mz = float("inf"), float("inf")
        for _ in range(2):  # alternate and keep the best of two, so order and warm-up do not bias the ratio
            torch.manual_seed(0)
            t_mz = min(t_mz, fit(build_model(name, {}), data, cfg, RunContext(torch.device("cpu"), 0)).seconds)
            torch.manual_seed(0)
            t_plain = min(t_plain, plain_epoch(build_model(name, {}), data.train.x, data.train.y, args.batch))
        line = f"{name:14s} plain {t_plain:6.2f} s  modelzip {t_mz:6.2f} s  ratio {t_mz / t_plain:.3f}"
        if have_mnist:
            torch.manual_seed(0)
            t_dl = dataloader_epoch(build_model(name, {}), args.root, args.batch)
            line += f"  DataLoader(ToTensor) {t_dl:6.2f} s  speed-up {t_dl / t_mz:.2f}×"
        print(line)


if __name__ == "__main__":
    main()
