"""Errors raised by the training layer.

TrainingError
├── ModelNotFound     no such model, version or alias
├── NothingToLearn    no labeled feature rows where some were needed
└── LaunchError       a launch, promotion or rollback that cannot be done
"""

from __future__ import annotations

__all__ = ["LaunchError", "ModelNotFound", "NothingToLearn", "TrainingError"]


class TrainingError(Exception):
    """Root of every error raised by :mod:`training`."""


class ModelNotFound(TrainingError, KeyError):
    """Raised when a model name, version or alias does not exist."""

    def __init__(self, what: str, known: list[str] | None = None) -> None:
        self.what = what
        self.known = known or []
        super().__init__(what)

    def __str__(self) -> str:
        hint = f" (known: {', '.join(self.known)})" if self.known else ""
        return f"{self.what} not found{hint}; `eventlake models` lists what exists"


class NothingToLearn(TrainingError):
    """Raised when training needs labeled feature rows and there are none."""


class LaunchError(TrainingError, ValueError):
    """Raised when a launch configuration is invalid or a rollback has nowhere to go."""
