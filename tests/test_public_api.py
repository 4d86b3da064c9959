"""Each package's public surface is its ``__init__.py`` with ``__all__``, pinned here (as
httpx pins its exports): adding or removing a name is a deliberate change to this file.
Every exported name exists and is documented, and every third-party package the code
imports is declared in ``pyproject.toml``."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata as md
import inspect
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lake", "ingest", "features", "training", "orchestration")
PUBLIC = {
    "lake": [
        "AppendResult",
        "BRONZE_SCHEMA",
        "BronzeTable",
        "COMPATIBILITY_LEVELS",
        "DEAD_LETTER_SCHEMA",
        "DEFAULT_COMPATIBILITY",
        "DEFAULT_RETENTION_HOURS",
        "DeadLetters",
        "DeleteRefused",
        "ErasedRecords",
        "ErasureError",
        "ErasureReport",
        "IncompatibleSchema",
        "InvalidSchema",
        "InvalidSubject",
        "InvalidTableName",
        "Lake",
        "LakeError",
        "LakeNotWritable",
        "MaintenanceReport",
        "OffsetConflict",
        "ParsedSchema",
        "PartitionCoverage",
        "PartitionOffsets",
        "QUALITY_SCHEMA",
        "QualityLog",
        "QualityResult",
        "Reference",
        "RegisteredSchema",
        "SILVER_LINEAGE",
        "SchemaNotFound",
        "SchemaRegistryError",
        "SchemaStore",
        "SilverTable",
        "SourceChanged",
        "SubjectNotFound",
        "TableInfo",
        "TableNotInLake",
        "UnsafeCommits",
        "VersionNotFound",
        "bronze_rows",
        "committed_offsets",
        "compatibility_problems",
        "decode_coverage",
        "decode_cursor",
        "delete_records",
        "ensure_safe_commits",
        "ensure_writable",
        "erase",
        "erased_records",
        "is_local",
        "maintain",
        "maintain_lake",
        "offset_continuity",
        "parse_schema",
        "read_quality",
        "silver_topics",
        "silver_window",
        "source_app_id",
        "subject_topics",
        "txn_app_id",
        "validate_name",
    ],
    "lake.names": [
        "COORDINATES",
        "DATE",
        "DEAD_LETTERS",
        "ERASURES",
        "KAFKA_OFFSET",
        "KAFKA_PARTITION",
        "KAFKA_TIMESTAMP",
        "KAFKA_TOPIC",
        "LABEL_COORDINATES",
        "LAYERS",
        "Layer",
        "ModelTable",
        "QUALITY",
        "REPORTS",
        "RegistryTable",
        "SCHEMA_ID",
        "SCHEMA_VERSION",
        "SubjectStrategy",
        "UTC_MICROS",
        "bronze",
        "feature_state",
        "features",
        "from_segment",
        "layer_of",
        "model_table",
        "predictions",
        "registry_table",
        "reports_dir",
        "segment",
        "silver",
        "subject",
        "table_uri",
        "topic_of_subject",
        "validate_name",
        "value_subject",
    ],
    "ingest": [
        "BrokerStartError",
        "BrokerUnavailable",
        "Committed",
        "DecodeSummary",
        "Decoded",
        "Decoder",
        "EmbeddedBroker",
        "EventProducer",
        "Expectation",
        "Expectations",
        "IngestError",
        "IngestMetrics",
        "IngestOptions",
        "IngestSummary",
        "Ingester",
        "InvalidEvent",
        "MicroBatch",
        "OffsetOutOfRange",
        "RebuildSummary",
        "Record",
        "ReplayError",
        "RepublishSummary",
        "SchemaRegistryServer",
        "SchemaResolver",
        "SilverWriter",
        "Sink",
        "TopicNotFound",
        "TopicSummary",
        "client_config",
        "consumer_config",
        "ensure_topic",
        "free_port",
        "high_watermarks",
        "produce",
        "rebuild_silver",
        "republish",
        "wait_for_broker",
    ],
    "features": [
        "Aggregation",
        "EVENT_ORDER_TIEBREAK",
        "FEATURE_LINEAGE",
        "FeatureSet",
        "FeatureState",
        "FeatureUpdate",
        "FeaturesError",
        "LATE",
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
    ],
    "training": [
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
        "PREDICTION_SCHEMA",
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
    ],
    "orchestration": [
        "ConfigError",
        "OrchestrationError",
        "Settings",
        "load_settings",
    ],
    "orchestration.defs": [
        "LakeResource",
        "Topology",
        "build_assets",
        "build_checks",
        "build_definitions",
    ],
    "orchestration.cli": [
        "cli",
        "main",
    ],
    "orchestration.demo": [
        "DemoReport",
        "run_demo",
    ],
    "orchestration.serving": [
        "ScoringSink",
        "ScoringSummary",
        "ServingMetrics",
        "run_scoring",
    ],
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_the_public_surface_is_pinned(package):
    module = importlib.import_module(package)
    assert sorted(module.__all__) == PUBLIC[package]
    assert len(set(module.__all__)) == len(module.__all__)


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_exported_name_exists_and_is_documented(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)  # AttributeError: exported but missing
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{package}.{name} has no docstring"


def test_every_imported_third_party_package_is_declared():
    imported: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - set(PACKAGES)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0].lower().replace("_", "-")
        for d in project["dependencies"]
    }
    distributions = md.packages_distributions()
    undeclared = sorted(
        m
        for m in third_party
        if not {d.lower().replace("_", "-") for d in distributions.get(m, [m])} & declared
    )
    assert undeclared == [], f"imported but not declared in pyproject.toml: {undeclared}"
