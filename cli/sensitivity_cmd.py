"""``modelzip sensitivity``: per-layer accuracy when one layer alone is pruned or quantized."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import READS, Common, build_recipe, check_outputs, command, emit

PlotOpt = Annotated[Path | None, typer.Option("--plot", metavar="FILE.png", help="Write a PNG (needs the 'plot' "
                                              "extra).")]


def parse_numbers(text: str, kind: type, name: str) -> list[Any]:
    """``"50,90"`` → ``[50.0, 90.0]``; a clear error for anything else."""
    from compress.errors import InputError

    try:
        values = [kind(v) for v in text.split(",") if v.strip()] if text else []
    except ValueError:
        raise InputError(f"{name}: expected comma-separated numbers, got '{text[:60]}'", f"e.g. {name} 50,90") from None
    if any(v != v or v in (float("inf"), float("-inf")) for v in values):
        raise InputError(f"{name}: numbers must be finite, got '{text[:60]}'")
    return values


def table(result: Any, title: str) -> Any:
    from rich import box
    from rich.table import Table

    rates = sorted({r for v in result.prune.values() for r in v})
    bits = sorted({b for v in result.bits.values() for b in v}, reverse=True)
    out = Table(title=f"{title}: top-1 % with one layer compressed (baseline {result.baseline:.2f} %)",
                caption=f"measured on the {result.split} (never the test split)", box=box.SIMPLE_HEAD)
    for col in ["layer", "weights", *[f"{r:g} %" for r in rates], *[f"{b} bit" for b in bits]]:
        out.add_column(col, justify="left" if col == "layer" else "right", no_wrap=True)
    for layer, n in result.params.items():
        cells = [f"{result.prune[layer][r]:.2f}" for r in rates] + [f"{result.bits[layer][b]:.2f}" for b in bits]
        out.add_row(layer, f"{n:,}", *cells)
    return out


@command(*READS)
def sensitivity_cmd(
    ctx: typer.Context,
    rates: Annotated[str, typer.Option("--rates", metavar="PCTS", help="Sparsities (%) to try per layer, "
                                       "comma-separated.")] = "50,70,90,95",
    bits: Annotated[str, typer.Option("--bits", metavar="BITS", help="Bit widths to try per layer ('' for "
                                      "none).")] = "8,4,2",
    plot: PlotOpt = None, *, common: Common,
) -> None:
    """Train per the recipe (or load --checkpoint), then prune/quantize each layer alone and evaluate it."""
    from cli.render import RichProgress, out_console
    from compress import presets
    from compress.analysis import sensitivity
    from compress.errors import InputError

    rate_list, bit_list = parse_numbers(rates, float, "--rates"), parse_numbers(bits, int, "--bits")
    bad = [r for r in rate_list if not 0 <= r < 100] + [b for b in bit_list if not 2 <= b <= 8]
    if bad:
        raise InputError(f"out of range: {bad}", "rates in [0, 100), bits in 2–8")
    check_outputs(common, (plot, "--plot"))
    if plot is not None:
        from compress import plotting

        plotting.pyplot()  # no matplotlib: say so now, not after the compute
    recipe = build_recipe(common, presets.baseline(common.checkpoint is not None))
    res = presets.sensitivity(recipe, rate_list, bit_list, RichProgress.for_cli(common.quiet))
    title = f"{res.model} on {res.dataset}"
    emit(table(res.result, title), asdict(res.result), common.json_path)
    if plot is not None:
        sensitivity.plot(res.result, plot, f"Per-layer sensitivity: {title}")
        if not common.quiet:
            out_console().print(f"wrote {plot}")
