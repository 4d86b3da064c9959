"""The HTTP front door as the settings configure it (what ``eventlake serve`` and its
uvicorn workers run)."""

from __future__ import annotations

from fastapi import FastAPI

from orchestration.serving.http import create_app
from orchestration.settings import Settings, load_settings
from orchestration.spec_loader import load_definitions

__all__ = ["app_from_environment", "app_from_settings"]


def app_from_settings(settings: Settings) -> FastAPI:
    """The app serving ``settings.serve_models`` (every model of the definitions if empty).

    >>> app_from_settings(Settings(serve_models="nope"))
    Traceback (most recent call last):
    ...
    orchestration.errors.ConfigError: setting serve_models: unknown model 'nope'; ...
    """
    from orchestration.errors import ConfigError

    specs = load_definitions(settings.definitions)
    wanted = [m.strip() for m in settings.serve_models.split(",") if m.strip()]
    known = {s.name: s for s in specs}
    for name in wanted:
        if name not in known:
            raise ConfigError(
                "serve_models", f"unknown model {name!r}; the definitions have {sorted(known)}"
            )
    return create_app(
        settings.lake(),
        [known[n] for n in wanted] if wanted else specs,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        registry_url=settings.registry_url,
        subject_strategy=settings.subject_strategy,
        reload_s=settings.serve_reload_s,
        online_store_url=settings.online_store_url,
        client_options=settings.kafka_client(),
    )


def app_from_environment() -> FastAPI:
    """uvicorn's app factory for worker processes: the settings from the environment."""
    return app_from_settings(load_settings())
