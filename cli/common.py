"""Options shared by the commands, recipe resolution and running a recipe with rendering."""
from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.errors import EXIT_CONSTRAINT, err_console
from cli.render import RichProgress, out_console, report_view
from compress.artifact import write_atomic
from compress.pipeline import RunResult, run
from compress.recipe import Recipe, apply_override, load_recipe, read_yaml

RecipeOpt = Annotated[Path | None, typer.Option("--recipe", "-r", help="Recipe YAML (default: ./modelzip.yaml, "
                                                 "else the built-in quick start).")]
CheckpointOpt = Annotated[Path | None, typer.Option("--checkpoint", "-c", help="Input weights: .pt/.pth "
                                                     "state_dict, .safetensors or .mzip.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Output folder (writes model.mzip).")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda[:N] | mps")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a recipe key, e.g. "
                                                  "train.epochs=3 (repeatable).")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the report as JSON to this file "
                                              "('-' for stdout).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
TrustOpt = Annotated[bool, typer.Option("--trust-checkpoint", help="Allow unpickling a full-module "
                                        "checkpoint or importing a model factory named by a file.")]

PipelineEdit = Callable[[list[Any]], list[Any]]


def builtin_recipe_path() -> Path:
    return Path(str(resources.files("compress.recipe").joinpath("quickstart.yaml")))


def pick_recipe(path: Path | None) -> tuple[Path, str]:
    """The recipe to use and how it was chosen (said on stderr)."""
    if path is not None:
        return path, f"recipe {path}"
    local = Path("modelzip.yaml")
    if local.is_file():
        return local, "recipe ./modelzip.yaml"
    return builtin_recipe_path(), "the built-in quick-start recipe (digits, mnist-cnn)"


def build_recipe(path: Path | None, sets: list[str] | None, *, checkpoint: Path | None = None,
                 output: Path | None = None, device: str | None = None, trust: bool = False,
                 edit: PipelineEdit | None = None, quiet: bool = False) -> Recipe:
    """Load a recipe, apply flags then ``--set`` overrides and a pipeline edit, and validate it."""
    path, how = pick_recipe(path)
    if not quiet:
        err_console().print(f"[dim]using {how}[/dim]")
    raw = read_yaml(path)
    flags = {"model.checkpoint": checkpoint, "output": output, "device": device}
    for key, value in flags.items():
        if value is not None:
            apply_override(raw, f"{key}={value}")
    if trust:
        apply_override(raw, "model.trust_checkpoint=true")
    if edit is not None:
        raw["pipeline"] = edit(list(raw.get("pipeline") or []))
    return load_recipe(raw, sets or [], name=str(path))


def execute(recipe: Recipe, *, quiet: bool, json_path: Path | None, write: bool = True) -> RunResult:
    """Run with progress, print the table, write JSON; exit 3 when the accuracy constraint fails."""
    result = run(recipe, progress=RichProgress.for_cli(quiet), write=write)
    emit(report_view(result.report), result.report.to_dict(), json_path)
    if result.report.constraint is not None and not result.report.constraint.met:
        raise typer.Exit(EXIT_CONSTRAINT)
    return result


def emit(renderable: Any, data: dict[str, Any], json_path: Path | None) -> None:
    """Print ``renderable`` (or, with ``--json -``, the JSON instead) and write ``--json PATH``."""
    if json_path is not None and str(json_path) == "-":
        typer.echo(json.dumps(data, indent=2))
        return
    out_console().print(renderable)
    if json_path is not None:
        write_atomic(json_path, json.dumps(data, indent=2).encode())
