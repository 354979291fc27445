"""``modelzip inspect``: what an artifact holds, tensor by tensor."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.errors import guarded
from cli.render import human_bytes, inspect_table, layer_table, out_console, report_table
from compress import artifact
from compress.report import Report


@guarded
def inspect_cmd(ctx: typer.Context, path: Annotated[Path, typer.Argument(help="A .mzip artifact.")]) -> None:
    """Per-tensor encoding, bits, sparsity and bytes; totals; the stored report."""
    art = artifact.read(path)
    rows = artifact.describe(art)
    console = out_console()
    console.print(inspect_table(rows, f"{path} — {art.spec.name}"))
    payload = sum(r["bytes"] for r in rows)
    params = sum(r["numel"] for r in rows)
    console.print(f"{len(rows)} tensors, {params:,} values, payload {human_bytes(payload)}, "
                  f"file {human_bytes(path.stat().st_size)} (manifest and header "
                  f"{human_bytes(path.stat().st_size - payload)})")
    stored = art.manifest.get("report")
    if stored:
        rep = Report.from_dict(stored)
        console.print(report_table(rep))
        if rep.layers:
            console.print(layer_table(rep))
