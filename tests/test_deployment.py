"""docker-compose.yml and the Dockerfile against the code (no Docker engine here to run them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from starter.dev import EAGER_ACTIVITIES
from starter.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SAMPLE = {"POSTGRES_PASSWORD": "pw", "JOURNEYS_API_KEY": "key", "JOURNEYS_SECRET_KEY": "secret"}


def resolved(value: object) -> str:
    """Compose's ${VAR:?message} and ${VAR:-default}, with sample secrets."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if name in SAMPLE:
            return SAMPLE[name]
        if op == ":-":
            return rest
        raise AssertionError(f"${{{name}}} has no sample value and no default")

    return re.sub(r"\$\{(\w+)(:\?|:-)([^}]*)\}", one, str(value))


def env_of(service: str) -> dict[str, str]:
    return {k: resolved(v) for k, v in COMPOSE["services"][service]["environment"].items()}


def test_the_production_shape_has_every_part():
    services = COMPOSE["services"]
    assert set(services) >= {"postgres", "temporal", "temporal-ui", "migrate", "worker", "api"}
    assert services["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert services["worker"]["command"] == ["journeys", "worker"]
    assert services["api"]["command"] == ["journeys", "api"]
    assert "ports" not in services["worker"]  # scalable with --scale: no fixed host port


def test_temporal_dispatches_activities_eagerly_as_the_embedded_server_does():
    temporal = COMPOSE["services"]["temporal"]
    path = env_of("temporal")["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = dict(v.removesuffix(":ro").split(":", 1)[::-1] for v in temporal["volumes"])
    config = yaml.safe_load((ROOT / mounts[f"/etc/temporal/{path}"]).read_text())
    flag, value = EAGER_ACTIVITIES[1].split("=")
    assert config[flag] == [{"value": yaml.safe_load(value)}]


@pytest.mark.parametrize("service", ["migrate", "worker", "api"])
def test_every_variable_our_containers_get_is_a_setting_the_code_reads(service, monkeypatch):
    env = env_of(service)
    known = {f"JOURNEYS_{name.upper()}" for name in Settings.model_fields}
    known |= {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"}
    assert set(env) <= known, f"typos or unknown settings: {set(env) - known}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.temporal_address == "temporal:7233"
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in settings.database_url
    assert settings.secret_key is not None


def test_the_api_is_published_on_its_port_and_never_open():
    env = env_of("api")
    assert COMPOSE["services"]["api"]["ports"] == [f"{env['JOURNEYS_API_PORT']}:8000"]
    assert env["JOURNEYS_API_HOST"] == "0.0.0.0" and env["JOURNEYS_API_KEY"]


def test_migrations_run_once_before_the_worker_and_the_api_start(tmp_path, monkeypatch, capsys):
    from starter.cli import main

    services = COMPOSE["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["journeys", "db", "upgrade"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart", "no") == "no" and "deploy" not in migrate  # one run, no replicas
    for service in ("worker", "api"):
        assert services[service]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert (
            env_of(service)["JOURNEYS_DATABASE_URL"] == env_of("migrate")["JOURNEYS_DATABASE_URL"]
        )
    # The command the service runs works (here on SQLite; tests/store covers PostgreSQL).
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", f"sqlite:///{tmp_path / 'journeys.db'}")
    assert main(migrate["command"][1:]) == 0
    assert main(["db", "check"]) == 0, capsys.readouterr().err


def test_each_worker_serves_metrics_on_the_network_and_the_api_bounds_its_load(monkeypatch):
    worker = COMPOSE["services"]["worker"]
    host, _, port = env_of("worker")["JOURNEYS_METRICS_ADDRESS"].rpartition(":")
    assert host == "0.0.0.0"  # the default (loopback) would be unreachable for Prometheus
    assert worker["expose"] == [port] and "ports" not in worker  # scrape each replica
    for name, value in env_of("api").items():
        monkeypatch.setenv(name, value)
    default = Settings.model_fields["api_max_in_flight"].default
    assert Settings(_env_file=None).api_max_in_flight == default  # the compose default is ours


def test_the_image_holds_every_part_the_code_and_the_worker_need():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for part in ("workflows", "activities", "starter", "worker.py", "templates"):
        assert re.search(rf"^COPY {re.escape(part)} ", dockerfile, re.M), part
    assert "'.[postgres]'" in dockerfile  # the psycopg driver the database URL names
