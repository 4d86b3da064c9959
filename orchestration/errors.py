"""Errors raised by the orchestration layer.

OrchestrationError
├── ConfigError      a setting is unknown or invalid; names the key
└── DemoError        the demo cannot run as asked
"""

from __future__ import annotations

__all__ = ["ConfigError", "DemoError", "OrchestrationError"]


class OrchestrationError(Exception):
    """Root of every error raised by :mod:`orchestration`."""


class ConfigError(OrchestrationError):
    """Raised at start-up when a setting is unknown or invalid."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"setting {key}: {problem}")


class DemoError(OrchestrationError):
    """Raised when ``eventlake demo`` cannot run as asked; says what to change."""
