"""Invalid resources, each a valid example with one mistake, and the field its rejection must name.

Shared by the pydantic tests (tests/api) and the real-API-server tests (tests/cluster), so both layers are
held to the same cases.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass(frozen=True)
class InvalidSpec:
    id: str
    example: str
    mutate: Callable[[dict[str, Any]], None]
    field: str
    """Substring the error must contain: the failing field's path (API server) or its last segments."""


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))


def build(case: InvalidSpec) -> dict[str, Any]:
    document = copy.deepcopy(example(case.example))
    case.mutate(document)
    return document


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[int(leaf) if leaf.isdigit() else leaf] = value

    return mutate


def _duplicate_model(doc: dict[str, Any]) -> None:
    doc["spec"]["models"][1]["name"] = doc["spec"]["models"][0]["name"]


def _no_adjudicator(doc: dict[str, Any]) -> None:
    for model in doc["spec"]["models"]:
        model["roles"] = ["generator", "reviewer"]


def _duplicate_task(doc: dict[str, Any]) -> None:
    doc["spec"]["calibration"]["tasks"][1]["name"] = doc["spec"]["calibration"]["tasks"][0]["name"]


def _blend_over_clusters(doc: dict[str, Any]) -> None:
    doc["spec"]["calibration"]["clusters"] = 2
    doc["spec"]["routing"]["clustersBlended"] = 3


SJOB = "synthesisjob.yaml"
ENSR = "ensemblerouter.yaml"

INVALID_SPECS: list[InvalidSpec] = [
    InvalidSpec("duplicate-model-names", SJOB, _duplicate_model, "models"),
    InvalidSpec("endpoint-and-model", SJOB, _set("spec.models.3.model", "x/y"), "models"),
    InvalidSpec("thresholds-inverted", SJOB, _set("spec.review.acceptAtLeast", 4.0), "acceptAtLeast"),
    InvalidSpec("negative-shards", SJOB, _set("spec.workers.shards", -2), "shards"),
    InvalidSpec("unknown-grey-zone", SJOB, _set("spec.review.greyZone", "maybe"), "greyZone"),
    InvalidSpec("too-many-reviewers", SJOB, _set("spec.review.reviewers", 4), "reviewers"),
    InvalidSpec("parallelism-over-shards", SJOB, _set("spec.workers.parallelism", 32), "parallelism"),
    InvalidSpec("unknown-field", SJOB, _set("spec.generation.temprature", 0.5), "temprature"),
    InvalidSpec("unpinned-vllm-image", SJOB, _set("spec.models.0.vllm.image", "vllm/vllm-openai"), "image"),
    InvalidSpec("uppercase-model-name", SJOB, _set("spec.models.0.name", "Qwen"), "name"),
    InvalidSpec("no-adjudicator", SJOB, _no_adjudicator, "adjudication"),
    InvalidSpec("bad-seed-uri", SJOB, _set("spec.seeds.uri", "ftp://host/seeds.jsonl"), "uri"),
    InvalidSpec("seeds-escaping-their-claim", SJOB, _set("spec.seeds.uri", "pvc://datasets/../../etc/x"), "seeds.uri"),
    InvalidSpec("output-escaping-its-claim", SJOB, _set("spec.output.uri", "pvc://datasets/a/../../../tmp"), "uri"),
    InvalidSpec("https-seed-uri", SJOB, _set("spec.seeds.uri", "https://example.com/seeds.jsonl"), "seeds.uri"),
    InvalidSpec(
        "http-calibration-uri", ENSR, _set("spec.calibration.dataset.uri", "http://example.com/c.jsonl"), "dataset.uri"
    ),
    InvalidSpec("claim-named-dot-dot", SJOB, _set("spec.seeds.uri", "pvc://../tmp/seeds.jsonl"), "seeds.uri"),
    InvalidSpec(
        "endpoint-url-with-credentials",
        SJOB,
        _set("spec.models.3.endpoint.url", "http://user:hunter2@tulu.inference.svc:8000/v1"),
        "url",
    ),
    InvalidSpec(
        "decontamination-without-uri",
        SJOB,
        _set("spec.postprocess.dedup.against", ["seeds", "decontamination"]),
        "decontaminationUri",
    ),
    InvalidSpec("endpoint-with-vllm", SJOB, _set("spec.models.3.vllm", {"tensorParallelSize": 2}), "endpoint"),
    InvalidSpec("temperature-out-of-range", SJOB, _set("spec.generation.temperature", 3.5), "temperature"),
    InvalidSpec("missing-output", SJOB, lambda d: d["spec"].pop("output"), "output"),
    InvalidSpec("model-switch-single-model", ENSR, _set("spec.voting.strategy", "model-switch"), "modelsSelected"),
    InvalidSpec("test-fraction-above-one", ENSR, _set("spec.calibration.testFraction", 1.5), "testFraction"),
    InvalidSpec("more-selected-than-models", ENSR, _set("spec.routing.modelsSelected", 9), "modelsSelected"),
    InvalidSpec("blended-over-clusters", ENSR, _blend_over_clusters, "clustersBlended"),
    InvalidSpec("name-with-a-dot", SJOB, _set("metadata.name", "my.job"), "metadata.name"),
    InvalidSpec("name-starting-with-a-digit", ENSR, _set("metadata.name", "1job"), "metadata.name"),
    InvalidSpec("quantity-not-a-quantity", SJOB, _set("spec.models.0.resources.requests", {"cpu": "lots"}), "requests"),
    InvalidSpec(
        "node-selector-key-invalid",
        SJOB,
        _set("spec.models.0.resources.nodeSelector", {"bad key!": "x"}),
        "nodeSelector",
    ),
    InvalidSpec(
        "exists-toleration-with-value",
        SJOB,
        _set("spec.models.0.resources.tolerations", [{"key": "gpu", "operator": "Exists", "value": "yes"}]),
        "value",
    ),
    InvalidSpec("megabyte-model-string", SJOB, _set("spec.models.0.model", "x" * 1_000_000), "model"),
    InvalidSpec("latest-worker-image", SJOB, _set("spec.workers.image", "quorum-dev/quorum:latest"), "image"),
    InvalidSpec("untagged-router-image", ENSR, _set("spec.router.image", "quorum-dev/quorum"), "image"),
    InvalidSpec("max-tokens-over-model-len", SJOB, _set("spec.generation.maxTokens", 9000), "maxTokens"),
    InvalidSpec(
        "tensor-parallel-over-gpus", SJOB, _set("spec.models.0.vllm.tensorParallelSize", 2), "tensorParallelSize"
    ),
    InvalidSpec("duplicate-task-names", ENSR, _duplicate_task, "tasks"),
    InvalidSpec(
        "calibration-escaping-its-configmap",
        ENSR,
        _set("spec.calibration.dataset.uri", "configmap://calib/../other/key"),
        "uri",
    ),
    InvalidSpec(
        "autoscaling-inverted",
        ENSR,
        _set("spec.router.autoscaling", {"enabled": True, "minReplicas": 5, "maxReplicas": 2}),
        "minReplicas",
    ),
]
