"""Erasing a person everywhere: the lake's tables, the feature state, the model lineage.

The lake deletes the records and every derived row (:func:`lake.erase`); the
model registry names the versions trained on them; each feature set's state is
then rebuilt from what the source still holds, so the erased events no longer
count in any aggregate.
"""

from __future__ import annotations

from collections.abc import Iterable

from features import FeatureSet, rebuild_state
from lake import ErasureReport, Lake, erase
from training import ModelRegistry, ModelSpec

__all__ = ["erase_everywhere"]


def erase_everywhere(
    lake: Lake, specs: Iterable[ModelSpec], *, where: str | None = None, key: bytes | None = None
) -> ErasureReport:
    """Erase the records matching ``where`` or ``key`` from the lake and from the state
    of the feature sets of ``specs``; the report names the model versions to retrain."""
    report = erase(lake, where=where, key=key, trained_on=ModelRegistry(lake).trained_on)
    sets: dict[str, FeatureSet] = {s.feature_set.name: s.feature_set for s in specs}
    for fs in sets.values():
        rebuild_state(lake, fs)
    return report
