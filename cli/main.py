"""The ``modelzip`` entry point: every way out is one line and a documented exit code.

Usage errors (a bad option value) are one line and exit 2, Ctrl-C anywhere — even while torch
is still importing — is ``interrupted`` and exit 130; commands map their own errors (``cli.errors``).
"""
from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    try:
        import typer

        from cli.app import app

        try:
            code = app(args=argv, standalone_mode=False, prog_name="modelzip")
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


def _interrupted() -> int:
    sys.stderr.write("interrupted\n")
    return EXIT_INTERRUPTED


def run() -> None:
    """Console-script entry: exit with :func:`main`'s code."""
    sys.exit(main())


if __name__ == "__main__":
    run()
