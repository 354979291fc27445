"""The accuracy-vs-size trade-off: one compressed model per rate or bit width, from one baseline.

Variants are built from the typed recipe (stages are config objects), never by dumping it to
a dict and re-validating.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from compress import plotting
from compress.context import Progress
from compress.pipeline import run
from compress.recipe import Constraints, EvaluateConfig, FinetuneConfig, LinearQuantize, Recipe, Stage
from compress.recipe.methods import MethodConfig, UnstructuredPrune


@dataclass
class Point:
    kind: str  # prune | quantize
    setting: float  # rate (%) or bits
    accuracy: float
    size_bytes: int  # real artifact bytes
    ratio: float  # fp32 state_dict bytes of the baseline / size_bytes
    seconds: float


@dataclass
class Sweep:
    baseline: float
    fp32_bytes: int
    points: list[Point] = field(default_factory=list)


def _variant(recipe: Recipe, pipeline: list[Stage], output: Path, checkpoint: str | None) -> Recipe:
    model = recipe.model.model_copy(update={"checkpoint": checkpoint})
    return recipe.model_copy(update={"model": model, "pipeline": pipeline, "output": str(output),
                                     "constraints": Constraints()})


def sweep(recipe: Recipe, *, rates: list[float], bits: list[int], finetune: FinetuneConfig | None,
          progress: Progress | None = None) -> Sweep:
    """Train per ``recipe`` (its train stages, or its checkpoint) once, then compress it at each setting.

    Every point starts from the same baseline and gets the same ``finetune`` stage (None = none).
    """
    progress = progress or Progress()
    with tempfile.TemporaryDirectory(prefix="modelzip-sweep-") as tmp:
        trains = [] if recipe.model.checkpoint else [s for s in recipe.pipeline if s.kind == "train"]
        evaluate = Stage(evaluate=EvaluateConfig())
        base = run(_variant(recipe, [*trains, evaluate], Path(tmp) / "base", recipe.model.checkpoint),
                   progress=progress)
        result = Sweep(base.report.final.accuracy, base.report.final.state_dict_bytes)
        settings: list[tuple[str, float, MethodConfig]] = [("prune", float(r), UnstructuredPrune(rate=r)) for r in rates]
        settings += [("quantize", float(b), LinearQuantize(bits=b)) for b in bits]
        tail = [Stage(finetune=finetune)] if finetune is not None else []
        for kind, value, config in settings:
            progress.note(f"sweep: {kind} {value:g}")
            point = _variant(recipe, [Stage.of(config), *tail, evaluate], Path(tmp) / f"{kind}-{value:g}",
                             str(base.output))
            report = run(point, progress=progress).report
            final = report.final
            result.points.append(Point(kind, value, final.accuracy, final.size_bytes,
                                       round(result.fp32_bytes / final.size_bytes, 3),
                                       round(sum(r.seconds or 0.0 for r in report.rows), 3)))
    return result


def plot(result: Sweep, path: Path, title: str) -> list[str]:
    """Accuracy vs artifact size, one line per method, points labelled by their setting; returns the
    x-axis tick labels (at least three, whatever the size range)."""
    plt = plotting.pyplot()
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, unit in (("prune", "%"), ("quantize", " bit")):
        pts = sorted((p for p in result.points if p.kind == kind), key=lambda p: p.size_bytes)
        if not pts:
            continue
        ax.plot([p.size_bytes / 1000 for p in pts], [p.accuracy for p in pts], marker="o", label=kind)
        for p in pts:
            ax.annotate(f"{p.setting:g}{unit}", (p.size_bytes / 1000, p.accuracy), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    ax.axhline(result.baseline, color="grey", linestyle="--", linewidth=1, label="baseline")
    ax.set_xscale("log")
    ticks = _size_ticks([p.size_bytes / 1000 for p in result.points])
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("artifact size (KB, log scale)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    labels = [f"{t:g}" for t in ticks]
    plotting.save(fig, path)
    return labels


def _size_ticks(sizes: list[float]) -> list[float]:
    """1-2-5 ticks over the sizes' range; where that gives fewer than three, ticks spread evenly (log)."""
    import math

    lo, hi = min(sizes), max(sizes)
    ticks = [m * 10 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
             for m in (1, 2, 5) if lo <= m * 10 ** e <= hi]
    if len(ticks) >= 3:
        return ticks
    n = 4
    return [float(f"{lo * (hi / lo) ** (i / (n - 1)):.2g}") for i in range(n)] if hi > lo else [float(f"{lo:.2g}")]
