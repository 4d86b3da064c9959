"""Loading the user's feature sets and models: the modules named by a setting."""

from __future__ import annotations

import importlib

from orchestration.errors import ConfigError
from training import ModelSpec, model_spec, model_specs

__all__ = ["load_definitions", "load_model"]


def load_definitions(modules: str) -> list[ModelSpec]:
    """Import each module of the comma-separated ``modules``; return the model specs
    they register.

    >>> [s.name for s in load_definitions("orchestration.demo.definitions")]
    ['eta']
    >>> load_definitions("no.such.module")
    Traceback (most recent call last):
    ...
    orchestration.errors.ConfigError: setting definitions: cannot import 'no.such.module' ...
    """
    names = [m.strip() for m in modules.split(",") if m.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(
                "definitions",
                f"cannot import {name!r} ({e}); set EVENTLAKE_DEFINITIONS to importable modules",
            ) from e
    return model_specs(names)


def load_model(modules: str, name: str) -> ModelSpec:
    """The model spec ``name`` of the definitions ``modules``."""
    load_definitions(modules)
    return model_spec(name, [m.strip() for m in modules.split(",") if m.strip()])
