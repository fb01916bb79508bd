"""The Kubernetes manifests in deploy/k8s: structure, probes, ports and settings.

Parsed with PyYAML and checked against the settings classes; kubeconform/kubeval are not
needed (a test uses kubeconform when it is installed).
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from httpx import URL

from shared.config import CommonSettings
from tests.deploy.support import (
    K8S,
    REQUIRED,
    SERVICES,
    all_secret_env_names,
    build_settings,
    default_port,
    known_env_names,
    load_yaml,
    load_yaml_all,
)

REPLICAS = {"ingest": 2, "rules": 3, "notifier": 3, "cases": 1, "console": 2}
# Another service's secret a service needs: the console signs its users' cases tokens.
BORROWED_SECRETS = {"console": {"BOKVAR_CASES_JWT_SECRET"}}
CONSUMER_GROUPS_THAT_SCALE = ("rules", "notifier")
SECRET_TEMPLATE = "secret.example.yaml"


def _objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in sorted(K8S.glob("*.yaml")) for doc in load_yaml_all(path)]


OBJECTS = _objects()


def _find(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        doc
        for _path, doc in OBJECTS
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]


def _one(kind: str, name: str) -> dict[str, Any]:
    found = _find(kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result = containers[0]
    assert isinstance(result, dict)
    return result


def _env_of(container: dict[str, Any]) -> dict[str, str]:
    """Return what the container sees: ConfigMap and Secrets (envFrom), then `env`."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(_one("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(_one("Secret", source["secretRef"]["name"])["stringData"])
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    return env


def test_every_object_kind_is_there() -> None:
    kinds = Counter(doc["kind"] for _path, doc in OBJECTS)
    assert kinds["Namespace"] == 1
    assert kinds["ConfigMap"] == 1
    assert kinds["Job"] == 2
    assert kinds["Deployment"] == kinds["Service"] == len(SERVICES)
    assert kinds["PodDisruptionBudget"] == len(CONSUMER_GROUPS_THAT_SCALE)
    assert kinds["Secret"] >= 1
    assert kinds["Kustomization"] == 1
    for path, doc in OBJECTS:
        assert doc.get("apiVersion"), path
        if doc["kind"] not in {"Namespace", "Kustomization"}:
            assert doc["metadata"]["namespace"] == "bokvar", path


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", SECRET_TEMPLATE}
    assert set(kustomization["resources"]) == manifests
    assert [image["name"] for image in kustomization["images"]] == ["bokvar"]


def test_secret_template_holds_placeholders_only() -> None:
    assert "BOKVAR_DEV_MODE" not in _one("ConfigMap", "bokvar-settings")["data"]
    for secret in load_yaml_all(K8S / SECRET_TEMPLATE):
        assert secret["kind"] == "Secret"
        for value in secret["stringData"].values():
            assert "CHANGE-ME" in value or "xxxx" in value


@pytest.mark.parametrize("service", list(SERVICES))
def test_deployment_runs_the_service_on_its_port(service: str) -> None:
    deployment = _one("Deployment", service)
    container = _container(deployment)
    port = default_port(service)
    assert container["command"] == ["bokvar", "serve", service]
    assert container["image"].split(":")[0] == "bokvar"
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert container["ports"][0]["name"] == "http"
    assert deployment["spec"]["replicas"] == REPLICAS[service]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("service", list(SERVICES))
def test_probes_resources_metrics_and_security(service: str) -> None:
    deployment = _one("Deployment", service)
    container = _container(deployment)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(default_port(service))
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts or not container["securityContext"]["readOnlyRootFilesystem"]


