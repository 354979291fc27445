"""``modelzip run RECIPE --nproc N``: the same command under torch's own launcher, N processes on this machine.

Equivalent to ``torchrun --standalone --nproc_per_node N -m cli run RECIPE …``; when a rank fails,
the job ends with that rank's one-line error and exit code instead of the launcher's report.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

ERROR_FILE = "MODELZIP_ERROR_FILE"  # where a failing rank leaves its one-line error for the launcher


def split_nproc(argv: list[str]) -> tuple[int | None, list[str], str | None]:
    """``--nproc N`` taken out of ``argv``: (N or None, the rest, an error message)."""
    for i, arg in enumerate(argv):
        if arg == "--nproc" or arg.startswith("--nproc="):
            value, rest = (arg.split("=", 1)[1], argv[:i] + argv[i + 1:]) if "=" in arg else (
                argv[i + 1] if i + 1 < len(argv) else "", argv[:i] + argv[i + 2:])
            if not value.isdigit() or int(value) < 1:
                return None, rest, f"--nproc must be a whole number ≥ 1, got {value!r}"
            return int(value), rest, None
    return None, argv, None


def record(code: int, message: str = "") -> bool:
    """Leave this rank's exit code (and error) for the launcher; False when not launched by ``--nproc``."""
    path = os.environ.get(ERROR_FILE)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{code}\t{message.replace(chr(10), chr(11))}\n")  # one line per rank; newlines kept as VT
    return bool(path)


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``modelzip <argv>`` as ``nproc`` ranks through ``torch.distributed.run``; the job's exit code."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    with tempfile.TemporaryDirectory(prefix="modelzip-job-") as tmp:
        errors = Path(tmp) / "errors"
        os.environ[ERROR_FILE] = str(errors)
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        args = parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m", "cli", *argv])
        logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its failure report: ours instead
        try:
            run(args)
        except ChildFailedError:
            first = errors.read_text().splitlines()[0] if errors.is_file() else ""
            code, _, message = first.partition("\t")
            message = message.replace(chr(11), chr(10))
            if message or not code.isdigit():
                sys.stderr.write((message or "error: a rank of the job failed (its output is above)") + "\n")
            return int(code) if code.isdigit() else 1
        finally:
            os.environ.pop(ERROR_FILE, None)
    return 0
