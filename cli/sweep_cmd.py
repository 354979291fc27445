"""``modelzip sweep``: accuracy vs size over prune rates and bit widths, from one baseline."""
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
from cli.render import RichProgress, human_bytes
from cli.sensitivity_cmd import parse_numbers
from compress import sweep as sweeping
from compress.errors import InputError


def table(result: sweeping.Sweep, title: str) -> Table:
    out = Table(title=f"{title}: accuracy vs size (baseline {result.baseline:.2f} %, "
                      f"fp32 {human_bytes(result.fp32_bytes)})")
    for col in ("method", "setting", "top-1 %", "Δ pp", "size", "ratio", "seconds"):
        out.add_column(col, justify="left" if col == "method" else "right", no_wrap=True)
    for p in result.points:
        setting = f"{p.setting:g} %" if p.kind == "prune" else f"{p.setting:g} bit"
        out.add_row(p.kind, setting, f"{p.accuracy:.2f}", f"{p.accuracy - result.baseline:+.2f}",
                    human_bytes(p.size_bytes), f"{p.ratio:.1f}×", f"{p.seconds:.1f}")
    return out


@guarded
def sweep_cmd(ctx: typer.Context,
    rates: Annotated[str, typer.Option("--rates", help="Prune rates (%), comma-separated ('' for none).")]
        = "0,50,80,90,95",
    bits: Annotated[str, typer.Option("--bits", help="Bit widths, comma-separated ('' for none).")] = "",
    finetune_epochs: Annotated[int | None, typer.Option("--finetune-epochs", help="Fine-tuning per point "
                                                        "(0 = none; default: the recipe's finetune stage).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG (needs the 'plot' extra).")] = None,
    recipe: RecipeOpt = None, sets: SetOpt = None, checkpoint: CheckpointOpt = None, device: DeviceOpt = None,
    json_path: JsonOpt = None, quiet: QuietOpt = False, trust: TrustOpt = False,
) -> None:
    """Train once per the recipe (or load --checkpoint), then prune/quantize at each setting and fine-tune."""
    rate_list, bit_list = parse_numbers(rates, float, "--rates"), parse_numbers(bits, int, "--bits")
    bad = [r for r in rate_list if not 0 <= r < 100] + [b for b in bit_list if not (1 <= b <= 8 or b == 16)]
    if bad or not (rate_list or bit_list):
        raise InputError(f"nothing to sweep or out of range: {bad}", "rates in [0, 100), bits in 1–8 or 16")
    r = build_recipe(recipe, sets, checkpoint=checkpoint, device=device, trust=trust, quiet=quiet)
    finetunes = [s.finetune.model_dump() for s in r.pipeline if s.finetune is not None]
    finetune: dict[str, Any] | None = finetunes[0] if finetunes else {}
    if finetune_epochs is not None:
        finetune = None if finetune_epochs == 0 else {**(finetune or {}), "epochs": finetune_epochs}
    result = sweeping.sweep(r, rates=rate_list, bits=bit_list, finetune=finetune,
                            progress=RichProgress.for_cli(quiet))
    title = f"{r.model.name} on {r.data.name}"
    emit(table(result, title), asdict(result), json_path)
    if plot is not None:
        sweeping.plot(result, plot, f"Accuracy vs size: {title}")
