"""The ``modelzip`` Typer app: global options and the recipe commands (run, train, eval, validate, init).

Importing this module imports neither torch nor the library's heavy parts: ``modelzip --help``
and ``--version`` answer at once; commands import what they use when they run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli import compress_cmds, export_cmd, inspect_cmd, sensitivity_cmd, sweep_cmd
from cli.common import READS, RUNS, Common, build_recipe, check_outputs, command, execute, stored_recipe
from cli.errors import err_console
from compress.version import __version__

app = typer.Typer(name="modelzip", no_args_is_help=True, add_completion=False,
                  help="Make trained PyTorch classifiers smaller and faster while keeping their accuracy.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelzip {__version__}")
        raise typer.Exit()


@app.callback()
def main(ctx: typer.Context,
         debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show tracebacks for errors.")] = False,
         version: Annotated[bool, typer.Option("--version", metavar="", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    ctx.obj = {"debug": debug}


@app.command("run")
@command(*(o for o in RUNS if o != "recipe"))
def run_cmd(ctx: typer.Context, recipe_file: Annotated[Path, typer.Argument(metavar="RECIPE", help="Recipe YAML.")],
            nproc: Annotated[int | None, typer.Option("--nproc", metavar="N", help="Run as N data-parallel processes "
                                                      "on this machine (torch's launcher; README: torchrun, nodes).")]
            = None, *, common: Common) -> None:
    """Run a recipe end to end and write <output>/model.mzip."""
    if nproc is not None:  # the entry point launches the job before this command is reached
        from compress.errors import InputError

        raise InputError("--nproc is handled by the modelzip command itself", "run `modelzip run RECIPE --nproc N`")
    common.recipe = recipe_file
    check_outputs(common)
    execute(build_recipe(common), common)


@app.command("train")
@command(*RUNS)
def train_cmd(ctx: typer.Context, *, common: Common) -> None:
    """Run only the recipe's training stages (then evaluate) and write the model."""
    from compress.presets import train_only

    check_outputs(common)
    execute(build_recipe(common, train_only, subfolder="train"), common)


@app.command("eval")
@command(*(o for o in READS if o != "checkpoint"))
def eval_cmd(ctx: typer.Context, checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help=".mzip "
                                                                            "artifact or plain checkpoint.")],
             *, common: Common) -> None:
    """Evaluate a checkpoint (an artifact on the data it stores, unless a recipe is given); writes only --json."""
    from compress.presets import evaluate_only

    common.checkpoint = checkpoint
    check_outputs(common)
    doc, how = stored_recipe(common)
    execute(build_recipe(common, evaluate_only, doc=doc, how=how), common, write=False)


@app.command("validate")
@command("sets")
def validate_cmd(ctx: typer.Context, recipe_file: Annotated[Path, typer.Argument(metavar="RECIPE",
                                                                                 help="Recipe YAML.")],
                 *, common: Common) -> None:
    """Check a recipe and report every problem at once (no compute)."""
    common.recipe, common.quiet = recipe_file, True
    r = build_recipe(common)
    stages = " → ".join(s.kind for s in r.pipeline)
    typer.echo(f"{recipe_file}: ok — {r.model.name} on {r.data.name}: {stages}")


@app.command("init")
@command()
def init_cmd(ctx: typer.Context,
             path: Annotated[Path, typer.Argument(metavar="PATH", help="Where to write the starter recipe.")]
             = Path("modelzip.yaml"),
             force: Annotated[bool, typer.Option("--force", metavar="", help="Overwrite an existing file.")] = False,
             *, common: Common) -> None:
    """Write a commented starter recipe."""
    from importlib import resources

    from compress.errors import InputError
    from compress.files import check_output_file, write_atomic

    check_output_file(path, "init")
    if path.exists() and not force:
        raise InputError(f"{path} already exists", "pass --force to overwrite it, or choose another path")
    write_atomic(path, resources.files("compress.recipe").joinpath("starter.yaml").read_bytes())
    err_console().print(f"wrote {path}; check it with `modelzip validate {path}`")


app.command("prune")(compress_cmds.prune_cmd)
app.command("quantize")(compress_cmds.quantize_cmd)
app.command("export")(export_cmd.export_cmd)
app.command("inspect")(inspect_cmd.inspect_cmd)
app.command("sensitivity")(sensitivity_cmd.sensitivity_cmd)
app.command("sweep")(sweep_cmd.sweep_cmd)
