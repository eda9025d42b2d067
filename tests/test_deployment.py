"""docker-compose.yml and the Dockerfile against the code (no Docker engine here to run them)."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from starter.dev import EAGER_ACTIVITIES, temporal_binary
from starter.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SAMPLE = {
    "POSTGRES_PASSWORD": "pw",
    "JOURNEYS_API_KEY": "key",
    "JOURNEYS_SECRET_KEY": "secret",
    "JOURNEYS_PAYLOAD_KEYS": "k1:" + "A" * 43 + "=",
}


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
    assert set(services) >= {
        "postgres", "temporal-schema", "temporal", "temporal-namespace", "temporal-ui",
        "migrate", "worker", "api",
    }  # fmt: skip
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")
    assert services["temporal-namespace"]["image"].startswith("temporalio/admin-tools:")
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


# Temporal ----------------------------------------------------------------------------------

TEMPORAL_PORTS = {7233, 7234, 7235, 7239, 6933, 6934, 6935, 6939, 8080, 8233}
"""Temporal's frontend, internal services, membership and Web UI ports (container or host)."""


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host IP, host port, container port) of each `ports` entry, short or long syntax; the IP
    is "" when the entry names none (Docker then binds every interface)."""
    entries = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            host_ip, host, target = (
                str(entry.get("host_ip", "")),
                entry.get("published"),
                entry["target"],
            )
        else:
            text = str(entry).split("/")[0]
            if text.startswith("["):  # [::1]:7233:7233
                host_ip, _, rest = text[1:].partition("]:")
            else:
                parts = text.split(":")
                host_ip, rest = (parts[0], ":".join(parts[1:])) if len(parts) == 3 else ("", text)
            host, _, target = rest.rpartition(":") if ":" in rest else (rest, "", rest)
        entries.append((host_ip, int(host or target), int(target)))
    return entries


def is_loopback(host_ip: str) -> bool:
    if host_ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(host_ip).is_loopback
    except ValueError:  # "" or 0.0.0.0-style wildcards are not addresses of loopback
        return False


def test_the_port_parser_reads_every_compose_form():
    """The control for the loopback test below: what it must flag, it does flag."""
    service = {"ports": ["7233:7233", "127.0.0.1:8233:8080", "0.0.0.0:7233:7233",
                         "[::1]:7233:7233", "8000", {"target": 8080, "published": 8233},
                         {"target": 7233, "published": 7233, "host_ip": "127.0.0.1"}]}  # fmt: skip
    assert published(service) == [
        ("", 7233, 7233), ("127.0.0.1", 8233, 8080), ("0.0.0.0", 7233, 7233),
        ("::1", 7233, 7233), ("", 8000, 8000), ("", 8233, 8080), ("127.0.0.1", 7233, 7233),
    ]  # fmt: skip
    assert [is_loopback(ip) for ip, _, _ in published(service)] == [
        False, True, False, True, False, False, True,
    ]  # fmt: skip


def test_no_temporal_port_is_published_beyond_loopback():
    """Temporal has no authentication here: its frontend would let anyone on the network read
    every history (profiles' data) and start or terminate workflows; its UI the same by browser."""
    for name, service in COMPOSE["services"].items():
        temporal = str(service.get("image", "")).startswith("temporalio/")
        for host_ip, host, target in published(service):
            if temporal or host in TEMPORAL_PORTS or target in TEMPORAL_PORTS:
                assert is_loopback(host_ip), f"{name} publishes {host}->{target} on {host_ip!r}"
    assert "ports" not in COMPOSE["services"]["postgres"]  # nor the database, at all


def test_no_deprecated_auto_setup_image_and_every_image_is_pinned():
    for name, service in COMPOSE["services"].items():
        image = service.get("image")
        if image is None:
            assert "build" in service, name
            continue
        assert "auto-setup" not in image, f"{name}: temporalio/auto-setup is deprecated"
        tag = image.partition(":")[2]
        assert tag and tag != "latest", f"{name}: {image} is not pinned"


def versions_of_the_dev_server() -> dict[str, str]:
    """`temporal --version` of the installed CLI, the dev server every test runs on, e.g.
    "temporal version 1.9.1 (Server 1.32.0, UI 2.54.1)"."""
    output = subprocess.run(
        [str(temporal_binary()), "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"Server (\d+\.\d+)\.\d+\S*, UI (\d+\.\d+)\.\d+", output)
    assert found, output
    return {"server": found.group(1), "ui": found.group(2)}


def test_temporal_images_are_the_versions_the_tests_run_on():
    """The compose Temporal is the one the test suite proves the code against (same minor)."""
    expected = versions_of_the_dev_server()
    services = COMPOSE["services"]
    for name, kind in (("temporal", "server"), ("temporal-schema", "server"),
                       ("temporal-namespace", "server"), ("temporal-ui", "ui")):  # fmt: skip
        tag = services[name]["image"].partition(":")[2]
        assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: pin a release, not {tag}"
        assert tag.rsplit(".", 1)[0] == expected[kind], (name, tag, expected)


def test_the_schema_is_set_up_before_the_server_and_the_namespace_before_our_services():
    services = COMPOSE["services"]
    schema, temporal, namespace = (
        services["temporal-schema"],
        services["temporal"],
        services["temporal-namespace"],
    )
    assert schema["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert temporal["depends_on"]["temporal-schema"]["condition"] == (
        "service_completed_successfully"
    )
    assert namespace["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert "healthcheck" in temporal
    for job in (schema, namespace):  # one-shot jobs
        assert job.get("restart", "no") == "no" and "ports" not in job
    for service in ("worker", "api"):
        assert services[service]["depends_on"]["temporal-namespace"] == {
            "condition": "service_completed_successfully"
        }
    # The namespace created is the one our containers use.
    assert (
        env_of("temporal-namespace")["TEMPORAL_NAMESPACE"] == env_of("worker")["TEMPORAL_NAMESPACE"]
    )
    # The server and the schema job use the same database settings.
    server, setup = env_of("temporal"), env_of("temporal-schema")
    for name in ("DB", "DB_PORT", "POSTGRES_USER", "POSTGRES_PWD", "POSTGRES_SEEDS"):
        assert server[name] == setup[name], name
    assert setup["SQL_PASSWORD"] == setup["POSTGRES_PWD"]


@pytest.mark.parametrize(
    ("service", "script", "commands"),
    [
        ("temporal-schema", "temporal-schema.sh",
         ["temporal-sql-tool", " create", "setup-schema -v 0.0", "update-schema -d",
          "temporal/versioned", "visibility/versioned"]),
        ("temporal-namespace", "temporal-namespace.sh",
         ["temporal operator cluster health", "temporal operator namespace create"]),
    ],
)  # fmt: skip
def test_each_one_shot_job_runs_its_script_from_deploy(
    service: str, script: str, commands: list[str]
):
    job = COMPOSE["services"][service]
    mounts = dict(v.removesuffix(":ro").split(":", 1)[::-1] for v in job["volumes"])
    [path] = [target for target in mounts if target.endswith(script)]
    assert mounts[path] == f"./deploy/{script}" and job["command"] == [path]
    text = (ROOT / "deploy" / script).read_text()
    assert text.startswith("#!/bin/sh") and "set -eu" in text
    for command in commands:
        assert command in text, command
    checked = subprocess.run(["sh", "-n", str(ROOT / "deploy" / script)], capture_output=True)
    assert checked.returncode == 0, checked.stderr


# Dependencies ------------------------------------------------------------------------------

PINS = {"jinja2": "3.1.6"}
"""Minimum versions for known vulnerabilities: Jinja2's sandbox escapes (CVE-2024-56201,
CVE-2024-56326 fixed in 3.1.5; CVE-2025-27516, the |attr filter, fixed in 3.1.6). Templates run
in that sandbox (activities/templates.py)."""


@pytest.mark.parametrize(("package", "fixed"), PINS.items())
def test_dependencies_exclude_versions_with_known_sandbox_escapes(package: str, fixed: str):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [requirement] = [
        Requirement(text)
        for text in project["dependencies"]
        if Requirement(text).name.lower() == package
    ]
    assert not requirement.specifier.contains("3.1.5", prereleases=True)
    assert requirement.specifier.contains(fixed)
    from importlib.metadata import version

    assert requirement.specifier.contains(version(package))  # and what is installed obeys it
