"""Loading the user's feature sets and models: the modules named by a setting."""

from __future__ import annotations

import importlib

from orchestration.errors import ConfigError
from training.specs import ModelSpec, model_spec

__all__ = ["load_definitions", "load_model"]


def load_definitions(modules: str) -> None:
    """Import each module of the comma-separated ``modules`` (they register specs).

    >>> load_definitions("orchestration.demo_definitions")
    >>> load_definitions("no.such.module")
    Traceback (most recent call last):
    ...
    orchestration.errors.ConfigError: setting definitions: cannot import 'no.such.module' ...
    """
    for name in (m.strip() for m in modules.split(",") if m.strip()):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(
                "definitions",
                f"cannot import {name!r} ({e}); set EVENTLAKE_DEFINITIONS to importable modules",
            ) from e


def load_model(modules: str, name: str) -> ModelSpec:
    """The model spec ``name`` after loading ``modules``."""
    load_definitions(modules)
    return model_spec(name)
