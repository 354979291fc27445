"""What the commands share: their common options (declared once), recipe resolution, running with rendering.

Every command is a function ``fn(ctx, <own options>, *, common: Common)`` decorated with
:func:`command`, which adds the shared options it asks for to the signature Typer reads and
hands them over as one :class:`Common`; :func:`guarded` turns errors into exit codes.
"""
from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.errors import EXIT_CONSTRAINT, err_console, guarded

SHARED: dict[str, tuple[Any, Any]] = {  # name → (annotation, default); the order is the help's
    "recipe": (Annotated[Path | None, typer.Option("--recipe", "-r", metavar="FILE", help="Recipe YAML (default: "
                                                   "./modelzip.yaml, else the built-in quick start).")], None),
    "sets": (Annotated[list[str] | None, typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a recipe "
                                                      "key, e.g. train.epochs=3 (repeatable).")], None),
    "checkpoint": (Annotated[Path | None, typer.Option("--checkpoint", "-c", metavar="FILE", help="Input weights: "
                                                       ".pt/.pth/.ckpt state_dict, .safetensors or .mzip.")], None),
    "output": (Annotated[Path | None, typer.Option("--output", "-o", metavar="DIR", help="Output folder (writes "
                                                   "model.mzip; default: the recipe's output).")], None),
    "device": (Annotated[str | None, typer.Option("--device", metavar="DEVICE", help="auto | cpu | cuda[:N] | mps")],
               None),
    "json_path": (Annotated[Path | None, typer.Option("--json", metavar="FILE", help="Write the report as JSON to "
                                                      "this file ('-' for stdout).")], None),
    "exports": (Annotated[list[str] | None, typer.Option("--export", metavar="FORMAT", help="Also export the result "
                                                         "beside model.mzip and verify it: onnx | onnx-int8 | pt2 "
                                                         "(repeatable).")], None),
    "quiet": (Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="No progress output.")], False),
    "trust": (Annotated[bool, typer.Option("--trust-checkpoint", metavar="", help="Allow unpickling a full-module "
                                           "checkpoint or importing a model factory named by a file.")], False),
}
RUNS = ("recipe", "sets", "checkpoint", "output", "device", "json_path", "exports", "quiet", "trust")  # writers
READS = ("recipe", "sets", "checkpoint", "device", "json_path", "quiet", "trust")  # commands that only read


@dataclass
class Common:
    """The shared options as one value."""

    recipe: Path | None = None
    sets: list[str] = field(default_factory=list)
    checkpoint: Path | None = None
    output: Path | None = None
    device: str | None = None
    json_path: Path | None = None
    exports: list[str] = field(default_factory=list)
    quiet: bool = False
    trust: bool = False


def command(*shared: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the ``shared`` options to a command's signature and pass them as ``common``; guard errors."""
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for name, p in inspect.signature(fn, eval_str=True).parameters.items() if name != "common"]
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=SHARED[name][1],
                                   annotation=SHARED[name][0]) for name in shared]

        @functools.wraps(fn)
        def wrapper(ctx: typer.Context, *args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in shared}
            values["sets"] = values.get("sets") or []
            if "exports" in values:
                values["exports"] = values["exports"] or []
            return fn(ctx, *args, common=Common(**values), **kwargs)

        wrapper.__signature__ = inspect.Signature([*own, *extra])  # type: ignore[attr-defined]
        return guarded(wrapper)

    return deco


def builtin_recipe_path() -> Path:
    return Path(str(resources.files("compress.recipe").joinpath("quickstart.yaml")))


def pick_recipe(path: Path | None) -> tuple[Path, str]:
    """The recipe to use and how it was chosen (said on stderr)."""
    if path is not None:
        return path, f"recipe {path}"
    local = Path("modelzip.yaml")
    if local.is_file():
        return local, "recipe ./modelzip.yaml"
    return builtin_recipe_path(), "the built-in quick-start recipe"


