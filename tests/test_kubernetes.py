"""The Kubernetes example in deploy/kubernetes/: parsed, and checked against the app it deploys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from screenshot_service.app import create_app
from screenshot_service.dashboards.catalog import Catalog
from screenshot_service.dashboards.config import load_dashboards
from screenshot_service.settings import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"

Manifest = dict[str, Any]
OPERATORS_KEYS = "n8n:3f0c9a7e51b24d86a1e7c0f95b3d2a48"


def manifests() -> list[Manifest]:
    docs: list[Manifest] = []
    for path in sorted(KUBE.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc)
    return docs


def one(kind: str, name: str | None = None) -> Manifest:
    found = [
        m
        for m in manifests()
        if m["kind"] == kind and (name is None or m.get("metadata", {}).get("name") == name)
    ]
    assert len(found) == 1, f"one {kind} {name or ''} expected, found {len(found)}"
    return found[0]


def container() -> Manifest:
    containers: list[Manifest] = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def environment() -> dict[str, str]:
    """The container's environment as Kubernetes builds it: envFrom ConfigMaps and Secrets, then env."""
    env: dict[str, str] = {}
    for source in container().get("envFrom", []):
        if "configMapRef" in source:
            env |= one("ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            env |= one("Secret", source["secretRef"]["name"])["stringData"]
    env |= {item["name"]: item["value"] for item in container().get("env", [])}
    return env


def dashboards_toml() -> tuple[str, str]:
    """(mount path of the dashboards file, its text) from the Deployment's volume and ConfigMap."""
    pod = one("Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    for volume in pod["volumes"]:
        if "configMap" in volume:
            data = one("ConfigMap", volume["configMap"]["name"])["data"]
            (key, text), *_ = data.items()
            return f"{mounts[volume['name']]}/{key}", text
    raise AssertionError("no ConfigMap volume holds the dashboards")


def settings_for(tmp_path: Path) -> Settings:
    """The service's settings from the manifests, with the dashboards file where this test can read it."""
    env = dict(environment())
    mount_path, text = dashboards_toml()
    assert env["SCREENSHOT_DASHBOARDS_FILE"] == mount_path
    local = tmp_path / "dashboards.toml"
    local.write_text(text, encoding="utf-8")
    env["SCREENSHOT_DASHBOARDS_FILE"] = str(local)
    env["SCREENSHOT_TEMP_DIR"] = str(tmp_path / "images")
    env["SCREENSHOT_API_KEYS"] = OPERATORS_KEYS  # replaced, as the Secret says: its placeholder is refused
    return load_settings(env)


def app_paths(settings: Settings) -> set[str]:
    """The routes of the app these settings build (the dashboards' secrets from the manifests)."""
    app = create_app(settings, Catalog.load(settings, environment()))
    return {route.path for route in app.routes}


def test_kustomization_lists_files_that_exist() -> None:
    kustomization = one("Kustomization")
    for resource in kustomization["resources"]:
        assert (KUBE / resource).is_file(), resource
    listed = set(kustomization["resources"])
    # These need the Prometheus Operator's CRDs: commented in, not listed.
    optional = {"servicemonitor.yaml", "prometheusrule.yaml"}
    assert {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"} == listed | optional


def test_every_variable_is_a_setting_and_the_whole_environment_loads(tmp_path: Path) -> None:
    fields = {f.name for f in msgspec.structs.fields(Settings)}
    names = [name for name in environment() if name.startswith("SCREENSHOT_")]
    assert names
    unknown = [name for name in names if name.removeprefix("SCREENSHOT_").lower() not in fields]
    assert not unknown
    settings = settings_for(tmp_path)  # a wrong value would raise, naming the variable
    assert settings.api_keys
    assert settings.meta_configured
    assert settings.redis_url
    assert settings.host == "0.0.0.0"


def test_dashboards_file_loads_with_the_secrets_it_names(tmp_path: Path) -> None:
    _, text = dashboards_toml()
    path = tmp_path / "dashboards.toml"
    path.write_text(text, encoding="utf-8")
    dashboards = load_dashboards(str(path), environment())  # every headers_env / value_env is set
    assert dashboards.dashboards


def test_secret_holds_placeholders_only() -> None:
    secret = one("Secret")
    assert "data" not in secret, "placeholders in stringData, never base64 that hides a real value"
    for name, value in secret["stringData"].items():
        assert "change-me" in value, f"{name} must be a placeholder"
    config = one("ConfigMap", "screenshot-service-env")["data"]
    secret_fields = {"API_KEYS", "META_ACCESS_TOKEN", "REDIS_URL", "LOG_HASH_KEY"}
    assert not {f"SCREENSHOT_{name}" for name in secret_fields} & config.keys(), "secrets go in the Secret"


def test_the_placeholder_api_key_stops_start_up() -> None:
    """Applied unchanged, the example does not run with a key anyone can read here."""
    with pytest.raises(ConfigError, match=r"SCREENSHOT_API_KEYS: .*placeholder"):
        load_settings({"SCREENSHOT_API_KEYS": environment()["SCREENSHOT_API_KEYS"]})


def test_probes_reach_the_app_routes_on_its_port(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    paths = app_paths(settings)
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports["http"] == settings.port == Settings().port
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = container()[probe]["httpGet"]
        assert get["path"] == path
        assert get["path"] in paths
        assert ports.get(get["port"], get["port"]) == settings.port
        assert not get["path"].startswith("/v1"), "probes carry no API key"


def test_prometheus_scrapes_the_metrics_route(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    paths = app_paths(settings)
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == settings.port
    assert annotations["prometheus.io/path"] in paths
    monitor = one("ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in one("Service")["spec"]["ports"]}


def test_service_and_disruption_budget_select_the_pods() -> None:
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy"):
        spec = one(kind)["spec"]
        selector = spec.get("selector", spec.get("podSelector"))
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items(), kind
    (port,) = one("Service")["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container()["ports"]}


def test_runs_as_the_images_non_root_user_with_chromiums_needs() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    uid = re.search(r"^USER (\d+)", (ROOT / "Containerfile").read_text(encoding="utf-8"), re.MULTILINE)
    assert uid
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid.group(1)) != 0
    security = container()["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    shm = [m for m in container()["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    assert len(shm) == 1
    assert volumes[shm[0]["name"]]["emptyDir"]["medium"] == "Memory"
    if security.get("readOnlyRootFilesystem"):
        writable = {m["mountPath"] for m in container()["volumeMounts"] if not m.get("readOnly")}
        assert {"/tmp", "/home/app"} <= writable


@pytest.mark.parametrize("kind", ["requests", "limits"])
def test_resources_are_bounded(kind: str) -> None:
    resources = container()["resources"][kind]
    assert {"cpu", "memory"} <= resources.keys()


def test_shutdown_outlasts_the_drain() -> None:
    """SIGTERM comes after preStop; the server drains for up to 30 s; the grace period covers both."""
    pod = one("Deployment")["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > 30 + int(pre_stop[1])
