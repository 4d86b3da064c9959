"""Orchestration: configuration, the ``eventlake`` command line, Dagster definitions.

The only layer that reads environment variables and config files.
"""

from orchestration.errors import ConfigError, OrchestrationError
from orchestration.settings import Settings, load_settings

__all__ = ["ConfigError", "OrchestrationError", "Settings", "load_settings"]
