"""The ``modelzip`` Typer app: global options and the core commands."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli import compress_cmds, inspect_cmd, sensitivity_cmd, sweep_cmd
from cli.common import (
    CheckpointOpt, DeviceOpt, JsonOpt, OutputOpt, QuietOpt, RecipeOpt, SetOpt, TrustOpt, build_recipe, execute,
)
from cli.errors import guarded
from compress import __version__
from compress.errors import InputError

app = typer.Typer(name="modelzip", no_args_is_help=True, add_completion=False,
                  help="Make trained PyTorch classifiers smaller and faster while keeping their accuracy.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelzip {__version__}")
        raise typer.Exit()


@app.callback()
def main(ctx: typer.Context,
         debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
         version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False) -> None:
    ctx.obj = {"debug": debug}


@app.command("run")
@guarded
def run_cmd(ctx: typer.Context, recipe: Annotated[Path, typer.Argument(help="Recipe YAML.")], sets: SetOpt = None,
            checkpoint: CheckpointOpt = None, output: OutputOpt = None, device: DeviceOpt = None,
            json_path: JsonOpt = None, quiet: QuietOpt = False, trust: TrustOpt = False) -> None:
    """Run a recipe end to end and write <output>/model.mzip."""
    r = build_recipe(recipe, sets, checkpoint=checkpoint, output=output, device=device, trust=trust, quiet=quiet)
    execute(r, quiet=quiet, json_path=json_path)


@app.command("train")
@guarded
def train_cmd(ctx: typer.Context, recipe: RecipeOpt = None, sets: SetOpt = None, checkpoint: CheckpointOpt = None,
              output: OutputOpt = None, device: DeviceOpt = None, json_path: JsonOpt = None,
              quiet: QuietOpt = False, trust: TrustOpt = False) -> None:
    """Run only the recipe's training stages (then evaluate) and write the model."""
    def edit(pipeline: list) -> list:
        kept = [s for s in pipeline if isinstance(s, dict) and "train" in s]
        return (kept or [{"train": {}}]) + ["evaluate"]

    r = build_recipe(recipe, sets, checkpoint=checkpoint, output=output, device=device, trust=trust,
                     edit=edit, quiet=quiet)
    execute(r, quiet=quiet, json_path=json_path)


@app.command("eval")
@guarded
def eval_cmd(ctx: typer.Context, checkpoint: Annotated[Path, typer.Argument(help=".mzip artifact or plain checkpoint.")],
             recipe: RecipeOpt = None, sets: SetOpt = None, device: DeviceOpt = None,
             json_path: JsonOpt = None, quiet: QuietOpt = False, trust: TrustOpt = False) -> None:
    """Evaluate a checkpoint on the recipe's data (writes nothing but --json)."""
    r = build_recipe(recipe, sets, checkpoint=checkpoint, device=device, trust=trust,
                     edit=lambda _: ["evaluate"], quiet=quiet)
    execute(r, quiet=quiet, json_path=json_path, write=False)


@app.command("validate")
@guarded
def validate_cmd(ctx: typer.Context, recipe: Annotated[Path, typer.Argument(help="Recipe YAML.")], sets: SetOpt = None) -> None:
    """Check a recipe and report every problem at once (no compute)."""
    r = build_recipe(recipe, sets, quiet=True)
    stages = " → ".join(s.kind for s in r.pipeline)
    typer.echo(f"{recipe}: ok — {r.model.name} on {r.data.name}: {stages}")


@app.command("init")
@guarded
def init_cmd(ctx: typer.Context, path: Annotated[Path, typer.Argument(help="Where to write the starter recipe.")] = Path("modelzip.yaml"),
             force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False) -> None:
    """Write a commented starter recipe."""
    if path.exists() and not force:
        raise InputError(f"{path} already exists", "pass --force to overwrite it, or choose another path")
    text = resources.files("compress.recipe").joinpath("starter.yaml").read_text()
    path.write_text(text)
    Console(stderr=True).print(f"wrote {path}; check it with `modelzip validate {path}`")


app.command("prune")(compress_cmds.prune_cmd)
app.command("quantize")(compress_cmds.quantize_cmd)
app.command("inspect")(inspect_cmd.inspect_cmd)
app.command("sensitivity")(sensitivity_cmd.sensitivity_cmd)
app.command("sweep")(sweep_cmd.sweep_cmd)
