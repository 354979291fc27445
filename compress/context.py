"""The run context passed through every stage: device, seed, progress sink, and the job's ranks."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from compress.distributed import Dist
from compress.errors import UnsupportedError
from compress.progress import Progress


@dataclass
class RunContext:
    device: torch.device
    seed: int = 0
    progress: Progress = field(default_factory=Progress)
    dist: Dist | None = None  # this rank's place in a data-parallel job (None: one process)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run's seed (``offset`` separates uses)."""
        return torch.Generator().manual_seed(self.seed + offset)


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """Map ``auto|cpu|cuda[:N]|mps`` to an available ``torch.device`` (in a job, CUDA means this rank's GPU)."""
    if local_rank is not None and spec in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank}")
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UnsupportedError(f"device '{spec}' requested but CUDA is not available here",
                                   "use --device cpu or --device auto")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise UnsupportedError(f"device '{spec}': only {torch.cuda.device_count()} CUDA device(s)")
    if spec == "mps" and not torch.backends.mps.is_available():
        raise UnsupportedError("device 'mps' requested but MPS is not available here",
                               "use --device cpu or --device auto")
    return torch.device(spec)
