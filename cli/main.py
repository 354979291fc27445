"""The ``modelzip`` entry point: every way out is one line and a documented exit code.

Usage errors (a bad option value) are one line and exit 2, Ctrl-C anywhere — even while torch
is still importing — is ``interrupted`` and exit 130; commands map their own errors (``cli.errors``).
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

EXIT_INTERRUPTED = 130


class _Interrupts:
    """SIGINT as KeyboardInterrupt, except in the middle of an import: a module left half-imported
    makes later imports fail in odd ways (numpy's ``_multiarray_umath`` missing, recursion errors),
    so there the signal is delivered again a moment later, once the import is done."""

    def __init__(self) -> None:
        self.seen = False
        self.pid = os.getpid()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.pid:
            # a forked DataLoader worker (Ctrl-C reaches the whole process group): the main process
            # answers it and stops its workers; a KeyboardInterrupt here only prints a worker's traceback
            return
        self.seen = True
        if _importing(frame):
            self.again()
            return
        raise KeyboardInterrupt

    def again(self) -> None:
        """Deliver SIGINT again in a moment."""
        threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGINT)).start()

    def unraisable(self, info: Any) -> None:
        """``sys.unraisablehook``: a KeyboardInterrupt raised where Python cannot propagate it (an at-fork
        callback, a ``__del__``) would be printed as 'Exception ignored' and lost — say nothing and deliver
        the signal again instead; after an interrupt, what fails while tearing down is not printed either."""
        if isinstance(info.exc_value, KeyboardInterrupt) and os.getpid() == self.pid:
            self.again()
            return
        if self.seen:
            return  # teardown of what the interrupt cut short (e.g. a DataLoader half started): not news
        sys.__unraisablehook__(info)


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    interrupts = _Interrupts()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, interrupts) if in_main_thread else None
    previous_hook, sys.unraisablehook = sys.unraisablehook, interrupts.unraisable
    try:
        code = _main(argv)
    finally:
        sys.unraisablehook = previous_hook
        if in_main_thread:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    # a KeyboardInterrupt raised inside a callback is printed and swallowed by Python: still honour it
    return _interrupted() if interrupts.seen and code == 0 else code


def _main(argv: list[str] | None) -> int:
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
        if code == EXIT_INTERRUPTED:  # typer turns a KeyboardInterrupt inside a command into a silent Exit(130)
            return _interrupted()
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
    code = main()
    if code == EXIT_INTERRUPTED:
        # CPython re-kills itself with SIGINT at exit when a KeyboardInterrupt once went unhandled in
        # code run through PyRun_* (some imports do), even though main() caught it: exit directly.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    sys.exit(code)


if __name__ == "__main__":
    run()
