"""Bytes per tensor of existing artifacts re-encoded two ways, in one run: the index + LZMA forms alone
(format 1's choice) and with the context-adaptive coder allowed (format 2's), plus the whole file in
each format and the time to decode it. Tensors are bit-identical in every form (checked).

    python benchmarks/coding.py FILE.mzip [FILE.mzip ...]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from compress import artifact
from compress.artifact import gridcode
from compress.artifact.encodings import decode_tensor, encode_tensor


def compare(path: Path) -> None:
    old = artifact.read(path)
    budget = gridcode.Budget()
    print(f"{path}  ({path.stat().st_size:,} B as read, format {old.manifest['version']})")
    print(f"  {'tensor':<12} {'shape':<16} {'index+LZMA B':>12} {'context B':>10}  chosen")
    for name, t in old.state.items():
        plain = encode_tensor(t, old.grids.get(name))
        best = encode_tensor(t, old.grids.get(name), budget=budget)
        for enc in (plain, best):
            assert torch.equal(decode_tensor(enc.meta, enc.payload), t), name
        chosen = "context" if best.meta.get("z") == "ctx" else "same"
        print(f"  {name:<12} {'×'.join(map(str, t.shape)):<16} {len(plain.payload):>12,} {len(best.payload):>10,}  "
              f"{chosen}")
    with tempfile.TemporaryDirectory() as tmp:
        new = Path(tmp) / "new.mzip"
        new.write_bytes(artifact.to_bytes(old.state, old.spec, grids=old.grids, recipe=old.manifest.get("recipe"),
                                          report=old.manifest.get("report")))
        start = time.perf_counter()
        back = artifact.read(new)
        seconds = time.perf_counter() - start
        assert all(torch.equal(back.state[k], v) for k, v in old.state.items())
        print(f"  whole file: {path.stat().st_size:,} B → {new.stat().st_size:,} B in format 2 "
              f"(header + compressed manifest {new.stat().st_size - sum(back.sizes.values()):,} B); "
              f"read + decode {seconds * 1e3:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("files", type=Path, nargs="+")
    for path in ap.parse_args().files:
        compare(path)


if __name__ == "__main__":
    main()
