"""``deploy/k8s`` holds together, offline: every object of the base and of the managed-Redis overlay (its patches
applied here as kustomize applies them) validates against the Kubernetes API's schemas (``kubernetes-validate``,
strict: no unknown field) or KEDA's CRD schemas (``tests/schemas/keda``); the references between objects resolve
(Services and budgets select pods, KEDA scales Deployments that exist, every variable comes from the ConfigMap or
the Secret); and the pods are what the README promises (non-root, read-only, probes on ``/readyz`` and
``/healthz``, a termination grace longer than ``CONDUIT_SHUTDOWN_GRACE``, resources). And ``compose.yaml``
passes ``docker compose config`` (with its observability profile too) where Compose is installed, and mounts only
files the repository has."""

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KEDA = ROOT / "tests" / "schemas" / "keda"
KUBERNETES = "1.33.0"  # the oldest minor version the manifests are meant for
SECRET_KEYS = {
    "CONDUIT_JWT_SECRET",
    "CONDUIT_SEALING_KEY",
    "REDIS_URL",
    "REDIS_PASSWORD",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
}
Obj = dict[str, Any]


def _load(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _kustomization(folder: Path) -> Obj:
    found: Obj = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return found


def _base() -> list[Obj]:
    kustomization = _kustomization(K8S / "base")
    listed = kustomization["resources"]
    assert sorted(listed) == sorted(p.name for p in (K8S / "base").glob("*.yaml") if p.name != "kustomization.yaml")
    objects = [doc for name in listed for doc in _load(K8S / "base" / name)]
    images = {image["name"]: f"{image['newName']}:{image['newTag']}" for image in kustomization["images"]}
    for obj in objects:
        for container in _containers(obj):
            container["image"] = images.get(container["image"], container["image"])
    return objects


def _key(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _json_patch(obj: Obj, operations: list[Obj]) -> None:
    """RFC 6902 ``add`` and ``replace``, the operations the overlay uses."""
    for operation in operations:
        *parents, last = operation["path"].strip("/").split("/")
        target: Any = obj
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        assert operation["op"] in {"add", "replace"}, operation
        if operation["op"] == "replace":
            assert last in target, operation["path"]
        target[last] = operation["value"]


def _overlay(folder: Path) -> list[Obj]:
    kustomization = _kustomization(folder)
    assert kustomization["resources"] == ["../../base"]
    objects = {_key(obj): obj for obj in copy.deepcopy(_base())}
    for patch in kustomization["patches"]:
        if "path" in patch:  # strategic merge: here, deletions only
            for doc in _load(folder / patch["path"]):
                assert doc.pop("$patch") == "delete", doc
                assert objects.pop(_key(doc), None) is not None, f"deletes {_key(doc)}, which the base lacks"
            continue
        target = patch["target"]
        matched = [
            obj for key, obj in objects.items() if key[0] == target["kind"] and target.get("name", key[1]) == key[1]
        ]
        assert matched, target
        for obj in matched:
            _json_patch(obj, yaml.safe_load(patch["patch"]))
    return list(objects.values())


def _pod(obj: Obj) -> Obj | None:
    return obj["spec"]["template"]["spec"] if obj["kind"] in {"Deployment", "StatefulSet"} else None


def _containers(obj: Obj) -> list[Obj]:
    pod = _pod(obj)
    return [] if pod is None else pod["containers"]


def _strict(schema: Any) -> Any:
    """A CRD's schema refusing unknown fields, as ``kubectl apply --validate=strict`` does (the API server
    would prune them silently)."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if "properties" in schema and "x-kubernetes-preserve-unknown-fields" not in schema:
            schema.setdefault("additionalProperties", False)
    elif isinstance(schema, list):
        schema = [_strict(item) for item in schema]
    return schema


def _validate(obj: Obj) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        schema = json.loads((KEDA / f"{obj['kind'].lower()}-{obj['apiVersion'].split('/')[1]}.json").read_text())
        jsonschema.validate(obj, _strict(schema))
    else:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


@pytest.mark.parametrize("variant", ["base", "managed-redis"])
def test_every_object_validates_against_its_schema(variant: str) -> None:
    objects = _base() if variant == "base" else _overlay(K8S / "overlays" / variant)
    kinds = {obj["kind"] for obj in objects}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ScaledObject"} <= kinds
    assert ("StatefulSet" in kinds) is (variant == "base")
    for obj in objects:
        try:
            _validate(obj)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{variant}: {_key(obj)}: {exc}")


@pytest.mark.parametrize("variant", ["base", "managed-redis"])
def test_references_resolve_and_pods_keep_the_readmes_promises(variant: str) -> None:
    objects = _base() if variant == "base" else _overlay(K8S / "overlays" / variant)
    by_kind: dict[str, list[Obj]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    config = {key for obj in by_kind["ConfigMap"] for key in obj["data"]}
    pods = {obj["metadata"]["name"]: obj["spec"]["template"]["metadata"]["labels"] for obj in by_kind["Deployment"]}
    pods |= {
        obj["metadata"]["name"]: obj["spec"]["template"]["metadata"]["labels"] for obj in by_kind.get("StatefulSet", [])
    }

    def selected(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pods.values())

    for service in by_kind["Service"]:
        assert selected(service["spec"]["selector"]), service["metadata"]["name"]
    for budget in by_kind["PodDisruptionBudget"]:
        assert selected(budget["spec"]["selector"]["matchLabels"]), budget["metadata"]["name"]
    deployments = {obj["metadata"]["name"]: obj for obj in by_kind["Deployment"]}
    for scaled in by_kind["ScaledObject"]:
        target = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
        for trigger in scaled["spec"]["triggers"]:
            variable = trigger["metadata"]["addressFromEnv"]
            assert variable in config, variable  # KEDA reads it from the scaled pods' environment
        assert target["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    for autoscaler in by_kind["HorizontalPodAutoscaler"]:
        assert autoscaler["spec"]["scaleTargetRef"]["name"] in deployments

    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] >= 10000, name
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], name
        env = {item["name"]: item.get("value") for item in container.get("env", [])}
        grace = float(env["CONDUIT_SHUTDOWN_GRACE"])
        assert pod["terminationGracePeriodSeconds"] >= grace + 10, name  # room to finish, then to exit
        sources = {
            ref["configMapRef"]["name"] if "configMapRef" in ref else ref["secretRef"]["name"]
            for ref in container["envFrom"]
        }
        assert sources == {"conduit-config", "conduit-secrets"}, name
        if name == "conduit-api":
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    trigger_auth = by_kind["TriggerAuthentication"][0]["spec"]["secretTargetRef"]
    assert {ref["key"] for ref in trigger_auth} <= SECRET_KEYS


def test_every_setting_the_manifests_set_is_one_conduit_reads() -> None:
    examples = (ROOT / "deploy" / "api.env.example").read_text() + (ROOT / "deploy" / "worker.env.example").read_text()
    known = {line.lstrip("# ").split("=", 1)[0] for line in examples.splitlines() if "=" in line}
    config = next(obj for obj in _base() if obj["kind"] == "ConfigMap")["data"]
    assert set(config) - {"REDIS_ADDRESS"} <= known, sorted(set(config) - known)


def _compose() -> list[str] | None:
    """Docker Compose's command here: the ``docker compose`` plugin, or the older ``docker-compose``."""
    docker = shutil.which("docker")
    if (
        docker is not None
        and not subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


def test_compose_mounts_only_files_the_repository_has() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounted = [
        volume.split(":", 1)[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert mounted, "the observability profile mounts its configuration"
    for source in mounted:
        assert (ROOT / source).exists(), source
    assert set(compose["services"]) >= {"redis", "api", "worker", "batch-worker", "prometheus", "grafana"}
    assert compose["services"]["grafana"]["profiles"] == ["observability"]


def test_compose_file_is_valid_where_docker_compose_is_installed() -> None:
    command = _compose()
    if command is None:
        pytest.skip("no docker compose here")
    env = {"CONDUIT_JWT_SECRET": "x" * 48, "PATH": "/usr/bin:/bin"}
    for profile in ([], ["--profile", "observability"]):
        done = subprocess.run(
            [*command, "-f", str(ROOT / "compose.yaml"), *profile, "config", "--quiet"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
