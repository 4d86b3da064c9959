"""Declaring a model: a River pipeline factory, its feature set, target and metric.

Specs are registered by name so the command line, the scorer and Dagster find
them; users register their own in a module named by ``EVENTLAKE_DEFINITIONS``.

>>> from river import linear_model, preprocessing, metrics
>>> from features.definition import FeatureSet
>>> import polars as pl
>>> fs = FeatureSet("fs", "silver.s", key="id", event_time="t", features={"x": pl.col("x")},
...                 label="y")
>>> spec = register_model(ModelSpec(
...     name="doc_model",
...     feature_set=fs,
...     make_model=lambda: preprocessing.StandardScaler() | linear_model.LinearRegression(),
...     make_metric=metrics.MAE,
... ))
>>> model_spec("doc_model").feature_names
['x']
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal

from river import drift, metrics

from features import FeatureSet
from lake import validate_name
from training.errors import ModelNotFound

__all__ = ["ModelSpec", "model_spec", "model_specs", "register_model"]


@dataclass(frozen=True)
class ModelSpec:
    """How to build, feed and judge one model."""

    name: str
    feature_set: FeatureSet
    make_model: Callable[[], Any]
    make_metric: Callable[[], Any] = metrics.MAE
    make_detector: Callable[[], Any] = drift.ADWIN
    features: tuple[str, ...] | None = None  # default: every feature of the set
    task: Literal["regression", "classification"] = "regression"

    def __post_init__(self) -> None:
        validate_name(self.name)  # it becomes the path predictions/<name>
        unknown = set(self.features or ()) - set(self.feature_set.feature_names)
        if unknown:
            raise ValueError(
                f"model {self.name!r}: features {sorted(unknown)} are not in feature set "
                f"{self.feature_set.name!r} ({', '.join(self.feature_set.feature_names)})"
            )

    @property
    def feature_names(self) -> list[str]:
        """The features the model sees, in order."""
        return list(self.features or self.feature_set.feature_names)

    def error(self, y: Any, y_pred: Any) -> float:
        """The per-row error the drift detector watches: |y - ŷ|, or 1 for a mistake."""
        if self.task == "classification":
            return float(y_pred != y)
        return abs(float(y) - float(y_pred if y_pred is not None else 0.0))


_SPECS: dict[str, ModelSpec] = {}
_MODULES: dict[str, str] = {}  # spec name -> the module that registered it


def register_model(spec: ModelSpec) -> ModelSpec:
    """Make ``spec`` known by its name (replacing one of the same name), as a spec of
    the calling module (what :func:`model_specs` selects by)."""
    _SPECS[spec.name] = spec
    _MODULES[spec.name] = sys._getframe(1).f_globals.get("__name__", "")
    return spec


def model_spec(name: str, modules: Collection[str] | None = None) -> ModelSpec:
    """The registered spec called ``name`` (of one of ``modules``, if given); raises
    :class:`ModelNotFound`."""
    known = [s.name for s in model_specs(modules)]
    if name not in known:
        raise ModelNotFound(f"model spec {name!r}", known)
    return _SPECS[name]


def model_specs(modules: Collection[str] | None = None) -> list[ModelSpec]:
    """Every registered spec by name; only those registered by ``modules`` if given
    (a process that imported other definitions modules does not mix them in)."""
    return [_SPECS[n] for n in sorted(_SPECS) if modules is None or _MODULES[n] in modules]
