"""Expectations judged on silver rows: each check, severities, declarations, and
windowed uniqueness that does not depend on how the stream is cut into batches."""

from __future__ import annotations

import datetime as dt
import itertools

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.expectations import Expectations

UTC = pa.timestamp("us", "UTC")
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _rows(values: dict[str, list], seconds: list[float], first_offset: int = 0) -> pa.Table:
    n = len(seconds)
    return pa.table(
        {
            **values,
            "_kafka_partition": [0] * n,
            "_kafka_offset": list(range(first_offset, first_offset + n)),
            "_kafka_timestamp": pa.array([T0 + dt.timedelta(seconds=s) for s in seconds], UTC),
        }
    )


def _declare(*specs: dict) -> Expectations:
    return Expectations.parse({"orders-value": list(specs)})


def test_each_check_fails_exactly_the_records_it_should():
    ex = _declare(
        {"name": "user", "check": "not_null", "column": "user_id"},
        {"name": "km", "check": "between", "column": "km", "min": 0, "max": 100},
        {"name": "status", "check": "one_of", "column": "status", "values": ["ok", "late"]},
        {"name": "fresh", "check": "fresh", "column": "at", "within_s": 60},
        {"name": "dup", "check": "unique", "column": "order_id", "within_s": 10},
    )
    rows = _rows(
        {
            "user_id": ["a", None, "c", "d", "e", "f"],
            "km": [1.0, 2.0, -3.0, None, 4.0, 5.0],
            "status": ["ok", "ok", "ok", "weird", None, "late"],
            "at": pa.array([T0, T0, T0, T0, T0 - dt.timedelta(seconds=61), T0], UTC),
            "order_id": [1, 2, 3, 4, 5, 1],
        },
        [0, 0, 0, 0, 0, 5],
    )
    v = ex.judge("orders", "orders-value", rows)
    assert [(r.expectation, r.records, r.failed) for r in v.results] == [
        ("user", 6, 1),
        ("km", 6, 1),
        ("status", 6, 1),
        ("fresh", 6, 1),
        ("dup", 6, 1),
    ]
    assert [(o, m) for _, o, m in v.failed] == [
        (1, "expectation 'user' failed: user_id is not null (value None)"),
        (2, "expectation 'km' failed: km between 0 and 100 (value -3.0)"),
        (3, "expectation 'status' failed: status one of ['ok', 'late'] (value 'weird')"),
        (4, "expectation 'fresh' failed: at at most 60 s older than its Kafka timestamp "
            "(value 2025-12-31T23:58:59+00:00)"),
        (5, "expectation 'dup' failed: order_id unique within 10 s (value 1)"),
    ]  # fmt: skip
    assert v.kept.column("_kafka_offset").to_pylist() == [0]
    assert v.results[1].example == "-3.0"


def test_warn_only_counts_and_a_missing_column_fails_every_record():
    ex = _declare(
        {"name": "km", "check": "between", "column": "km", "max": 10, "severity": "warn"},
        {"name": "typo", "check": "not_null", "column": "kms", "severity": "warn"},
    )
    v = ex.judge("orders", "orders-value", _rows({"km": [5.0, 50.0]}, [0, 1]))
    assert v.kept.num_rows == 2 and v.failed == []
    assert [(r.expectation, r.failed) for r in v.results] == [("km", 1), ("typo", 2)]
    assert ex.judge("orders", "other-value", _rows({"km": [50.0]}, [0])).results == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"check": "not_null", "column": "x"}, "has no name"),
        ({"name": "a", "check": "nope", "column": "x"}, "check must be one of"),
        ({"name": "a", "check": "not_null", "column": "x", "severity": "fatal"}, "severity"),
        ({"name": "a", "check": "not_null"}, "column must name a field"),
        ({"name": "a", "check": "between", "column": "x"}, "needs min, max or both"),
        ({"name": "a", "check": "between", "column": "x", "min": "0"}, "min must be a number"),
        ({"name": "a", "check": "one_of", "column": "x"}, "needs values"),
        ({"name": "a", "check": "fresh", "column": "x", "within_s": 0}, "needs within_s"),
        ({"name": "a", "check": "not_null", "column": "x", "colour": 1}, r"unknown field\(s\)"),
    ],
)
def test_declarations_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        _declare(spec)


def test_a_name_is_declared_once_per_subject():
    spec = {"name": "a", "check": "not_null", "column": "x"}
    with pytest.raises(ValueError, match="declared twice"):
        _declare(spec, spec)


def _unique_verdicts(keys: list[int | None], seconds: list[int], cuts: list[int]) -> list[int]:
    ex = _declare({"name": "u", "check": "unique", "column": "k", "within_s": 5})
    failed: list[int] = []
    bounds = [0, *sorted(set(cuts)), len(keys)]
    for a, b in itertools.pairwise(bounds):
        if a < b:
            v = ex.judge("orders", "orders-value", _rows({"k": keys[a:b]}, seconds[a:b], a))
            failed += [o for _, o, _ in v.failed]
    return failed


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.integers(0, 4)), st.integers(0, 3)),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.integers(0, 40), max_size=6),
)
def test_uniqueness_does_not_depend_on_batches(events, cuts):
    keys = [k for k, _ in events]
    seconds, t = [], 0
    for _, step in events:  # Kafka timestamps never go back within a partition here
        t += step
        seconds.append(t)
    whole = _unique_verdicts(keys, seconds, [])
    assert _unique_verdicts(keys, seconds, [c for c in cuts if c < len(keys)]) == whole
    # and the rule itself, record by record
    expected = [
        i
        for i, (k, s) in enumerate(zip(keys, seconds, strict=True))
        if k is not None and any(keys[j] == k and s - seconds[j] <= 5 for j in range(i))
    ]
    assert whole == expected
