"""Data parallelism under ``torchrun``: which rank this is, and the few collectives modelzip needs.

A process started by ``torchrun`` (or ``torch.distributed.run``) finds ``WORLD_SIZE`` > 1 in its
environment and joins the process group (gloo on CPU, nccl on CUDA); a plain process never
touches ``torch.distributed``. Every rank runs the same pipeline on its shard of each batch, so
weights, masks and grids stay identical (gradients are all-reduced, evaluations summed); rank 0
alone prints and writes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch

from compress.errors import InputError

DEFAULT_TIMEOUT_S = 120  # rendezvous and collectives: a rank that cannot join is an error, not a hang


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int
    world: int
    local_rank: int
    backend: str

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, *values: float) -> list[float]:
        """Element-wise sums over all ranks (float64 on the CPU: exact for counts)."""
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        if self.backend == "nccl":
            t = t.cuda(self.local_rank)
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]


def launched() -> bool:
    """True in a process that torchrun started as part of a job of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> Dist | None:
    """Join the job this process belongs to (None when it runs alone)."""
    if not launched():
        return None
    import torch.distributed as dist

    if device.type not in ("cpu", "cuda"):
        # gloo moves CPU tensors and nccl CUDA ones; nothing in torch.distributed all-reduces on MPS/XPU
        raise InputError(f"torch.distributed has no backend for device {device.type!r} in a job of several",
                         "run the job with --device cpu (gloo) or on CUDA machines (nccl)")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and not dist.is_nccl_available():
        raise InputError("this torch build has no NCCL for a CUDA job", "run the job on the CPU (gloo)")
    timeout = int(os.environ.get("MODELZIP_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
        except (RuntimeError, ValueError) as exc:
            where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
            raise InputError(f"cannot join the job's rendezvous at {where} within {timeout} s: "
                             f"{str(exc).splitlines()[0][:200]}",
                             "check --rdzv-endpoint / MASTER_ADDR and that every node started") from None
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), backend)


def leave() -> None:
    """Leave the process group (end of the job on this rank)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
