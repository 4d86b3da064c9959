"""``eventlake demo``: a simulated food-delivery app, its schemas, feature set and model,
and the whole pipeline run on it.

:mod:`~orchestration.demo.definitions` (what a user's definitions module looks
like), :mod:`~orchestration.demo.simulation` (the app), :mod:`~orchestration.demo.run`.
"""

from orchestration.demo.run import DemoReport, run_demo

__all__ = ["DemoReport", "run_demo"]
