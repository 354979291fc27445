"""``modelzip inspect``: what an artifact holds, tensor by tensor, and the report it stores."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import Common, check_outputs, command, emit


@command("json_path")
def inspect_cmd(ctx: typer.Context, path: Annotated[Path, typer.Argument(metavar="FILE", help="A .mzip artifact.")],
                *, common: Common) -> None:
    """Per-tensor encoding, bits, sparsity and bytes; totals; the stored report. Decodes nothing it need not."""
    from rich.console import Group

    from cli.render import human_bytes, inspect_table, layer_table, report_table
    from compress import artifact
    from compress.report import Report

    check_outputs(common)
    header = artifact.read_header(path)
    rows = artifact.describe(header)
    size = path.stat().st_size
    payload = sum(r["bytes"] for r in rows)
    parts: list = [inspect_table(rows, f"{path} — {header.spec.name}"),
                   f"{len(rows)} tensors, {sum(r['numel'] for r in rows):,} values, payload {human_bytes(payload)}, "
                   f"file {human_bytes(size)} (manifest and header {human_bytes(size - payload)})"]
    data = {"file": str(path), "bytes": size, "model": header.spec.name, "tensors": rows, "report": None}
    stored = header.manifest.get("report")
    if stored is not None:
        try:
            report = Report.from_dict(stored).with_file_size(size)
        except ValueError as exc:
            parts.append(f"note: the stored report cannot be shown ({exc})")
        else:
            parts += [report_table(report), *([layer_table(report)] if report.layers else [])]
            data["report"] = report.to_dict()
    emit(Group(*parts), data, common.json_path)
