"""The typed bodies of the HTTP front door, derived from what the lake holds.

A model's predict request carries events shaped like its feature set's source:
the fields the features read (:attr:`features.FeatureSet.inputs`, without the
label and lineage), typed as the silver table types them. Pydantic then refuses
a missing or mistyped field with a 422 naming it, and the OpenAPI description
shows each model's exact event.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, create_model

from lake.names import COORDINATES, DATE, KAFKA_TIMESTAMP
from training import ModelSpec

__all__ = ["event_fields", "event_model", "predict_request_model"]

_LINEAGE = {*COORDINATES, KAFKA_TIMESTAMP, DATE}
MAX_EVENTS = 1000
_BITS = {"Int8": 8, "Int16": 16, "Int32": 32, "UInt8": 8, "UInt16": 16, "UInt32": 32}


def _python_type(t: pl.DataType) -> Any:
    if t == pl.Boolean:
        return bool
    if t.is_integer():  # bounded as the column is: an overflow is the client's error
        bits = _BITS.get(str(t), 64)
        if t.is_unsigned_integer():
            lo, hi = 0, 2**bits - 1
        else:
            lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return Annotated[int, Field(ge=lo, le=hi)]
    if t.is_float():
        return Annotated[float, Field(allow_inf_nan=False)]
    if t == pl.String:
        return str
    if isinstance(t, pl.Datetime):
        return dt.datetime
    if t == pl.Date:
        return dt.date
    return Any


def event_fields(spec: ModelSpec, source: pl.Schema) -> dict[str, Any]:
    """The request fields of ``spec``'s events with their Python types (from the
    silver ``source`` schema, None for a field silver does not have yet)."""
    fs = spec.feature_set
    label = fs.label if isinstance(fs.label, str) else None
    fields: dict[str, Any] = {}
    for name in fs.inputs:
        if name in _LINEAGE or name == label:
            continue
        # A field a later schema version adds is not in silver yet: optional until it is.
        fields[name] = _python_type(source[name]) if name in source else None
    return fields


def event_model(spec: ModelSpec, source: pl.Schema) -> type[BaseModel]:
    """A pydantic model of one event for ``spec`` (unknown fields refused)."""
    defs: dict[str, Any] = {
        name: (t, ...) if t is not None else (Any, None)
        for name, t in event_fields(spec, source).items()
    }
    model: type[BaseModel] = create_model(
        f"{_camel(spec.name)}Event", __config__=ConfigDict(extra="forbid"), **defs
    )
    return model


def predict_request_model(spec: ModelSpec, source: pl.Schema) -> type[BaseModel]:
    """The body of ``POST /models/<name>/predict``: events and an optional target."""
    event = event_model(spec, source)
    model: type[BaseModel] = create_model(
        f"{_camel(spec.name)}PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        events=(list[event], Field(min_length=1, max_length=MAX_EVENTS)),  # type: ignore[valid-type]
        version=(int | None, Field(None, ge=1, description="Pin a version (else the alias).")),
        alias=(
            str | None,
            Field(
                None,
                min_length=1,
                max_length=64,
                pattern=r"^[A-Za-z0-9_.-]+$",
                description="Serve with this alias's version [champion].",
            ),
        ),
        request_id=(str | None, Field(None, max_length=128, description="Yours, for the audit.")),
    )
    return model


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.replace("-", "_").split("_"))
