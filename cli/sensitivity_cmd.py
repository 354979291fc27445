"""``modelzip sensitivity``: per-layer accuracy when one layer alone is pruned or quantized."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.common import (
    CheckpointOpt, DeviceOpt, JsonOpt, QuietOpt, RecipeOpt, SetOpt, TrustOpt, build_recipe, emit,
)
from cli.errors import guarded
from cli.render import RichProgress, out_console
from compress import sensitivity
from compress.errors import InputError
from compress.pipeline import run


def parse_numbers(text: str, kind: type, name: str) -> list[Any]:
    """``"50,90"`` → ``[50.0, 90.0]``; a clear error for anything else."""
    try:
        return [kind(v) for v in text.split(",") if v.strip()] if text else []
    except ValueError:
        raise InputError(f"{name}: expected comma-separated numbers, got '{text}'", f"e.g. {name} 50,90") from None


def table(result: sensitivity.Sensitivity, title: str) -> Table:
    rates = sorted({r for v in result.prune.values() for r in v})
    bits = sorted({b for v in result.bits.values() for b in v}, reverse=True)
    out = Table(title=f"{title}: top-1 % with one layer compressed (baseline {result.baseline:.2f} %)")
    for col in ["layer", "weights", *[f"{r:g} %" for r in rates], *[f"{b} bit" for b in bits]]:
        out.add_column(col, justify="left" if col == "layer" else "right", no_wrap=True)
    for layer, n in result.params.items():
        cells = [f"{result.prune[layer][r]:.2f}" for r in rates] + [f"{result.bits[layer][b]:.2f}" for b in bits]
        out.add_row(layer, f"{n:,}", *cells)
    return out


@guarded
def sensitivity_cmd(ctx: typer.Context,
    rates: Annotated[str, typer.Option("--rates", help="Sparsities (%) to try per layer, comma-separated.")]
        = "50,70,90,95",
    bits: Annotated[str, typer.Option("--bits", help="Bit widths to try per layer ('' for none).")] = "8,4,2",
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG (needs the 'plot' extra).")] = None,
    recipe: RecipeOpt = None, sets: SetOpt = None, checkpoint: CheckpointOpt = None, device: DeviceOpt = None,
    json_path: JsonOpt = None, quiet: QuietOpt = False, trust: TrustOpt = False,
) -> None:
    """Train per the recipe (or load --checkpoint), then prune/quantize each layer alone and evaluate."""
    rate_list, bit_list = parse_numbers(rates, float, "--rates"), parse_numbers(bits, int, "--bits")
    bad = [r for r in rate_list if not 0 <= r < 100] + [b for b in bit_list if not 2 <= b <= 8]
    if bad:
        raise InputError(f"out of range: {bad}", "rates in [0, 100), bits in 2–8")

    def edit(pipeline: list[Any]) -> list[Any]:
        trains = [] if checkpoint else [s for s in pipeline if isinstance(s, dict) and "train" in s]
        return [*trains, "evaluate"]

    r = build_recipe(recipe, sets, checkpoint=checkpoint, device=device, trust=trust, edit=edit, quiet=quiet)
    res = run(r, progress=RichProgress.for_cli(quiet), write=False)
    result = sensitivity.measure(res.model, res.state.data.test, res.state.ctx, rates=rate_list, bits=bit_list,
                                 batch_size=r.data.eval_batch_size)
    title = f"{r.model.name} on {r.data.name}"
    emit(table(result, title), asdict(result), json_path)
    if plot is not None:
        sensitivity.plot(result, plot, f"Per-layer sensitivity: {title}")
        if not quiet:
            out_console().print(f"wrote {plot}")
