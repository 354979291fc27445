"""Running a benchmark step in a fresh process and reading that process's own peak memory (no torch import
here, so a parent stays small)."""
from __future__ import annotations

import multiprocessing as mp
import resource
from pathlib import Path
from typing import Any


def in_process(target: Any, *args: Any) -> Any:
    """``target(*args, queue)`` in a fresh (spawned) process; what it put on the queue."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def peak_gib() -> float:
    """This process's own peak resident set in GiB (VmHWM; ``ru_maxrss`` carries the parent's peak at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def current_gib() -> float:
    """This process's resident set now, in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    return peak_gib()


def reset_peak() -> bool:
    """Start this process's peak (VmHWM) from its current size (Linux: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
