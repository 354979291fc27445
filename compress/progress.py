"""Where the library reports progress (no torch here: the CLI imports it before anything heavy)."""
from __future__ import annotations


class Progress:
    """Where the library reports progress; the default does nothing (the CLI renders it)."""

    def start(self, label: str, total: int) -> None:
        """A task of ``total`` units begins."""

    def update(self, advance: int, **metrics: float) -> None:
        """``advance`` units done; ``metrics`` are the latest figures (loss, acc, …)."""

    def stop(self) -> None:
        """The current task has ended."""

    def note(self, message: str) -> None:
        """A one-line remark for the user (stage started, search trial, …)."""
