"""The deployment in deploy/: Kubernetes manifests valid against the Kubernetes API
schemas (kubernetes-validate, offline), their settings and commands accepted by
eventlake itself, and dagster.yaml driving a real Dagster instance on a real
PostgreSQL server (pgserver) that records the runs of eventlake's assets."""

from __future__ import annotations

import os
from pathlib import Path

import click
import dagster as dg
import kubernetes_validate
import pytest
import yaml

from orchestration.cli.main import cli
from orchestration.settings import load_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
K8S_VERSION = "1.33.0"


def _documents() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        out += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


@pytest.mark.parametrize(("name", "doc"), _documents())
def test_manifests_are_valid_kubernetes(name, doc):
    assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) is not None, name


def test_the_settings_and_commands_are_eventlake_s(monkeypatch):
    docs = dict((d["kind"], d) for _, d in _documents() if d["kind"] in ("ConfigMap", "Secret"))
    env = {**docs["ConfigMap"]["data"], **docs["Secret"]["stringData"]}
    for key in [k for k in os.environ if k.startswith("EVENTLAKE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("EVENTLAKE_"):
            monkeypatch.setenv(key, value)
    settings = load_settings()  # a ConfigError names any key eventlake does not know
    assert settings.kafka_client()["sasl.mechanism"] == "SCRAM-SHA-512"
    assert settings.lake().storage_options["aws_conditional_put"] == "etag"
    commands = [
        c["args"]
        for _, d in _documents()
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert [a[0] for a in commands] == ["ingest", "score", "serve"]
    with click.Context(cli) as ctx:
        for args in commands:  # each parses as the eventlake command it names
            command = cli.get_command(ctx, args[0])
            assert command is not None, args
            command.make_context(args[0], list(args[1:]), parent=ctx)


def test_dagster_yaml_keeps_runs_in_postgres(postgres, tmp_path, monkeypatch, lake_root):
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text((DEPLOY / "dagster" / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", postgres)
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert not instance.nux_enabled  # no newsletter dialog over the deployment's UI

        @dg.asset
        def probe() -> int:
            return 1

        result = dg.materialize([probe], instance=instance)
        assert result.success
    with dg.DagsterInstance.get() as again:  # a new process would see the same
        [run] = again.get_runs()
        assert run.run_id == result.run_id and run.status == dg.DagsterRunStatus.SUCCESS
        assert again.get_latest_materialization_event(dg.AssetKey("probe")) is not None
