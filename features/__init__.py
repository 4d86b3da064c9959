"""Features: declared once (row-local Polars expressions and aggregations by an entity
over earlier events), computed three ways with one semantics: batch (days over history),
incremental (new events, state in the lake) and online (a new event, from that state).

Imports only :mod:`lake` of eventlake.
"""

from features.aggregations import Aggregation
from features.compute import (
    EVENT_ORDER_TIEBREAK,
    FEATURE_LINEAGE,
    LATE,
    batch_rows,
    compute_features,
    differences,
    feature_frame,
    read_features,
)
from features.definition import (
    FeatureSet,
    Label,
    prior_count,
    prior_distinct,
    prior_last,
    prior_max,
    prior_mean,
    prior_min,
    prior_sum,
)
from features.errors import FeaturesError, NotRowLocal
from features.incremental import FeatureUpdate, late_days, rebuild_state, update_features
from features.online import OnlineFeatures
from features.state import FeatureState, load_state

__all__ = [
    "EVENT_ORDER_TIEBREAK",
    "FEATURE_LINEAGE",
    "LATE",
    "Aggregation",
    "FeatureSet",
    "FeatureState",
    "FeatureUpdate",
    "FeaturesError",
    "Label",
    "NotRowLocal",
    "OnlineFeatures",
    "batch_rows",
    "compute_features",
    "differences",
    "feature_frame",
    "late_days",
    "load_state",
    "prior_count",
    "prior_distinct",
    "prior_last",
    "prior_max",
    "prior_mean",
    "prior_min",
    "prior_sum",
    "read_features",
    "rebuild_state",
    "update_features",
]
