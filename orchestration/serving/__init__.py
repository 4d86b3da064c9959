"""Serving: the front doors of the scoring engine (Kafka, HTTP) and their metrics."""

from orchestration.serving.kafka import ScoringSink, ScoringSummary, run_scoring
from orchestration.serving.metrics import ServingMetrics

__all__ = ["ScoringSink", "ScoringSummary", "ServingMetrics", "run_scoring"]
