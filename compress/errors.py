"""The modelzip error hierarchy.

Every expected failure is a :class:`ModelzipError` whose message says what was
wrong, where, and what to do. The CLI maps each class to an exit code.
"""
from __future__ import annotations


class ModelzipError(Exception):
    """Base class of every error modelzip expects; ``exit_code`` is the CLI's."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class InputError(ModelzipError):
    """Invalid input from the user: recipe, flag, file or checkpoint (exit 2)."""

    exit_code = 2


class RecipeError(InputError):
    """A recipe failed validation; ``problems`` lists every error with its path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        if len(problems) == 1:  # one problem, one line
            super().__init__(f"{source}: {problems[0]}")
        else:
            lines = "\n".join(f"  {p}" for p in problems)
            super().__init__(f"{source}: {len(problems)} problems in recipe\n{lines}")
        self.problems = problems


class DataError(InputError):
    """A dataset could not be found or read."""


class CheckpointError(InputError):
    """A checkpoint is missing, unsafe, or does not fit the architecture."""


class ArtifactError(InputError):
    """A compressed artifact is truncated, corrupt or of an unknown format."""


class UnsupportedError(InputError):
    """The request is valid but the model, device or method cannot honour it."""


class TrainingError(InputError):
    """Training cannot go on (e.g. the loss became NaN/inf): the settings need changing."""
