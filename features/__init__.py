"""Features: declared once (Polars expressions over an event's fields and its entity's
history), computed by day (batch) or from a cursor (incremental) into ``features/<name>``.

Imports only :mod:`lake` of eventlake.
"""

from features.compute import (
    EVENT_ORDER_TIEBREAK,
    FEATURE_LINEAGE,
    FeatureUpdate,
    compute_features,
    feature_frame,
    features_app_id,
    read_features,
    update_features,
)
from features.definition import FeatureSet, Label, prior_count, prior_mean, prior_sum

__all__ = [
    "EVENT_ORDER_TIEBREAK",
    "FEATURE_LINEAGE",
    "FeatureSet",
    "FeatureUpdate",
    "Label",
    "compute_features",
    "feature_frame",
    "features_app_id",
    "prior_count",
    "prior_mean",
    "prior_sum",
    "read_features",
    "update_features",
]
