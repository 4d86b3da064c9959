"""Serving: the scoring processes that put models in front of events."""

from orchestration.serving.kafka import ScoringSummary, run_scoring

__all__ = ["ScoringSummary", "run_scoring"]
