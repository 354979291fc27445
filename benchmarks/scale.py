"""Data larger than memory: a 224-px ImageFolder streamed through torchvision's resnet18.

Makes (once, under ``--images``) an ImageFolder of ``--train`` + ``--val`` 224×224 RGB JPEGs from
the real MNIST, then in one run:

1. **throughput** — ``--steps`` training steps of resnet18 (batch ``--batch``, ``--workers``
   DataLoader workers) through modelzip's streamed data and training loop, and the same steps
   through a plain torchvision ``ImageFolder`` + ``DataLoader`` + SGD loop; images/s of each and
   the ratio;
2. **memory** — ``modelzip run`` (in a child process) of fine-tune → channel prune 30 % →
   fine-tune → evaluate with the same step limit; its peak RSS (the main process, and the sum over
   its DataLoader workers as proportional set size, so shared pages count once; sampled every 0.2 s)
   against what holding the data in memory as float32 would take.

    python benchmarks/scale.py --root ../shared/datasets [--images /tmp/mz-scale] [--steps 30]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent


def make_folder(root: str, out: Path, n_train: int, n_val: int) -> None:
    """MNIST digits as 224-px RGB JPEGs, ``out/{train,val}/<digit>/<i>.jpg`` (skipped when present)."""
    import torchvision.datasets as tvd
    from PIL import Image

    for part, n, train in (("train", n_train, True), ("val", n_val, False)):
        if (out / part).is_dir() and sum(1 for _ in (out / part).rglob("*.jpg")) >= n:
            continue
        ds = tvd.MNIST(root, train=train, download=False)
        for i in range(n):
            image, label = ds[i]
            folder = out / part / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            image.convert("RGB").resize((224, 224), Image.BILINEAR).save(folder / f"{i}.jpg", quality=90)


def plain_loop(images: Path, steps: int, batch: int, workers: int) -> float:
    """Images/s of a plain torchvision training loop: ImageFolder, DataLoader, resnet18, SGD."""
    import torchvision.datasets as tvd
    import torchvision.models as tvm
    import torchvision.transforms as T

    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize((0.13,) * 3, (0.3,) * 3)])
    ds = tvd.ImageFolder(str(images / "train"), transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = tvm.resnet18(num_classes=10).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    seen, start = 0, time.perf_counter()
    for step, (x, y) in enumerate(loader):
        if step >= steps:
            break
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - start)


def modelzip_loop(images: Path, steps: int, batch: int, workers: int) -> float:
    """Images/s of modelzip's training loop on its streamed ImageFolder (same model, optimizer, batch)."""
    import torchvision.models as tvm

    from compress.context import RunContext
    from compress.data import load_dataset
    from compress.recipe import DataConfig, TrainConfig
    from compress.training import fit

    data = load_dataset(DataConfig(name="imagefolder", root=str(images), transforms="imagenet", workers=workers))
    assert data.streamed, "the 224-px folder should be streamed"
    torch.manual_seed(0)
    model = tvm.resnet18(num_classes=10)
    cfg = TrainConfig(epochs=1, max_steps=steps, batch_size=batch, optimizer="sgd", lr=0.01, schedule="constant")
    return fit(model, data, cfg, RunContext(torch.device("cpu"), 0)).samples_per_s


def _memory(pid: int) -> tuple[int, int]:
    """RSS of ``pid``, and the proportional set size (PSS) summed over it and its children (DataLoader
    workers share most of their pages with the parent; PSS counts each shared page once in all)."""
    def field(p: int, name: str, path: str) -> int:
        try:
            for line in Path(f"/proc/{p}/{path}").read_text().splitlines():
                if line.startswith(name):
                    return int(line.split()[1]) * 1024
        except (OSError, IndexError, ValueError):
            pass
        return 0
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        children = []
    return field(pid, "VmRSS:", "status"), sum(field(p, "Pss:", "smaps_rollup") for p in (pid, *children))


def pipeline_memory(images: Path, steps: int, batch: int, workers: int, tmp: Path) -> tuple[int, int, float, str]:
    """Peak RSS (main process), peak PSS (with its workers) and wall seconds of a modelzip run in a child process, and its last lines."""
    recipe = tmp / "scale.yaml"
    finetune = {"epochs": 1, "max_steps": steps, "batch_size": batch, "optimizer": "sgd", "lr": 0.01}
    recipe.write_text(yaml.safe_dump({
        "model": {"name": "torchvision:resnet18"},
        "data": {"name": "imagefolder", "root": str(images), "transforms": "imagenet", "workers": workers},
        "pipeline": [{"finetune": finetune}, {"prune": {"granularity": "channel", "rate": 30}},
                     {"finetune": finetune}, {"evaluate": {"latency_batch_size": 8, "latency_repeats": 3}}],
        "device": "cpu", "seed": 0, "output": str(tmp / "out")}))
    proc = subprocess.Popen([sys.executable, "-m", "cli", "run", str(recipe)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "100"})
    peak = [0, 0]

    def sample() -> None:
        while proc.poll() is None:
            own, tree = _memory(proc.pid)
            peak[0], peak[1] = max(peak[0], own), max(peak[1], tree)
            time.sleep(0.2)

    start = time.perf_counter()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.communicate()[0]
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"modelzip run failed ({proc.returncode}):\n{out}")
    return peak[0], peak[1], time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--images", default="/tmp/mz-scale")
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--val", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    images = Path(args.images)
    start = time.perf_counter()
    make_folder(args.root, images, args.train, args.val)
    n = sum(1 for _ in images.rglob("*.jpg"))
    on_disk = sum(p.stat().st_size for p in images.rglob("*.jpg"))
    print(f"folder: {n:,} JPEGs, {on_disk / 2**20:.0f} MiB on disk, ready in {time.perf_counter() - start:.0f} s; "
          f"in memory as float32 they would take {n * 3 * 224 * 224 * 4 / 2**30:.1f} GiB")
    for _ in range(2):  # interleaved, so drift in machine load hits both
        plain = plain_loop(images, args.steps, args.batch, args.workers)
        ours = modelzip_loop(images, args.steps, args.batch, args.workers)
        print(f"throughput ({args.steps} steps, batch {args.batch}, {args.workers} workers): plain "
              f"{plain:.1f} images/s, modelzip {ours:.1f} images/s → {ours / plain:.2f}×")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        own, tree, wall, out = pipeline_memory(images, args.steps, args.batch, args.workers, Path(tmp))
    print("\n".join(line for line in out.splitlines() if line.strip())[:2400])
    print(f"modelzip run (fine-tune → channel prune 30 % → fine-tune → evaluate): {wall:.0f} s, peak memory "
          f"{own / 2**30:.2f} GiB (RSS of the main process), {tree / 2**30:.2f} GiB (PSS summed over it and its "
          "workers)")


if __name__ == "__main__":
    main()
