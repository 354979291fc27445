"""``modelzip sweep``: accuracy vs size over prune rates and bit widths, from one baseline."""
from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from cli.common import READS, Common, build_recipe, check_outputs, command, emit
from cli.sensitivity_cmd import PlotOpt, parse_numbers


def table(result: Any, title: str) -> Any:
    from rich import box
    from rich.table import Table

    from cli.render import human_bytes

    out = Table(title=f"{title}: accuracy vs size (baseline {result.baseline:.2f} %, "
                      f"fp32 {human_bytes(result.fp32_bytes)})", box=box.SIMPLE_HEAD)
    for col in ("method", "setting", "top-1 %", "Δ pp", "size", "ratio", "seconds"):
        out.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for p in result.points:
        setting = f"{p.setting:g} %" if p.kind == "prune" else f"{p.setting:g} bit"
        out.add_row(p.kind, setting, f"{p.accuracy:.2f}", f"{p.accuracy - result.baseline:+.2f}",
                    human_bytes(p.size_bytes), f"{p.ratio:.1f}×", f"{p.seconds:.1f}")
    return out


@command(*READS)
def sweep_cmd(
    ctx: typer.Context,
    rates: Annotated[str, typer.Option("--rates", metavar="PCTS", help="Prune rates (%), comma-separated ('' "
                                       "for none).")] = "0,50,80,90,95",
    bits: Annotated[str, typer.Option("--bits", metavar="BITS", help="Bit widths, comma-separated ('' for "
                                      "none).")] = "",
    finetune_epochs: Annotated[int | None, typer.Option("--finetune-epochs", metavar="N", help="Fine-tuning per "
                                                        "point (0 = none; default: the recipe's finetune "
                                                        "stage).")] = None,
    plot: PlotOpt = None, *, common: Common,
) -> None:
    """Train once per the recipe (or load --checkpoint), then prune/quantize at each setting and fine-tune."""
    from cli.render import RichProgress
    from compress import sweep as sweeping
    from compress.errors import InputError
    from compress.recipe import FinetuneConfig

    rate_list, bit_list = parse_numbers(rates, float, "--rates"), parse_numbers(bits, int, "--bits")
    bad = [r for r in rate_list if not 0 <= r < 100] + [b for b in bit_list if not (1 <= b <= 8 or b == 16)]
    if bad or not (rate_list or bit_list):
        raise InputError(f"nothing to sweep or out of range: {bad}", "rates in [0, 100), bits in 1–8 or 16")
    if finetune_epochs is not None and finetune_epochs < 0:
        raise InputError(f"--finetune-epochs must be ≥ 0, got {finetune_epochs}")
    if 1 in bit_list:
        raise InputError("--bits 1: the sweep's linear grids are symmetric and need ≥ 2 bits", "use 2–8 or 16")
    check_outputs(common, (plot, "--plot"))
    if plot is not None:
        from compress import plotting

        plotting.pyplot()  # no matplotlib: say so now, not after the compute
    r = build_recipe(common)
    finetunes = [s.finetune for s in r.pipeline if s.finetune is not None]
    finetune: FinetuneConfig | None = finetunes[0] if finetunes else FinetuneConfig()
    if finetune_epochs is not None:
        finetune = None if finetune_epochs == 0 else (finetune or FinetuneConfig()).model_copy(
            update={"epochs": finetune_epochs})
    result = sweeping.sweep(r, rates=rate_list, bits=bit_list, finetune=finetune,
                            progress=RichProgress.for_cli(common.quiet))
    title = f"{r.model.name} on {r.data.name}"
    emit(table(result, title), asdict(result), common.json_path)
    if plot is not None:
        sweeping.plot(result, plot, f"Accuracy vs size: {title}")
