"""The ``eventlake`` command line: one module per group of commands.

:mod:`~orchestration.cli.main` (the group, broker, registry, ingest, demo, ui,
dead letters, config), :mod:`~orchestration.cli.lake` (tables, sql, maintain,
erase), :mod:`~orchestration.cli.replay`, :mod:`~orchestration.cli.models`
(features, learn, retrain, evaluate, models, score, lineage).
"""

from orchestration.cli.main import cli, main

__all__ = ["cli", "main"]