def build_recipe(common: Common, edit: Callable[[list[Any]], list[Any]] | None = None,
                 doc: dict[str, Any] | None = None, how: str | None = None, subfolder: str | None = None) -> Any:
    """Load a recipe, apply flags, a pipeline edit, then ``--set`` overrides, and validate it.

    ``doc``: a recipe document to start from instead of a file (``how`` says where it came from).
    ``subfolder``: without ``--output``, write to ``<recipe output>/<subfolder>`` (one folder per command,
    so ``prune`` then ``quantize`` do not overwrite each other).
    """
    import compress
    from compress.presets import edit as edit_pipeline
    from compress.recipe import apply_override, read_yaml

    if doc is None:
        path, how = pick_recipe(common.recipe)
        doc, name = read_yaml(path), str(path)
    else:
        name = how or "<recipe>"
    if subfolder is not None and common.output is None:
        common.output = Path(str(doc.get("output") or "runs/modelzip")) / subfolder
    flags = {"model.checkpoint": common.checkpoint, "output": common.output, "device": common.device}
    for key, value in flags.items():
        if value is not None:
            apply_override(doc, f"{key}={value}")
    if common.trust:
        apply_override(doc, "model.trust_checkpoint=true")
    if edit is not None:
        doc = edit_pipeline(doc, edit)
    if common.exports:
        doc = edit_pipeline(doc, lambda pipeline: [*pipeline, *export_stages(common.exports)])
    recipe = compress.load_recipe(doc, common.sets, name=name)
    if not common.quiet and os.environ.get("RANK", "0") == "0":  # after --set: the names that will run
        err_console().print(f"[dim]using {how} ({recipe.data.name}, {recipe.model.name})[/dim]")
    return recipe


EXPORT_FORMATS = ("onnx", "onnx-int8", "pt2")


def export_stages(formats: list[str]) -> list[dict[str, Any]]:
    """``--export onnx-int8`` → ``{"export": {"format": "onnx", "int8": true}}``."""
    from compress.errors import InputError
    from compress.registry import did_you_mean

    bad = [f for f in formats if f not in EXPORT_FORMATS]
    if bad:
        raise InputError(f"--export {bad[0]!r} is not a format{did_you_mean(bad[0], EXPORT_FORMATS)}")
    return [{"export": {"format": f.removesuffix("-int8"), "int8": f.endswith("-int8")}} for f in formats]


def check_outputs(common: Common, *extra: tuple[Path | None, str]) -> None:
    """``--json`` (and e.g. ``--plot``) must be writable files that are none of the inputs — checked first."""
    from compress.files import check_output_file

    inputs = tuple(p for p in (common.recipe, common.checkpoint) if p is not None)
    for path, what in ((common.json_path, "--json"), *extra):
        if path is not None and str(path) != "-":
            check_output_file(path, what, inputs)


def execute(recipe: Any, common: Common, *, write: bool = True) -> Any:
    """Run with progress, print the table, write JSON; exit 3 when the accuracy constraint fails."""
    from cli.render import RichProgress, report_view
    from compress.pipeline import run

    from cli.launch import record

    protect = tuple(p for p in (common.recipe,) if p is not None)
    main_rank = os.environ.get("RANK", "0") == "0"  # in a torchrun job, rank 0 alone prints and writes
    result = run(recipe, progress=RichProgress.for_cli(common.quiet or not main_rank), write=write, protect=protect)
    if main_rank:
        emit(report_view(result.report), result.report.to_dict(), common.json_path)
    if result.report.constraint is not None and not result.report.constraint.met:
        record(EXIT_CONSTRAINT)
        raise typer.Exit(EXIT_CONSTRAINT)
    return result


def emit(renderable: Any, data: dict[str, Any], json_path: Path | None) -> None:
    """Print ``renderable`` (or, with ``--json -``, the JSON instead) and write ``--json PATH``."""
    from cli.render import out_console
    from compress.files import write_atomic

    if json_path is not None and str(json_path) == "-":
        typer.echo(json.dumps(data, indent=2))
        return
    out_console().print(renderable)
    if json_path is not None:
        write_atomic(json_path, json.dumps(data, indent=2).encode())


def stored_recipe(common: Common) -> tuple[dict[str, Any] | None, str | None]:
    """The data settings an artifact stores, when no recipe is given (so eval measures what was trained)."""
    from compress import artifact

    if common.recipe is not None or Path("modelzip.yaml").is_file() or common.checkpoint is None:
        return None, None
    if not artifact.is_artifact(common.checkpoint):
        return None, None
    from compress.recipe import DataConfig

    stored = artifact.read_header(common.checkpoint).manifest.get("recipe")
    if not isinstance(stored, dict) or not isinstance(stored.get("data", {}), dict):
        return None, None
    model = stored.get("model") if isinstance(stored.get("model"), dict) else {}
    try:  # files store the recipe as written: defaults come back from the schema; a file never makes modelzip download
        data = DataConfig(**{**stored.get("data", {}), "download": False}).model_dump(mode="json", exclude_none=True)
    except ValueError:  # a stored data section that does not validate is not used (the recipe check says why)
        return None, None
    doc = {"model": {"name": model.get("name", "mnist-cnn"), "kwargs": model.get("kwargs") or {},
                     "weights": model.get("weights")},  # with the artifact as checkpoint: the preprocessing only
           "data": data, "pipeline": ["evaluate"], "seed": stored.get("seed", 0)}
    return doc, f"the data settings stored in {common.checkpoint} ({data.get('name')}, root {data.get('root')})"
