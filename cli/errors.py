"""Turning exceptions into one clear line and an exit code."""
from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from compress.errors import ModelzipError

F = TypeVar("F", bound=Callable[..., Any])
EXIT_OK, EXIT_ERROR, EXIT_INPUT, EXIT_CONSTRAINT = 0, 1, 2, 3


def err_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def debug_enabled(ctx: typer.Context | None) -> bool:
    while ctx is not None:
        if isinstance(ctx.obj, dict) and ctx.obj.get("debug"):
            return True
        ctx = ctx.parent
    return False


def guarded(fn: F) -> F:
    """Run a command; expected errors print one message (traceback with --debug) and exit non-zero.

    The command's first parameter is its ``typer.Context`` (it carries ``--debug``).
    """

    @functools.wraps(fn)
    def wrapper(ctx: typer.Context, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(ctx, *args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except ModelzipError as exc:
            _report(f"error: {exc}", exc, ctx)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            _report(f"error: unexpected {type(exc).__name__}: {exc}\n  hint: rerun with --debug for the "
                    "traceback and report it", exc, ctx)
            raise typer.Exit(EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]


def _report(message: str, exc: BaseException, ctx: typer.Context) -> None:
    """One error line (and hint) on stderr; in a data-parallel job, prefixed with the failing rank."""
    import os

    from cli.launch import record

    console = err_console()
    if debug_enabled(ctx):
        console.print("".join(traceback.format_exception(exc)), markup=False)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        message = f"rank {os.environ.get('RANK', '?')}: {message}"
    if not record(getattr(exc, "exit_code", EXIT_ERROR) if isinstance(exc, ModelzipError) else EXIT_ERROR, message):
        console.print(message, markup=False)  # under --nproc the launcher prints the first rank's error instead
