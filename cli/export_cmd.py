"""``modelzip export``: a compressed model for a deployment runtime, verified by running it there."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from cli.common import READS, Common, build_recipe, check_outputs, command, emit, stored_recipe


@command(*(o for o in READS if o != "checkpoint"))
def export_cmd(
    ctx: typer.Context,
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="A .mzip artifact (or a plain checkpoint with "
                                          "--recipe).")],
    format_: Annotated[Literal["onnx", "pt2"], typer.Option("--format", help="ONNX (ONNX Runtime, OpenVINO, …) or "
                                                            "a torch.export program (ExecuTorch, AOTInductor).")]
    = "onnx",
    int8: Annotated[bool, typer.Option("--int8", metavar="", help="onnx: static int8 (QDQ) through ONNX Runtime, "
                                       "calibrated on training data.")] = False,
    batch: Annotated[str, typer.Option("--batch", metavar="dynamic|N", help="A dynamic batch dimension, or a fixed "
                                       "batch size.")] = "dynamic",
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", help="Where to write it (default: "
                                                "beside MODEL, e.g. model.int8.onnx).")] = None,
    *, common: Common,
) -> None:
    """Export a model to ONNX or torch.export and verify it: accuracy, logit difference, latency, size."""
    from cli.render import RichProgress, export_table, out_console
    from compress.errors import InputError
    from compress.files import check_output_file, write_atomic
    from compress.pipeline import run
    from compress.recipe import ExportConfig

    if batch != "dynamic" and not batch.isdigit():
        raise InputError(f"--batch must be 'dynamic' or a whole number, got {batch!r}")
    cfg = {"format": format_, "int8": int8, "batch": batch if batch == "dynamic" else int(batch)}
    common.checkpoint = model
    check_outputs(common)
    doc, how = stored_recipe(common)
    recipe = build_recipe(common, lambda _: [{"export": cfg}], doc=doc, how=how)
    config = recipe.pipeline[0].config
    assert isinstance(config, ExportConfig)
    target = output or model.with_name(model.name.rsplit(".", 1)[0] + config.suffix)
    check_output_file(target, "--output", tuple(p for p in (model, common.recipe) if p is not None))
    result = run(recipe, progress=RichProgress.for_cli(common.quiet), write=False)
    write_atomic(target, result.state.exports[0].data)
    result.report.exports[0].file = str(target)
    emit(export_table(result.report), result.report.to_dict(), common.json_path)
    if common.json_path is None or str(common.json_path) != "-":
        out_console().print(f"wrote {target}")

