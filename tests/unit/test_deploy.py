"""deploy/: the Kubernetes manifests against Kubernetes' own schemas, and the cross-checks
no schema makes (names that must match, a grace that must cover the server's), since no
cluster runs here. Plus the container image definition's references to the repository.

The schemas are the Python `kubernetes` client's models, generated from the API's
OpenAPI spec: each document is read into its model and written back, and any field the
model does not know (a typo, a field at the wrong level) is reported as lost.
"""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml

from config.settings import ServerSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PRESTOP_SECONDS = 5


def _kustomized() -> list[dict[str, Any]]:
    """What `kubectl apply -k deploy/` applies: the resources, and the ConfigMaps its
    generator makes from files (without kustomize's hash suffix, which kustomize also
    writes into the references)."""
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / resource).read_text()) if d]
    for generator in kustomization.get("configMapGenerator", []):
        data = {Path(f).name: (DEPLOY / f).read_text() for f in generator["files"]}
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    return docs


DOCS = _kustomized()


def _find(kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in DOCS if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _lost(original: Any, written: Any, path: str = "") -> list[str]:
    """Paths present in `original` but not in the model's rewrite of it."""
    if isinstance(original, dict):
        if not isinstance(written, dict):
            return [path or "/"]
        return [
            lost
            for key, value in original.items()
            for lost in (
                [f"{path}.{key}"]
                if key not in written
                else _lost(value, written[key], f"{path}.{key}")
            )
        ]
    if isinstance(original, list):
        if not isinstance(written, list) or len(written) != len(original):
            return [path]
        return [
            lost
            for i, item in enumerate(original)
            for lost in _lost(item, written[i], f"{path}[{i}]")
        ]
    return [] if str(original) == str(written) else [f"{path}: {original!r} became {written!r}"]


def _model_name(doc: dict[str, Any]) -> str:
    group_version = doc["apiVersion"].split("/")[-1]
    return f"{group_version.capitalize()}{doc['kind']}"


@pytest.mark.parametrize("doc", DOCS, ids=[f"{d['kind']}-{d['metadata']['name']}" for d in DOCS])
def test_each_manifest_fits_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    api = kubernetes.client.ApiClient()
    model = api._ApiClient__deserialize(doc, _model_name(doc))  # type: ignore[attr-defined]
    written = api.sanitize_for_serialization(model)
    assert _lost(doc, written) == []


def _container(deployment: str) -> dict[str, Any]:
    [container] = _find("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def _settings() -> dict[str, str]:
    return dict(_find("ConfigMap", "llm-service-settings")["data"])


def test_the_termination_grace_covers_the_prestop_the_drain_and_the_servers_backstop() -> None:
    grace = float(_settings()["LLM_SERVICE_SERVER_SHUTDOWN_GRACE"])
    pod = _find("Deployment", "llm-service")["spec"]["template"]["spec"]
    prestop = _container("llm-service")["lifecycle"]["preStop"]["exec"]["command"]
    assert prestop == ["sleep", str(PRESTOP_SECONDS)]
    backstop = math.ceil(grace) + 5  # uvicorn's timeout_graceful_shutdown in app/__main__
    assert pod["terminationGracePeriodSeconds"] >= PRESTOP_SECONDS + backstop
    assert ServerSettings().shutdown_grace == grace  # the documented default, unchanged


def test_every_probe_asks_for_health_on_the_served_port() -> None:
    container = _container("llm-service")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}


def test_the_proxy_finds_the_replicas_and_their_slots() -> None:
    headless = _find("Service", "llm-service-replicas")
    replicas = _find("Deployment", "llm-service")
    assert headless["spec"]["clusterIP"] == "None"
    labels = replicas["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= labels.items()

    env = {e["name"]: e for e in _container("llm-proxy")["env"]}
    assert env["LLM_REPLICAS_DNS"]["value"].startswith("llm-service-replicas.$(POD_NAMESPACE).")
    slots = env["LLM_REPLICA_SLOTS"]["valueFrom"]["configMapKeyRef"]
    assert slots["name"] == "llm-service-settings"
    assert slots["key"] in _settings()

    front = _find("Service", "llm-service")
    assert front["spec"]["selector"].items() <= (
        _find("Deployment", "llm-proxy")["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_proxy_mounts_its_configuration_where_the_configuration_looks() -> None:
    container = _container("llm-proxy")
    [mount] = container["volumeMounts"]
    config = container["args"][container["args"].index("-f") + 1]
    assert config == f"{mount['mountPath']}/haproxy.cfg"
    [volume] = _find("Deployment", "llm-proxy")["spec"]["template"]["spec"]["volumes"]
    generated = _find("ConfigMap", volume["configMap"]["name"])["data"]
    items = {item["key"]: item["path"] for item in volume["configMap"]["items"]}
    assert set(items) == set(generated)
    cfg = (DEPLOY / "haproxy.cfg").read_text()
    for errorfile in re.findall(r"errorfile \d+ (\S+)", cfg):
        assert errorfile in items.values()  # relative to the file (default-path config)


def test_the_replicas_run_as_non_root_from_the_image_built_here() -> None:
    pod = _find("Deployment", "llm-service")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    uid = re.search(r"useradd --uid (\d+)", dockerfile)
    assert uid is not None
    assert pod["securityContext"]["runAsUser"] == int(uid.group(1))
    mounts = {m["mountPath"] for m in _container("llm-service")["volumeMounts"]}
    assert {"/models", "/data"} <= mounts  # the image's VOLUMEs, writable


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", dockerfile)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_copies_files_that_exist_and_runs_as_its_user() -> None:
    steps = _instructions((DEPLOY / "Dockerfile").read_text())
    copies = [shlex.split(args) for op, args in steps if op == "COPY"]
    for args in copies:
        if args[0].startswith("--from"):
            continue
        for source in args[:-1]:
            assert (ROOT / source).exists(), source
    final_stage = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    assert ("USER", "llm") in final_stage
    [healthcheck] = [args for op, args in final_stage if op == "HEALTHCHECK"]
    assert "/health" in healthcheck
    [entrypoint] = [args for op, args in final_stage if op == "ENTRYPOINT"]
    assert (ROOT / yaml.safe_load(entrypoint)[-1]).is_file()