@pytest.mark.parametrize("service", list(SERVICES))
def test_service_selects_the_pods_on_their_port(service: str) -> None:
    svc = _one("Service", service)
    labels = _one("Deployment", service)["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["ports"][0]["port"] == default_port(service)
    assert svc["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize("service", CONSUMER_GROUPS_THAT_SCALE)
def test_scaled_consumer_groups_have_a_pdb_and_fit_the_partitions(service: str) -> None:
    pdb = _one("PodDisruptionBudget", service)
    labels = _one("Deployment", service)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    partitions = int(_one("ConfigMap", "bokvar-settings")["data"]["BOKVAR_TOPIC_PARTITIONS"])
    # more members than partitions would sit idle
    assert REPLICAS[service] <= partitions


def test_every_bokvar_variable_is_a_setting_and_secrets_stay_in_secrets() -> None:
    known = known_env_names()
    secrets = all_secret_env_names()
    config = _one("ConfigMap", "bokvar-settings")["data"]
    used = set(config)
    for secret in _find("Secret"):
        used |= set(secret["stringData"])
    for workload in (*_find("Deployment"), *_find("Job")):
        env = [item["name"] for item in _container(workload).get("env", [])]
        used |= set(env)
        assert not set(secrets) & set(env)
    assert used - known == set(), "not a field of any settings class (renamed or removed?)"
    assert not set(secrets) & set(config), "a secret in the ConfigMap"
    in_secrets = {name for secret in _find("Secret") for name in secret["stringData"]}
    assert set(secrets) - in_secrets == set(), (
        "a new secret setting: add it to the service's Secret in deploy/k8s/secret.example.yaml"
    )


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_service_gets_the_required_settings_and_its_secrets(service: str) -> None:
    env = _env_of(_container(_one("Deployment", service)))
    for name in REQUIRED:
        assert env.get(name), f"{service}: {name} not set"
    cls = SERVICES[service]
    settings = build_settings(cls, env)
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.host == "0.0.0.0"
    assert settings.log_format == "json"
    assert settings.kafka_session_timeout_ms >= 10000
    assert getattr(settings, f"{service}_port") == default_port(service)
    prefix = f"BOKVAR_{service.upper()}_"
    own_secrets = {n for n in all_secret_env_names() if n.startswith(prefix)}
    assert own_secrets <= set(env), f"{service} lacks its secrets"
    borrowed = BORROWED_SECRETS.get(service, set())
    for other in set(SERVICES) - {service}:
        foreign = [n for n in env if n in all_secret_env_names() and f"_{other.upper()}_" in n]
        assert set(foreign) <= borrowed, f"{service} holds {other}'s secrets"


def test_jobs_migrate_and_create_topics() -> None:
    migrate = _container(_one("Job", "bokvar-migrate"))
    topics = _container(_one("Job", "bokvar-topics"))
    assert migrate["command"] == ["bokvar", "migrate"]
    assert topics["command"] == ["bokvar", "topics", "create"]
    assert build_settings(CommonSettings, _env_of(migrate)).database_url.startswith(
        "postgresql+asyncpg://"
    )
    topic_settings = build_settings(CommonSettings, _env_of(topics))
    assert topic_settings.topic_replication_factor == 3
    assert topic_settings.kafka_bootstrap_servers != "embedded"
    for job in (_one("Job", "bokvar-migrate"), _one("Job", "bokvar-topics")):
        assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}


def test_a_schema_validator_accepts_the_manifests() -> None:
    """kubeconform or kubernetes-validate (pip), when one is installed; neither is required."""
    files = [str(p) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"]
    if tool := shutil.which("kubeconform"):
        command = [tool, "-strict", "-summary", *files]
    elif tool := shutil.which("kubernetes-validate"):
        command = [tool, "--strict", "--quiet", *files]
    else:
        pytest.skip("neither kubeconform nor kubernetes-validate is installed")
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prepare_phase_holds_the_namespace_config_and_jobs_only() -> None:
    """`kubectl apply -k deploy/k8s -l bokvar/phase=prepare` must run the jobs, nothing else."""
    prepare = {
        (doc["kind"], doc["metadata"]["name"])
        for _path, doc in OBJECTS
        if doc.get("metadata", {}).get("labels", {}).get("bokvar/phase") == "prepare"
    }
    assert prepare == {
        ("Namespace", "bokvar"),
        ("ConfigMap", "bokvar-settings"),
        ("Job", "bokvar-migrate"),
        ("Job", "bokvar-topics"),
    }


# Field names of the Kubernetes API objects as these manifests use them (a typo such as
# `readinesProbe` would be dropped by a lenient apply, not rejected).
CONTAINER_KEYS = {
    "name",
    "image",
    "imagePullPolicy",
    "command",
    "args",
    "ports",
    "env",
    "envFrom",
    "startupProbe",
    "readinessProbe",
    "livenessProbe",
    "resources",
    "securityContext",
    "volumeMounts",
    "lifecycle",
}
POD_KEYS = {
    "containers",
    "restartPolicy",
    "securityContext",
    "terminationGracePeriodSeconds",
    "topologySpreadConstraints",
    "volumes",
}
PROBE_KEYS = {"httpGet", "periodSeconds", "timeoutSeconds", "failureThreshold"}
DEPLOYMENT_SPEC_KEYS = {"replicas", "revisionHistoryLimit", "strategy", "selector", "template"}
JOB_SPEC_KEYS = {"backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "template"}


def test_workloads_use_known_fields_and_declared_volumes() -> None:
    for kind, spec_keys in (("Deployment", DEPLOYMENT_SPEC_KEYS), ("Job", JOB_SPEC_KEYS)):
        for workload in _find(kind):
            name = workload["metadata"]["name"]
            assert set(workload["spec"]) <= spec_keys, (name, set(workload["spec"]) - spec_keys)
            pod = workload["spec"]["template"]["spec"]
            assert set(pod) <= POD_KEYS, (name, set(pod) - POD_KEYS)
            container = _container(workload)
            assert set(container) <= CONTAINER_KEYS, (name, set(container) - CONTAINER_KEYS)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in container:
                    assert set(container[probe]) <= PROBE_KEYS, (name, probe)
            volumes = {v["name"] for v in pod.get("volumes", [])}
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounts == volumes, name
            if kind == "Job":
                assert pod["restartPolicy"] in {"OnFailure", "Never"}
            else:
                assert "restartPolicy" not in pod


def test_notifier_reaches_the_ingest_service() -> None:
    url = URL(_one("ConfigMap", "bokvar-settings")["data"]["BOKVAR_NOTIFIER_INGEST_URL"])
    svc = _one("Service", url.host.split(".")[0])
    assert svc["metadata"]["name"] == "ingest"
    assert url.port == svc["spec"]["ports"][0]["port"]
