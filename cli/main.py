"""The ``modelzip`` entry point: every way out is one line and a documented exit code.

Usage errors (a bad option value) are one line and exit 2, Ctrl-C anywhere — even while torch
is still importing — is ``interrupted`` and exit 130; commands map their own errors (``cli.errors``).
"""
from __future__ import annotations

import os
import sys

EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # c10d's C++ logs would bury the one-line error
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "FATAL")
    try:
        import typer

        from cli.app import app
        from cli.launch import launch, split_nproc

        args = sys.argv[1:] if argv is None else argv
        nproc, rest, problem = split_nproc(args) if args[:1] == ["run"] else (None, args, None)
        if problem:
            sys.stderr.write(f"error: {problem}\n  hint: see 'modelzip run --help'\n")
            return 2
        if nproc is not None and int(os.environ.get("WORLD_SIZE", "1")) == 1:
            return launch(nproc, rest)
        try:
            code = app(args=rest, standalone_mode=False, prog_name="modelzip")
        except typer.Abort:  # Ctrl-C while the command line is parsed
            return _interrupted()
        except typer.TyperException as exc:
            command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "modelzip"
            message = exc.format_message().replace("Value error, ", "")
            if not message:  # no command given: the help was printed
                return exc.exit_code
            sys.stderr.write(f"error: {message}\n  hint: see '{command} --help'\n")
            return exc.exit_code
        return code if isinstance(code, int) else 0
    except KeyboardInterrupt:
        return _interrupted()
    finally:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a rank leaves the job's process group
            from compress.distributed import leave

            leave()


def _interrupted() -> int:
    sys.stderr.write("interrupted\n")
    return EXIT_INTERRUPTED


def run() -> None:
    """Console-script entry: exit with :func:`main`'s code."""
    sys.exit(main())


if __name__ == "__main__":
    run()
