"""Memory of global magnitude pruning (one threshold over every layer) at ViT-L scale, against the plain
``topk`` selection it replaced, each in a fresh process; both must remove the same number of the lowest scores
(which of the weights tied at the threshold go may differ: ``topk`` does not define it).

    python benchmarks/global_prune.py [--model vit_l_16] [--rate 80]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp

from fresh import current_gib, in_process, peak_gib


def _run(name: str, rate: float, plain: bool, queue: mp.Queue) -> None:
    import hashlib

    import torch
    import torchvision

    from compress.prune.masks import select

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None)
    scores = {k: p.detach().abs() for k, p in model.named_parameters() if p.dim() > 1}
    n = sum(s.numel() for s in scores.values())
    before = current_gib()
    if plain:  # the former selection: topk over all scores, values and int64 indices
        flat = torch.cat([s.flatten() for s in scores.values()])
        keep = torch.ones_like(flat, dtype=torch.bool)
        keep[torch.topk(flat, int(round(n * rate / 100)), largest=False).indices] = False
    else:
        masks = select(scores, rate, "global", {}, max_layer_rate=100.0)
        keep = torch.cat([m.flatten() for m in masks.values()])
    peak = peak_gib()
    flat = torch.cat([s.flatten() for s in scores.values()])
    queue.put({"weights": n, "extra": peak - before, "removed": int((~keep).sum()),
               "top_removed": float(flat[~keep].max()), "least_kept": float(flat[keep].min()),
               "hash": hashlib.sha256(keep.numpy().tobytes()).hexdigest()[:16]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_l_16")
    parser.add_argument("--rate", type=float, default=80.0)
    args = parser.parse_args()
    ours = in_process(_run, args.model, args.rate, False)
    plain = in_process(_run, args.model, args.rate, True)
    n = ours["weights"]
    print(f"{args.model}: {n:,} prunable weights, global {args.rate:g} %")
    for label, r in (("modelzip select (kthvalue)", ours), ("plain topk", plain)):
        print(f"{label:28s} extra peak {r['extra']:6.2f} GiB = {r['extra'] * 2**30 / n:5.1f} B/weight, "
              f"removed {r['removed']:,} (largest removed {r['top_removed']:.9g} ≤ smallest kept "
              f"{r['least_kept']:.9g}), mask {r['hash']}")
    same = ours["hash"] == plain["hash"]
    print(f"same weights removed: {same}" + ("" if same else " — both remove the lowest scores; they differ only "
                                                             "in which of the weights equal to the threshold go"))


if __name__ == "__main__":
    main()
