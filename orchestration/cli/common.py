"""What every ``eventlake`` command shares: settings and one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from ingest import IngestError
from lake import LakeError
from orchestration.errors import ConfigError, OrchestrationError
from orchestration.settings import Settings, load_settings
from training.errors import TrainingError

__all__ = ["friendly_errors", "settings_of"]

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Print our own errors as one clear line (exit 2 for configuration, 1 otherwise)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as e:
            click.echo(f"eventlake: configuration error: {e}", err=True)
            sys.exit(2)
        except OrchestrationError as e:
            click.echo(f"eventlake: error: {e}", err=True)
            sys.exit(2)
        except (IngestError, LakeError, TrainingError) as e:
            click.echo(f"eventlake: error: {e}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def settings_of(ctx: click.Context, **overrides: Any) -> Settings:
    """The settings for this invocation (``--config`` file, environment, ``overrides``)."""
    return load_settings(ctx.obj["config_file"], **overrides)
