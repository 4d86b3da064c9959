"""What an erasure means for models: their predictions of the person go, and every
version that learned from the person's records is replaced.

A replacement is trained on what the lake holds after the erasure: an online
version learned again from scratch (``learn_online(fresh=True)``) for a tainted
online version, a batch retrain for a tainted batch version (the fresh online
version when the retrain window has no rows). Each alias that pointed at a
tainted version moves to its replacement, with the erasure as the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from lake import ErasedRecords, Lake, delete_records
from lake.names import COORDINATES, predictions
from training.errors import NothingToLearn
from training.model_registry import ModelRegistry
from training.online import learn_online
from training.retrain import retrain
from training.specs import ModelSpec

__all__ = ["entity_keys", "erase_predictions", "replace_trained_on"]

_INPUT = ("input_topic", "input_partition", "input_offset")


def erase_predictions(
    lake: Lake, spec: ModelSpec, erased: ErasedRecords, entity_keys: Iterable[Any]
) -> int:
    """Delete ``spec``'s predictions of the erased records (Kafka front door: by their
    coordinates) and of the erased entities (either front door: by ``entity_keys``,
    values of the feature set's key); return how many rows went.

    >>> import tempfile
    >>> erase_predictions(Lake(tempfile.mkdtemp()), eta, {("orders", 0): [5]}, [])  # doctest: +SKIP
    0
    """
    name = predictions(spec.name)
    if not lake.exists(name):
        return 0
    table = lake.table(name)
    n = delete_records(table, erased, *_INPUT)
    keys = sorted({str(k) for k in entity_keys})
    for i in range(0, len(keys), 5_000):
        quoted = ", ".join("'" + k.replace("'", "''") + "'" for k in keys[i : i + 5_000])
        n += int(table.delete(f"entity_key IN ({quoted})").get("num_deleted_rows", 0))
    return n


def replace_trained_on(
    lake: Lake,
    specs: Iterable[ModelSpec],
    erased: ErasedRecords,
    *,
    reason: str,
    by: str = "",
    window_days: float = 7.0,
    holdout_days: float = 1.0,
) -> dict[str, Any]:
    """Replace every version of ``specs`` trained on ``erased`` records and move the
    aliases that pointed at one to its replacement. Returns
    ``{"replaced": {"name:old": "name:new"}, "aliases": ["name alias old->new"]}``.
    """
    registry = ModelRegistry(lake)
    tainted = registry.trained_on(erased)
    replaced: dict[str, str] = {}
    moved: list[str] = []
    for spec in specs:
        mine = {int(t.split(":")[1]) for t in tainted if t.split(":")[0] == spec.name}
        if not mine:
            continue
        kinds = dict(registry.versions(spec.name).select("version", "kind").iter_rows())
        fresh: dict[str, int] = {}  # kind -> its replacement, trained once per model
        for version in sorted(mine):
            kind = kinds[version]
            if kind not in fresh:
                fresh[kind] = _replacement(lake, spec, kind, window_days, holdout_days)
            replaced[f"{spec.name}:{version}"] = f"{spec.name}:{fresh[kind]}"
        for alias, version in sorted(registry.aliases(spec.name).items()):
            if version in mine:
                new = int(replaced[f"{spec.name}:{version}"].split(":")[1])
                registry.set_alias(spec.name, alias, new, reason=reason, by=by)
                moved.append(f"{spec.name} {alias} {version}->{new}")
    return {"replaced": replaced, "aliases": moved}


def _replacement(
    lake: Lake, spec: ModelSpec, kind: str, window_days: float, holdout_days: float
) -> int:
    """A version of ``spec`` trained on what the lake holds now: a batch retrain for a
    batch version (unless its window is empty), else a fresh online line."""
    if kind == "batch":
        try:
            return retrain(lake, spec, window_days=window_days, holdout_days=holdout_days).version
        except NothingToLearn:
            pass
    run = learn_online(lake, spec, fresh=True)
    if run.version is None:
        raise NothingToLearn(
            f"no labeled rows of {spec.feature_set.name!r} remain after the erasure to "
            f"train a replacement of {spec.name!r}"
        )
    return run.version.version


def entity_keys(lake: Lake, spec: ModelSpec, erased: ErasedRecords) -> list[Any]:
    """Values of ``spec``'s feature-set key among the erased records' silver rows (read
    before they are deleted): the entities whose predictions go too."""
    fs = spec.feature_set
    if not erased or not lake.exists(fs.source):
        return []
    wanted = pl.DataFrame(
        [(t, p, o) for (t, p), offsets in erased.items() for o in offsets],
        schema={"_t": pl.String, "_p": pl.Int32, "_o": pl.Int64},
        orient="row",
    )
    source = lake.scan(fs.source).select(fs.key, *COORDINATES)
    types = source.collect_schema()
    wanted = wanted.with_columns(
        pl.col(w).cast(types[c]) for w, c in zip(("_t", "_p", "_o"), COORDINATES, strict=True)
    )
    rows = source.join(
        wanted.lazy(), left_on=list(COORDINATES), right_on=["_t", "_p", "_o"], how="semi"
    ).collect()
    return rows[fs.key].unique().to_list()
