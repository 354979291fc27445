"""Deep Compression on MNIST with the shipped recipes, against Han et al. (2016).

Runs configs/deep_compression_lenet300.yaml and configs/deep_compression_lenet5.yaml end to
end (train → gradual pruning with fine-tuning → k-means weight sharing with fine-tuning →
entropy-coded artifact) on real MNIST, then re-evaluates each written artifact with
``modelzip eval`` and checks it reproduces the reported accuracy exactly. Prints, per net:
baseline and final test error, the fp32 state_dict bytes, the artifact bytes, the ratio and
the wall time, beside the paper's figures.

    python benchmarks/deep_compression.py --root ../shared/datasets [--only lenet300]
    python benchmarks/deep_compression.py --recipes beyond   # configs/beyond_*.yaml (issue #18), same checks
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from typer.testing import CliRunner

import compress
from cli.app import app

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
# Han et al., "Deep Compression", ICLR 2016, Table 1: fp32 size → compressed, error before → after
PAPER = {"lenet300": ("LeNet-300-100", 1070e3, 27e3, 1.64, 1.58), "lenet5": ("LeNet-5", 1720e3, 44e3, 0.80, 0.74)}
# what came after (issue #18): Soft Weight-Sharing (Ullrich et al. 2017, Table 1) and Sparse Variational Dropout
# (Molchanov et al. 2017), both computed on paper (no file)
LATER = {"lenet300": "SWS 64× (1.89 → 1.94 %); SVD 1/68 of the weights (1.64 → 1.92 %)",
         "lenet5": "SWS 162× (0.88 → 0.97 %); SVD 1/280 of the weights (0.80 → 0.75 %)"}


def run_one(name: str, root: str, out: Path, prefix: str = "deep_compression") -> dict[str, float]:
    recipe_path = CONFIGS / f"{prefix}_{name}.yaml"
    overrides = [f"data.root={root}", f"output={out}", "device=cpu"]
    recipe = compress.load_recipe(recipe_path, overrides=overrides)
    start = time.perf_counter()
    result = compress.run(recipe)
    seconds = time.perf_counter() - start
    rep = result.report
    res = CliRunner().invoke(app, ["eval", str(result.output), "-r", str(recipe_path), "--device", "cpu",
                                   "--json", "-", "-q", "--set", overrides[0]])
    if res.exit_code != 0:
        raise SystemExit(f"modelzip eval failed: {res.output}")
    evaluated = json.loads(res.stdout[res.stdout.index("{"):])["rows"][-1]["accuracy"]
    for row in rep.rows:
        print(f"  {row.stage:<9} top-1 {row.accuracy:6.2f} %  non-zero {row.nonzero:>8,}  {row.size_bytes:>9,} B  "
              f"{row.seconds:7.1f} s")
    return {"baseline_err": 100 - rep.rows[rep.baseline].accuracy, "final_err": 100 - rep.final.accuracy,
            "fp32": rep.fp32_bytes, "bytes": result.output.stat().st_size, "seconds": seconds,
            "eval_acc": evaluated, "final_acc": rep.final.accuracy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--only", choices=sorted(PAPER), nargs="+", default=sorted(PAPER, reverse=True))
    ap.add_argument("--recipes", choices=["deep_compression", "beyond"], default="deep_compression")
    ap.add_argument("--keep", type=Path, help="write each run's output folder here (default: a temporary one)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            print(f"{PAPER[name][0]}:", flush=True)
            r = run_one(name, args.root, (args.keep or Path(tmp)) / name, args.recipes)
            rows.append((name, r))
    print(f"\n{'net':<14} {'base err %':>10} {'final err %':>11} {'Δ pp':>6} {'fp32 B':>10} {'artifact B':>10} "
          f"{'ratio':>7} {'time':>7} {'eval':>6} | paper: {'err %':>11} {'size':>14} {'ratio':>5}")
    for name, r in rows:
        label, p_fp32, p_size, p_base, p_final = PAPER[name]
        exact = "same" if r["eval_acc"] == r["final_acc"] else f"{r['eval_acc']:.2f}!"
        paper = (f"{p_base:.2f} → {p_final:.2f} {p_fp32 / 1e3:5.0f} → {p_size / 1e3:3.0f} KB {p_fp32 / p_size:4.0f}×"
                 if args.recipes == "deep_compression" else LATER[name])
        print(f"{label:<14} {r['baseline_err']:10.2f} {r['final_err']:11.2f} "
              f"{r['final_err'] - r['baseline_err']:+6.2f} {r['fp32']:>10,} {r['bytes']:>10,} "
              f"{r['fp32'] / r['bytes']:6.1f}× {r['seconds'] / 60:6.1f}m {exact:>6} | {paper}")

if __name__ == "__main__":
    main()
