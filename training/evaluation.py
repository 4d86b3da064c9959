"""Challenger against champion on the same held-out recent rows; promotion by margin.

Both versions only predict on the holdout (the newest ``holdout_days`` of
labeled rows). The challenger is promoted to ``champion`` when it beats the
champion by at least ``margin`` in the metric's direction, or when there is no
champion yet. Every decision is recorded in ``models/decisions`` with both
scores. A version that learned from the holdout rows (an online model keeps
learning) has an advantage there; batch retraining leaves them out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from lake import Lake
from training.model_registry import ModelRegistry
from training.retrain import holdout_start
from training.rows import labeled_rows, score
from training.specs import ModelSpec

__all__ = ["Decision", "evaluate", "gain"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """One promotion decision and its numbers."""

    challenger: int
    champion: int | None
    metric: str
    challenger_score: float
    champion_score: float | None
    holdout_rows: int
    promoted: bool
    reason: str


def gain(metric: Any, challenger: float, champion: float) -> float:
    """How much better ``challenger`` scores than ``champion`` by ``metric`` (a River
    metric): positive when better, whichever direction the metric counts.

    >>> from river import metrics
    >>> gain(metrics.MAE(), 2.0, 3.0), gain(metrics.Accuracy(), 0.8, 0.9)
    (1.0, -0.09999999999999998)
    """
    return challenger - champion if metric.bigger_is_better else champion - challenger


def evaluate(
    lake: Lake,
    spec: ModelSpec,
    challenger: int,
    *,
    holdout_days: float = 1.0,
    margin: float = 0.0,
) -> Decision:
    """Score ``challenger`` and the champion of ``spec.name`` on the holdout; promote
    the challenger if better by ``margin``; record the decision."""
    registry = ModelRegistry(lake)
    holdout = labeled_rows(lake, spec, since=holdout_start(lake, spec, holdout_days))
    metric = spec.make_metric()
    name = type(metric).__name__
    ch_score = score(registry.load(spec.name, version=challenger).model, spec, holdout)
    champion = registry.alias(spec.name, "champion")
    if champion is None:
        promoted, reason, cp_score = True, "no champion yet", None
    elif champion == challenger:
        promoted, reason = False, "the challenger is the champion"
        cp_score = ch_score
    else:
        cp_score = score(registry.load(spec.name, version=champion).model, spec, holdout)
        better = gain(metric, ch_score, cp_score)
        promoted = better >= margin
        reason = (
            f"{name} {ch_score:.4f} vs {cp_score:.4f}: "
            f"{'better' if better > 0 else 'not better'} by {abs(better):.4f} "
            f"({'meets' if promoted else 'below'} the margin {margin})"
        )
    registry.set_alias(spec.name, "challenger", challenger, reason="evaluated")
    if promoted:
        registry.set_alias(spec.name, "champion", challenger, reason=reason)
    registry.record_decision(
        name=spec.name,
        challenger=challenger,
        champion=champion,
        metric=name,
        challenger_score=ch_score,
        champion_score=cp_score,
        margin=margin,
        holdout_rows=len(holdout),
        promoted=promoted,
        reason=reason,
    )
    log.info("%s: v%d vs champion %s: %s", spec.name, challenger, champion, reason)
    return Decision(challenger, champion, name, ch_score, cp_score, len(holdout), promoted, reason)
