"""Erasing a person everywhere: the lake's tables, the feature state, the online
feature state, predictions and the models that learned from them.

The lake deletes the records and every derived row (:func:`lake.erase`). Then,
before the audit row is written: each model's predictions of the erased records
and entities go; each feature set's state is rebuilt from what the source still
holds (and the Redis online state, if there is one, is cleared and reseeded;
scoring processes with in-memory state reload it when they see the erasure);
and every model version trained on the erased records is replaced
(``models="retrain"``, the default: see :mod:`training.erasure`) or only listed
(``models="list"``). The audit row records all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal

from features import FeatureSet, rebuild_state
from lake import ErasedRecords, ErasureReport, Lake, erase, erased_records
from lake.names import predictions
from orchestration.serving.online_store import reset_online
from training import ModelRegistry, ModelSpec
from training.erasure import entity_keys, erase_predictions, replace_trained_on

__all__ = ["ModelPolicy", "erase_everywhere"]

ModelPolicy = Literal["retrain", "list"]
log = logging.getLogger(__name__)


def erase_everywhere(
    lake: Lake,
    specs: Iterable[ModelSpec],
    *,
    where: str | None = None,
    key: bytes | None = None,
    models: ModelPolicy = "retrain",
    online_store_url: str | None = None,
    window_days: float = 7.0,
    holdout_days: float = 1.0,
    by: str = "",
) -> ErasureReport:
    """Erase the records matching ``where`` or ``key`` from the lake, the feature and
    online state of ``specs``' feature sets and their predictions; replace (or list)
    the model versions trained on them."""
    if models not in ("retrain", "list"):
        raise ValueError(f"models must be 'retrain' or 'list', not {models!r}")
    specs = list(specs)
    found = erased_records(lake, where=where, key=key) if (where is None) != (key is None) else None
    keys = {s.name: entity_keys(lake, s, found or {}) for s in specs}  # before their rows go

    def also(erased: ErasedRecords, report: ErasureReport) -> None:
        for spec in specs:
            n = erase_predictions(lake, spec, erased, keys[spec.name])
            if n:
                report.rows_by_table[predictions(spec.name)] = n
        sets: dict[str, FeatureSet] = {s.feature_set.name: s.feature_set for s in specs}
        for fs in sets.values():
            rebuild_state(lake, fs)
            if online_store_url is not None:
                reset_online(lake, fs, online_store_url)
        report.models = {"policy": models}
        if models == "retrain" and erased:
            try:
                report.models |= replace_trained_on(
                    lake,
                    specs,
                    erased,
                    reason=f"erasure {report.erasure_id}: the version learned from erased records",
                    by=by,
                    window_days=window_days,
                    holdout_days=holdout_days,
                )
            except Exception as e:  # the records are gone already: the audit must still land
                log.exception("erasure %s: replacing the models failed", report.erasure_id)
                report.models["failed"] = (
                    f"{type(e).__name__}: {e}; the data is erased; retrain the listed "
                    "versions with `eventlake retrain` and move their aliases"
                )

    registry = ModelRegistry(lake)
    return erase(
        lake, where=where, key=key, trained_on=registry.trained_on, also=also, records=found
    )
