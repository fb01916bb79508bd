"""What the deploy tests share: the repository's deploy files and the settings classes."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from ingest.config import IngestSettings
from notifier.config import NotifierSettings
from rules.config import RulesSettings
from services.cases.config import CasesSettings
from services.console.config import ConsoleSettings
from shared.config import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCALE_OVERRIDE = ROOT / "deploy" / "compose.scale.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
K8S = ROOT / "deploy" / "k8s"

SERVICES: dict[str, type[CommonSettings]] = {
    "ingest": IngestSettings,
    "rules": RulesSettings,
    "notifier": NotifierSettings,
    "cases": CasesSettings,
    "console": ConsoleSettings,
}
ALL_CLASSES: tuple[type[CommonSettings], ...] = (CommonSettings, *SERVICES.values())
# Settings without which a process cannot run in production (defaults are dev-only).
REQUIRED = ("BOKVAR_DATABASE_URL", "BOKVAR_KAFKA_BOOTSTRAP_SERVERS")


def env_prefix(cls: type[BaseSettings]) -> str:
    """Return the environment prefix of a settings class."""
    return str(cls.model_config.get("env_prefix", ""))


def env_names(cls: type[BaseSettings]) -> set[str]:
    """Return the environment variable of every field of `cls` (read from model_fields now)."""
    prefix = env_prefix(cls)
    return {(prefix + name).upper() for name in cls.model_fields}


def known_env_names() -> set[str]:
    """Return every BOKVAR_* variable some settings class reads."""
    names: set[str] = set()
    for cls in ALL_CLASSES:
        names |= env_names(cls)
    return names


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def secret_env_names(cls: type[BaseSettings]) -> dict[str, bool]:
    """Return the secret variables of `cls` (SecretStr fields, the database URL).

    The value tells whether production must set it: True unless the field defaults to None
    (an optional integration, e.g. Twilio credentials).
    """
    prefix = env_prefix(cls)
    names = {
        (prefix + name).upper(): field.default is not None
        for name, field in cls.model_fields.items()
        if _is_secret(field.annotation)
    }
    return {**names, "BOKVAR_DATABASE_URL": True}


def all_secret_env_names() -> dict[str, bool]:
    """Return the secret variables of every settings class (see `secret_env_names`)."""
    result: dict[str, bool] = {}
    for cls in ALL_CLASSES:
        result.update(secret_env_names(cls))
    return result


def mentioned_in_env_file(path: Path) -> set[str]:
    """Return the variables an env file sets or shows commented out (`# NAME=...`)."""
    pattern = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
    return set(pattern.findall(path.read_text()))


def build_settings(cls: type[CommonSettings], env: dict[str, str]) -> CommonSettings:
    """Validate `env` (BOKVAR_* names) with the settings class, as the process would."""
    prefix = env_prefix(cls)
    fields = {
        name[len(prefix) :].lower(): value
        for name, value in env.items()
        if name.startswith(prefix) and name[len(prefix) :].lower() in cls.model_fields
    }
    return cls.model_validate(fields)


def default_port(service: str) -> int:
    """Return the default of the `<service>_port` setting."""
    default = SERVICES[service].model_fields[f"{service}_port"].default
    assert isinstance(default, int)
    return default


class _TagLoader(yaml.SafeLoader):
    """SafeLoader that also reads Compose's `!reset` and `!override` tags."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return {"tag": node.tag, "value": value}


_TagLoader.add_constructor("!reset", _tagged)
_TagLoader.add_constructor("!override", _tagged)


def load_yaml(path: Path) -> Any:
    """Return the one YAML document of `path`."""
    return yaml.load(path.read_text(), Loader=_TagLoader)


def load_yaml_all(path: Path) -> list[Any]:
    """Return every non-empty YAML document of `path`."""
    return [doc for doc in yaml.load_all(path.read_text(), Loader=_TagLoader) if doc]


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a KEY=VALUE env file (comments and blank lines skipped), as Compose does."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {raw!r}"
        env[key.strip()] = value.strip()
    return env


def compose() -> dict[str, Any]:
    """Return docker-compose.yml with YAML anchors and merge keys resolved."""
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


def compose_env_files(service: dict[str, Any]) -> list[tuple[Path, bool]]:
    """Return (path, required) of every env_file of a compose service."""
    entries = service.get("env_file", [])
    if isinstance(entries, str):
        entries = [entries]
    result = []
    for entry in entries:
        if isinstance(entry, str):
            result.append((ROOT / entry, True))
        else:
            result.append((ROOT / entry["path"], bool(entry.get("required", True))))
    return result


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    """Return the `environment:` of a compose service as a dict of strings."""
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def compose_effective_env(service: dict[str, Any]) -> dict[str, str]:
    """Return what the container sees: env files that exist in order, then `environment:`."""
    env: dict[str, str] = {}
    for path, _required in compose_env_files(service):
        if path.exists() and path.name.endswith(".example.env"):
            env.update(read_env_file(path))
    env.update(compose_environment(service))
    return env
