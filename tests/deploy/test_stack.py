"""The production-like stack: docker-compose.yml, deploy/Dockerfile and the container probe.

No Docker engine is needed: the files are parsed and checked against the settings classes,
whose fields are read at test time (the settings grow while the services are built).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from shared.config import CommonSettings
from tests.deploy.support import (
    COMPOSE,
    DOCKERFILE,
    HEALTHCHECK,
    REQUIRED,
    ROOT,
    SCALE_OVERRIDE,
    SERVICES,
    all_secret_env_names,
    build_settings,
    compose,
    compose_effective_env,
    compose_env_files,
    compose_environment,
    default_port,
    known_env_names,
    load_yaml,
    mentioned_in_env_file,
    read_env_file,
    secret_env_names,
)

JOBS = ("migrate", "topics")
INFRA = ("kafka", "postgres")


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return compose()


@pytest.fixture(scope="module")
def services(stack: dict[str, Any]) -> dict[str, Any]:
    result = stack["services"]
    assert isinstance(result, dict)
    return result


def test_compose_has_the_infrastructure_the_jobs_and_every_service(
    services: dict[str, Any],
) -> None:
    assert set(services) == {*INFRA, *JOBS, *SERVICES}


def test_bokvar_containers_share_one_image_built_from_deploy_dockerfile(
    services: dict[str, Any],
) -> None:
    images = {services[name]["image"] for name in (*JOBS, *SERVICES)}
    assert len(images) == 1, images
    for name in (*JOBS, *SERVICES):
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["postgres"]["image"].split(":")[1].startswith("16")


def test_kafka_runs_in_kraft_mode_with_a_listener_for_the_compose_network(
    services: dict[str, Any],
) -> None:
    kafka = services["kafka"]
    env = compose_environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not [k for k in env if "ZOOKEEPER" in k]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    listeners = {
        item.split("://")[0]: item.split(":")[-1] for item in env["KAFKA_LISTENERS"].split(",")
    }
    assert set(listeners) <= set(protocols)
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert (
        env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        == f"{env['KAFKA_NODE_ID']}@kafka:{listeners[controller]}"
    )
    advertised = {
        item.split("://")[1]: item.split("://")[0]
        for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    assert controller not in advertised.values()
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised.values()
    # what the services bootstrap from must be an advertised, non-controller listener
    bootstrap = compose_environment(services["rules"])["BOKVAR_KAFKA_BOOTSTRAP_SERVERS"]
    assert bootstrap in advertised
    assert listeners[advertised[bootstrap]] == bootstrap.split(":")[1]
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in kafka["volumes"])
    assert "kafka-broker-api-versions" in " ".join(kafka["healthcheck"]["test"])


def test_postgres_16_with_volume_healthcheck_and_the_credentials_of_the_database_url(
    services: dict[str, Any],
) -> None:
    pg = services["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    env = compose_effective_env(pg)
    url = make_url(compose_effective_env(services["ingest"])["BOKVAR_DATABASE_URL"])
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port or 5432) == ("postgres", 5432)
    assert url.username == env["POSTGRES_USER"]
    assert url.password == env["POSTGRES_PASSWORD"]
    assert url.database == env["POSTGRES_DB"]


def test_named_volumes_are_declared(stack: dict[str, Any], services: dict[str, Any]) -> None:
    used = {
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert used == {"pgdata", "kafka-data"}
    assert used <= set(stack["volumes"])


@pytest.mark.parametrize("service", list(SERVICES))
def test_service_command_port_healthcheck_and_dependencies(
    services: dict[str, Any], service: str
) -> None:
    spec = services[service]
    port = default_port(service)
    assert spec["command"] == ["bokvar", "serve", service]
    assert spec["ports"] == [f"127.0.0.1:{port}:{port}"], "published on the host's loopback"
    assert compose_environment(spec)[f"BOKVAR_{service.upper()}_PORT"] == str(port)
    assert spec["healthcheck"]["test"] == ["CMD", "bokvar-healthcheck", service]
    conditions = {name: dep["condition"] for name, dep in spec["depends_on"].items()}
    assert conditions["postgres"] == conditions["kafka"] == "service_healthy"
    assert conditions["migrate"] == conditions["topics"] == "service_completed_successfully"
    assert spec["restart"] == "unless-stopped"
    assert set(spec["tmpfs"]) >= {"/tmp"}


def test_one_shot_jobs_migrate_and_create_topics_with_replication_1(
    services: dict[str, Any],
) -> None:
    migrate, topics = services["migrate"], services["topics"]
    assert migrate["command"] == ["bokvar", "migrate"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert topics["command"] == ["bokvar", "topics", "create"]
    assert topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert compose_environment(topics)["BOKVAR_TOPIC_REPLICATION_FACTOR"] == "1"
    for job in (migrate, topics):
        assert job["restart"] == "no"


def test_every_bokvar_variable_in_compose_is_a_setting(services: dict[str, Any]) -> None:
    known = known_env_names()
    used: set[str] = set()
    for spec in services.values():
        used |= {k for k in compose_environment(spec) if k.startswith("BOKVAR_")}
        for path, _required in compose_env_files(spec):
            if path.exists():
                used |= {k for k in read_env_file(path) if k.startswith("BOKVAR_")}
    assert used, "no BOKVAR_* variable found"
    assert used - known == set(), "not a field of any settings class (renamed or removed?)"


def test_env_files_exist_and_secrets_stay_out_of_the_compose_file(
    services: dict[str, Any],
) -> None:
    for spec in services.values():
        for path, required in compose_env_files(spec):
            assert path.exists() or not required, path
            assert path.exists() or path.name in {"secrets.env", "stack.env"}
    secrets = all_secret_env_names()
    for name, spec in services.items():
        assert not set(secrets) & set(compose_environment(spec)), name
    example = ROOT / "deploy" / "secrets.example.env"
    provided = read_env_file(example)
    must_set = {name for name, needed in secrets.items() if needed}
    hint = "a new secret setting: add a placeholder to deploy/secrets.example.env"
    assert must_set - set(provided) == set(), hint
    assert set(secrets) - mentioned_in_env_file(example) == set(), hint + " (commented out)"


@pytest.mark.parametrize("service", list(SERVICES))
def test_a_service_refuses_the_published_placeholders_naming_the_variables(
    services: dict[str, Any], service: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOKVAR_")}
    env.update(compose_effective_env(services[service]))
    assert "BOKVAR_DEV_MODE" not in env
    bokvar = Path(sys.executable).with_name("bokvar")
    run = subprocess.run(
        [str(bokvar), "serve", service], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bokvar: refusing to start"), run.stderr
    optional = ("TWILIO", "OIDC_CLIENT_SECRET")  # integrations' keys, unset by default
    own = {n for n in secret_env_names(SERVICES[service]) if not any(o in n for o in optional)}
    own.discard("BOKVAR_DATABASE_URL")
    assert own and all(name in lines[0] for name in own), lines[0]
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("service", [*SERVICES, *JOBS])
def test_required_settings_are_set_and_validate(services: dict[str, Any], service: str) -> None:
    env = compose_effective_env(services[service])
    needed = {
        "migrate": ("BOKVAR_DATABASE_URL",),
        "topics": ("BOKVAR_KAFKA_BOOTSTRAP_SERVERS",),
    }.get(service, REQUIRED)
    for name in needed:
        assert env.get(name), f"{service}: {name} not set"
    settings = build_settings(SERVICES.get(service, CommonSettings), env)
    if "BOKVAR_DATABASE_URL" in needed:
        assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.log_format == "json"
    assert settings.kafka_session_timeout_ms == 45000
    if service in SERVICES:
        assert settings.host == "0.0.0.0"
        assert getattr(settings, f"{service}_port") == default_port(service)


def test_scale_override_frees_the_host_ports_of_rules_and_notifier(
    services: dict[str, Any],
) -> None:
    override = load_yaml(SCALE_OVERRIDE)["services"]
    assert set(override) == {"rules", "notifier"}
    for name, spec in override.items():
        assert name in services
        assert spec["ports"] == {"tag": "!reset", "value": []}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_dockerfile_one_slim_image_non_root_running_bokvar() -> None:
    instructions = _dockerfile_instructions()
    args = {rest.split("=")[0]: rest.split("=")[1] for kw, rest in instructions if kw == "ARG"}
    froms = [
        rest.split()[0].replace("${PYTHON_IMAGE}", args["PYTHON_IMAGE"])
        for kw, rest in instructions
        if kw == "FROM"
    ]
    assert froms and all(image == "python:3.11-slim" for image in froms)
    final = instructions[max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM") :]
    users = [rest for kw, rest in final if kw == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert users[-1].split(":")[0].isdigit(), "numeric USER lets Kubernetes check runAsNonRoot"
    cmd = [rest for kw, rest in final if kw in {"CMD", "ENTRYPOINT"}]
    assert cmd and "bokvar" in cmd[-1]
    health = [rest for kw, rest in final if kw == "HEALTHCHECK"]
    assert health and "bokvar-healthcheck" in health[0]
    runs = " ".join(rest for kw, rest in instructions if kw == "RUN")
    assert "-c constraints.txt" in runs
    assert "[dev]" not in runs, "the image must not install the dev extra"
    assert not re.search(r"\b(apt-get|gcc|build-essential|curl)\b", runs)


def test_dockerfile_copies_every_package_of_the_project() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    tops = {pattern.rstrip("*").rstrip(".") for pattern in includes}
    copied = {
        rest.split()[0].rstrip("/")
        for kw, rest in _dockerfile_instructions()
        if kw == "COPY" and not rest.startswith("--")
    }
    assert tops <= copied, tops - copied
    assert {"pyproject.toml", "constraints.txt", "README.md"} <= set(
        " ".join(rest for kw, rest in _dockerfile_instructions() if kw == "COPY").split()
    )
    for top in tops:
        assert (ROOT / top).is_dir()


# --- the container health probe -------------------------------------------------------------


def _load_probe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bokvar_healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_default_ports_match_the_settings() -> None:
    probe = _load_probe()
    assert {service: default_port(service) for service in SERVICES} == probe.DEFAULT_PORTS


def test_probe_finds_the_service_in_the_container_command() -> None:
    probe = _load_probe()
    assert (
        probe.service_from_cmdline(
            b"/opt/bokvar/bin/python\0/opt/bokvar/bin/bokvar\0serve\0rules\0"
        )
        == "rules"
    )
    assert probe.service_from_cmdline(b"/sbin/docker-init\0--\0bokvar\0serve\0cases\0") == "cases"
    assert probe.service_from_cmdline(b"bokvar\0migrate\0") is None
    assert probe.service_from_cmdline(b"bokvar\0topics\0create\0") is None


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _run_probe(port: int, *args: str) -> int:
    env = {"BOKVAR_NOTIFIER_PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args], env=env, timeout=30, check=False
    ).returncode


def test_probe_exit_code_follows_healthz(health_server: ThreadingHTTPServer) -> None:
    port = health_server.server_address[1]
    _Health.status = 200
    assert _run_probe(port, "notifier") == 0
    _Health.status = 503
    assert _run_probe(port, "notifier") == 1
    _Health.status = 200
    assert _run_probe(port, "no-such-service") == 2


def test_probe_fails_when_nothing_listens() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Health) as server:
        port = server.server_address[1]
    assert _run_probe(port, "notifier") == 1


# --- optional: the real tools, when this machine has them -----------------------------------


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    version = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if version.returncode != 0:
        pytest.skip("docker compose is not available")
    for files in (["-f", str(COMPOSE)], ["-f", str(COMPOSE), "-f", str(SCALE_OVERRIDE)]):
        result = subprocess.run(
            [docker, "compose", *files, "config", "-q"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        assert result.returncode == 0, result.stderr


# Keys of the Compose specification this file uses (a typo such as `healtcheck` would be
# silently ignored by a YAML parser, not by Compose).
SERVICE_KEYS = {
    "build",
    "command",
    "depends_on",
    "env_file",
    "environment",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ports",
    "read_only",
    "restart",
    "stop_grace_period",
    "tmpfs",
    "volumes",
}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "disable"}
DURATION = re.compile(r"^(\d+(ms|s|m|h))+$")


def test_compose_uses_only_known_keys_and_valid_values(
    stack: dict[str, Any], services: dict[str, Any]
) -> None:
    assert {k for k in stack if not k.startswith("x-")} == {"name", "services", "volumes"}
    for name, spec in services.items():
        assert set(spec) <= SERVICE_KEYS, (name, set(spec) - SERVICE_KEYS)
        assert spec.get("restart", "no") in {"no", "always", "on-failure", "unless-stopped"}
        health = spec.get("healthcheck", {})
        assert set(health) <= HEALTHCHECK_KEYS, name
        for key in ("interval", "timeout", "start_period"):
            if key in health:
                assert DURATION.match(health[key]), (name, key)
        if "stop_grace_period" in spec:
            assert DURATION.match(spec["stop_grace_period"])
        for dep, condition in spec.get("depends_on", {}).items():
            assert dep in services, (name, dep)
            assert set(condition) == {"condition"}
            assert condition["condition"] in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }
            if condition["condition"] == "service_healthy":
                assert "test" in services[dep].get("healthcheck", {}), (name, dep)
        for entry in spec.get("env_file", []):
            assert set(entry) <= {"path", "required", "format"}
        for port in spec.get("ports", []):
            assert re.fullmatch(r"(127\.0\.0\.1:)?\d+:\d+", port), port


def test_notifier_reaches_ingest_on_the_compose_network(services: dict[str, Any]) -> None:
    env = compose_environment(services["notifier"])
    assert env["BOKVAR_NOTIFIER_INGEST_URL"] == f"http://ingest:{default_port('ingest')}"
    assert services["notifier"]["depends_on"]["ingest"] == {"condition": "service_healthy"}


def test_compose_spec_schema_accepts_the_file(tmp_path: Path) -> None:
    """check-jsonschema's vendored Compose Specification, when installed (not required)."""
    tool = shutil.which("check-jsonschema")
    if tool is None:
        pytest.skip("check-jsonschema is not installed")
    # anchors and merge keys resolved, as Compose sees the file
    resolved = tmp_path / "docker-compose.json"
    resolved.write_text(json.dumps(compose()))
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(resolved)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
