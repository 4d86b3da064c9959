"""Training: model specs, River online learning, batch retraining, the model registry,
evaluation and promotion, scoring with an audit trail, lineage.

Imports only :mod:`lake` and :mod:`features` of eventlake.
"""

from training.errors import ModelNotFound, NothingToLearn, TrainingError
from training.evaluation import Decision, evaluate, gain
from training.lineage import Explanation, explain
from training.model_registry import (
    Cursor,
    Launch,
    ModelRegistry,
    ModelVersion,
    OffsetRanges,
    advance,
    merge_ranges,
    os_user,
)
from training.online import OnlineRun, learn_online, replay_online
from training.retrain import holdout_start, retrain, training_window
from training.rows import Rows, labeled_rows, newest_labeled, predict, score, table_versions
from training.scoring import (
    PREDICTION_SCHEMA,
    Role,
    ScoringEngine,
    Target,
    append_predictions,
    in_canary,
    labeled_predictions,
    live_metrics,
    prediction_app_id,
    prediction_frame,
)
from training.serving_policy import LiveJudgment, decide, follow_online, judge_live
from training.specs import ModelSpec, model_spec, model_specs, register_model

__all__ = [
    "PREDICTION_SCHEMA",
    "Cursor",
    "Decision",
    "Explanation",
    "Launch",
    "LiveJudgment",
    "ModelNotFound",
    "ModelRegistry",
    "ModelSpec",
    "ModelVersion",
    "NothingToLearn",
    "OffsetRanges",
    "OnlineRun",
    "Role",
    "Rows",
    "ScoringEngine",
    "Target",
    "TrainingError",
    "advance",
    "append_predictions",
    "decide",
    "evaluate",
    "explain",
    "follow_online",
    "gain",
    "holdout_start",
    "in_canary",
    "judge_live",
    "labeled_predictions",
    "labeled_rows",
    "learn_online",
    "live_metrics",
    "merge_ranges",
    "model_spec",
    "model_specs",
    "newest_labeled",
    "os_user",
    "predict",
    "prediction_app_id",
    "prediction_frame",
    "register_model",
    "replay_online",
    "retrain",
    "score",
    "table_versions",
    "training_window",
]
