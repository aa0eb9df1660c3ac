"""Deployment recipes in deploy/: the Dockerfile, the KubeRay RayCluster and RayJob, the Cloud Run service,
and docs/deploy.md's list of what a user must change."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOC = ROOT / "docs" / "deploy.md"


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _one(name: str, kind: str) -> dict:
    found = [d for d in _docs(name) if d.get("kind") == kind]
    assert len(found) == 1, f"{name} should hold one {kind}"
    return found[0]


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def _gpu_group(cluster_spec: dict) -> dict:
    groups = [g for g in cluster_spec["workerGroupSpecs"] if g["groupName"] == "gpu"]
    assert len(groups) == 1
    return groups[0]


def _container(pod_template: dict) -> dict:
    return pod_template["spec"]["containers"][0]


def test_dockerfile_cuda_base_python_extras_non_root_entrypoint() -> None:
    steps = _dockerfile()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 1 and re.fullmatch(r"nvidia/cuda:12\.[\d.]+-cudnn\d*-runtime-ubuntu22\.04", froms[0])
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "python3.11 -m venv" in runs
    assert 'pip install ".[gpu,ray,gcs,postgres]"' in runs
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    last_user = max(i for i, (word, _) in enumerate(steps) if word == "USER")
    assert not any(word in ("ENTRYPOINT", "CMD") for word, _ in steps[:last_user])  # it runs as that user
    entry = json.loads(next(args for word, args in steps if word == "ENTRYPOINT"))
    assert entry[-1] == "swapface"
    env = " ".join(args for word, args in steps if word == "ENV")
    assert "SWAPFACE_MODELS_DIR=/models" in env
    assert any(word == "ARG" and args.startswith("MODELS=") for word, args in steps)  # models can be baked in


@pytest.mark.parametrize("name", ["kuberay-raycluster.yaml", "kuberay-rayjob.yaml"])
def test_gpu_worker_group_scales_from_zero_on_spot_gpus(name: str) -> None:
    doc = _one(name, "RayCluster" if "raycluster" in name else "RayJob")
    assert doc["apiVersion"] == "ray.io/v1"
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    assert spec["enableInTreeAutoscaling"] is True
    group = _gpu_group(spec)
    assert group["minReplicas"] == 0 and group.get("replicas", 0) == 0
    assert isinstance(group["maxReplicas"], int) and group["maxReplicas"] >= 1  # the budget guard
    pod = group["template"]["spec"]
    resources = _container(group["template"])["resources"]
    assert str(resources["limits"]["nvidia.com/gpu"]) == "1"
    assert pod["nodeSelector"]["cloud.google.com/gke-spot"] == "true"
    assert {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true",
            "effect": "NoSchedule"} in pod["tolerations"]
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # chunks never land on the head
    assert "cloud.google.com/gke-spot" not in head["template"]["spec"].get("nodeSelector", {})
    env = {e["name"]: e.get("value") for e in _container(head["template"])["env"]}
    assert env["SWAPFACE_RAY_NUM_GPUS"] == "1"  # the driver asks a GPU per chunk task


def test_rayjob_runs_swapface_on_the_same_worker_shape_and_shuts_down() -> None:
    job = _one("kuberay-rayjob.yaml", "RayJob")
    entry = job["spec"]["entrypoint"].split()
    assert entry[:2] == ["swapface", "run"] and entry[entry.index("--executor") + 1] == "ray"
    for flag in ("--source", "--target", "--output"):  # the bucket directly, no mount needed
        assert entry[entry.index(flag) + 1].startswith("gs://BUCKET/")
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    cluster = _one("kuberay-raycluster.yaml", "RayCluster")
    ours, theirs = _gpu_group(job["spec"]["rayClusterSpec"]), _gpu_group(cluster["spec"])
    for key in ("minReplicas", "maxReplicas", "rayStartParams"):
        assert ours[key] == theirs[key]
    for key in ("nodeSelector", "tolerations"):
        assert ours["template"]["spec"][key] == theirs["template"]["spec"][key]
    assert _container(ours["template"])["resources"] == _container(theirs["template"])["resources"]


def test_service_worker_deployment_feeds_the_cluster() -> None:
    worker = _one("kuberay-raycluster.yaml", "Deployment")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["worker", "--executor", "ray"]
    env = {e["name"]: e for e in container["env"]}
    cluster = _one("kuberay-raycluster.yaml", "RayCluster")["metadata"]["name"]
    assert env["SWAPFACE_RAY_ADDRESS"]["value"] == f"{cluster}-head-svc:6379"
    assert "secretKeyRef" in env["SWAPFACE_DATABASE_URL"]["valueFrom"]


def test_cloud_run_manifest_is_a_knative_service_running_serve() -> None:
    service = _one("cloudrun-api.yaml", "Service")
    assert service["apiVersion"] == "serving.knative.dev/v1"
    template = service["spec"]["template"]
    scale = template["metadata"]["annotations"]
    assert 0 <= int(scale["autoscaling.knative.dev/minScale"]) <= int(scale["autoscaling.knative.dev/maxScale"])
    assert int(template["spec"]["containerConcurrency"]) >= 1
    container = template["spec"]["containers"][0]
    assert container["args"][0] == "serve"
    port = container["ports"][0]["containerPort"]
    assert container["args"][container["args"].index("--port") + 1] == str(port)
    assert container["args"][container["args"].index("--host") + 1] == "0.0.0.0"
    env = {e["name"]: e for e in container["env"]}
    for name in ("SWAPFACE_DATABASE_URL", "SWAPFACE_STORAGE_URL", "SWAPFACE_KEK"):
        assert "secretKeyRef" in env[name]["valueFrom"], f"{name} should come from a secret"


def _table(heading_word: str) -> list[tuple[str, list[str]]]:
    """(first cell's `token`, files named in the last cell) for each row of the table after the line that
    starts with ``| <heading_word>``."""
    lines = DOC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {heading_word} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        token = re.match(r"`([^`]+)`", cells[0])
        assert token, f"no `placeholder` in {line!r}"
        rows.append((token.group(1), re.findall(r"`([\w.-]+)`", cells[-1])))
    return rows


def test_every_placeholder_in_the_docs_is_in_the_recipes_it_names() -> None:
    rows = _table("placeholder")
    assert {t for t, _ in rows} >= {"PROJECT_ID", "REGION", "IMAGE_TAG", "BUCKET", "SQL_INSTANCE"}
    for token, files in rows:
        assert files, f"{token}: the docs name no recipe"
        for name in files:
            assert re.search(rf"(?<![A-Z_]){token}(?![A-Z_])", (DEPLOY / name).read_text()), f"{token} not in {name}"


def _secret_refs(name: str) -> set[str]:
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                found.add(node["secretKeyRef"]["name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for doc in _docs(name):
        walk(doc)
    return found


def test_every_secret_in_the_docs_is_referenced_where_it_says() -> None:
    rows = _table("secret")
    assert {t for t, _ in rows} >= {"swapface-database-url", "swapface-storage-url", "swapface-kek", "swapface"}
    for secret, files in rows:
        for name in files:
            assert secret in _secret_refs(name), f"secret {secret} not referenced in {name}"
    referenced = set().union(*(_secret_refs(p.name) for p in DEPLOY.glob("*.yaml")))
    assert referenced <= {t for t, _ in rows}, "a recipe uses a secret the docs do not tell users to create"
