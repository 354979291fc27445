"""Memory and time of global magnitude pruning (one threshold over every layer) at ViT-L scale: modelzip's
selection (radix select over the layers' scores in chunks, nothing joined) against the joined ``kthvalue``
selection of session 6 and the plain ``topk`` before it, each in a fresh process. All must remove the same
number of the lowest scores; radix and kthvalue break ties the same way (first come), so their masks are
identical (``topk`` does not define which tied weights go).

    python benchmarks/global_prune.py [--model vit_l_16] [--rate 80]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp

from fresh import current_gib, in_process, peak_gib


def _run(name: str, rate: float, how: str, queue: mp.Queue) -> None:
    import hashlib
    import time

    import torch
    import torchvision

    from compress.prune.masks import select

    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None)
    scores = {k: p.detach().abs() for k, p in model.named_parameters() if p.dim() > 1}
    n = sum(s.numel() for s in scores.values())
    before, start = current_gib(), time.perf_counter()
    k = int(round(n * rate / 100))
    if how == "topk":  # session 5: topk over all scores joined, values and int64 indices
        flat = torch.cat([s.flatten() for s in scores.values()])
        keep = torch.ones_like(flat, dtype=torch.bool)
        keep[torch.topk(flat, k, largest=False).indices] = False
    elif how == "kthvalue":  # session 6: kthvalue over all scores joined, ties first come
        flat = torch.cat([s.flatten() for s in scores.values()])
        threshold = flat.kthvalue(k).values
        keep = flat > threshold
        tied = (flat == threshold).nonzero().flatten()
        keep[tied[k - int((flat < threshold).sum()):]] = True
    else:
        masks = select(scores, rate, "global", {}, max_layer_rate=100.0)
        keep = torch.cat([m.flatten() for m in masks.values()])
    seconds, peak = time.perf_counter() - start, peak_gib()
    flat = torch.cat([s.flatten() for s in scores.values()])
    queue.put({"weights": n, "extra": peak - before, "seconds": seconds, "removed": int((~keep).sum()),
               "top_removed": float(flat[~keep].max()), "least_kept": float(flat[keep].min()),
               "hash": hashlib.sha256(keep.numpy().tobytes()).hexdigest()[:16]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_l_16")
    parser.add_argument("--rate", type=float, default=80.0)
    args = parser.parse_args()
    runs = {how: in_process(_run, args.model, args.rate, how) for how in ("radix", "kthvalue", "topk")}
    n = runs["radix"]["weights"]
    print(f"{args.model}: {n:,} prunable weights, global {args.rate:g} %")
    for label, r in (("modelzip select (radix)", runs["radix"]), ("joined kthvalue (session 6)", runs["kthvalue"]),
                     ("joined topk (session 5)", runs["topk"])):
        print(f"{label:28s} extra peak {r['extra']:6.2f} GiB = {r['extra'] * 2**30 / n:5.1f} B/weight, "
              f"{r['seconds']:5.1f} s, removed {r['removed']:,} (largest removed {r['top_removed']:.9g} ≤ "
              f"smallest kept {r['least_kept']:.9g}), mask {r['hash']}")
    print(f"radix mask = kthvalue mask: {runs['radix']['hash'] == runs['kthvalue']['hash']}; "
          f"= topk mask: {runs['radix']['hash'] == runs['topk']['hash']} (topk breaks ties its own way)")


if __name__ == "__main__":
    main()
