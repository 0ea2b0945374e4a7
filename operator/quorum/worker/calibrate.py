"""`quorum worker calibrate`: Avengers calibration in a pod, published into the ConfigMap the operator
created for it (the calibrator may only `get`/`patch` that one ConfigMap; it cannot create any).

The ConfigMap receives the artifact bundle (`artifact.json`, `scores.json`: `Artifact.to_files()`) and
`summary.json`, the few figures the operator copies into `status.calibration`. The router mounts the same
ConfigMap as its `--artifact` directory.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from pathlib import Path
from typing import Any

from kubernetes import client

from quorum.api.resources import EnsembleRouter, load_one
from quorum.locations import POD_DATA_ROOT
from quorum.routing.artifact import Artifact
from quorum.routing.taskmap import size_distribution
from quorum.worker.kube import pod_api_client
from quorum.worker.podfs import pod_path

SUMMARY_KEY = "summary.json"


def summary_of(artifact: Artifact, questions: int) -> dict[str, Any]:
    """What `status.calibration` shows: held-out accuracies of the routed ensemble, the best single model and
    the oracle, and the checksum the router's pods are rolled on."""
    overall = artifact.evaluation.get("overall", {})
    best = overall.get("bestSingle") or {}
    return {
        "checksum": artifact.checksum,
        "clusters": artifact.task_map.clusters,
        "clusterSizes": size_distribution(artifact.task_map.cluster_sizes),
        "questions": questions,
        "heldOut": int(overall.get("questions") or 0),
        "routedAccuracy": overall.get("routed"),
        "bestSingleAccuracy": best.get("accuracy"),
        "bestSingleModel": best.get("model"),
        "oracleAccuracy": overall.get("oracle"),
        "modelAccuracy": overall.get("models", {}),
        "failedCalls": artifact.calibration.get("failedCalls", {}),
        "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def run_calibrate(config_path: Path, artifact_configmap: str) -> str:
    """Calibrate against every backend, fill the ConfigMap, return the summary (the termination message)."""
    from quorum.routing.calibrate import calibrate
    from quorum.routing.config import backend_endpoints
    from quorum.routing.dataset import load_dataset
    from quorum.routing.embedding import spec_embedder

    resource = load_one(config_path, EnsembleRouter)
    spec = resource.spec
    dataset = spec.calibration.dataset
    scheme, _, rest = dataset.uri.partition("://")
    if scheme == "file" and rest.startswith("/"):  # a mounted ConfigMap or claim (builders/storage.py)
        dataset = dataset.model_copy(update={"uri": f"file://{pod_path(rest)}"})
    items = load_dataset(dataset, base_dir=config_path.parent, file_root=pod_path(POD_DATA_ROOT))
    endpoints = backend_endpoints(resource.metadata.name, spec)
    artifact = asyncio.run(calibrate(spec, endpoints, items, spec_embedder(spec)))
    summary = summary_of(artifact, len(items))
    data = {**artifact.to_files(), SUMMARY_KEY: json.dumps(summary, sort_keys=True)}
    namespace = resource.metadata.namespace or os.environ["POD_NAMESPACE"]
    client.CoreV1Api(pod_api_client()).patch_namespaced_config_map(artifact_configmap, namespace, {"data": data})
    return json.dumps({k: summary[k] for k in ("checksum", "clusters", "questions", "routedAccuracy")})
