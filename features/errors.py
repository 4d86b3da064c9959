"""Errors raised by the features layer.

FeaturesError
└── NotRowLocal     a row-local feature looks at other rows
"""

from __future__ import annotations

__all__ = ["FeaturesError", "NotRowLocal"]


class FeaturesError(Exception):
    """Root of every error raised by :mod:`features`."""


class NotRowLocal(FeaturesError, ValueError):
    """Raised when a row-local feature looks at other rows: the incremental and online
    paths evaluate it from one event and the state, so they cannot."""

    def __init__(self, feature_set: str, feature: str, expr: str, *, batch_only: bool) -> None:
        self.feature_set = feature_set
        self.feature = feature
        self.expr = expr
        what = (
            "the feature set is batch_only: compute it with compute_features (by day)"
            if batch_only
            else "declare it as an aggregation (prior_count, prior_sum, prior_mean, "
            "prior_min, prior_max, prior_last, prior_distinct, with a window if needed), "
            "or mark the feature set batch_only=True"
        )
        super().__init__(
            f"feature {feature!r} of feature set {feature_set!r} looks at other rows "
            f"({expr}), so the incremental and online paths cannot evaluate it; {what}"
        )
