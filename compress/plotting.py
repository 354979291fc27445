"""matplotlib, imported only when a plot is asked for (the optional ``plot`` extra)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from compress.errors import UnsupportedError


def pyplot() -> Any:
    """``matplotlib.pyplot`` with a file-only backend, or a clear error saying how to get it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UnsupportedError("plotting needs matplotlib, which is not installed",
                               "pip install 'modelzip[plot]' (or leave out --plot)") from exc
    return plt


def save(fig: Any, path: Path) -> None:
    """Write ``fig`` as a PNG atomically (temporary file + rename) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=120)
    pyplot().close(fig)
    tmp.replace(path)
