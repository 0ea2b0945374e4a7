"""On the real control plane: the operator's own lifecycle never disturbs the work.

- An operator upgrade (a new default image) while a job runs: the job finishes on the image it started with,
  and nothing is refused.
- Deleting resources while the operator is stopped completes: no finalizer, owner references suffice.
- An operator killed with SIGKILL again and again while it creates children leaves exactly one of each.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.kube import eventually
from quorum.handlers.runner import OperatorOptions
from tests.operator.conftest import MANUAL_PODS, operator_running
from tests.operator.test_synthesis_lifecycle import (
    condition,
    finish,
    index_of,
    pods,
    report_shard,
    status_of,
    synthesis_job,
)

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHILD_KINDS = (
    "deployments,services,jobs,configmaps,serviceaccounts,roles,rolebindings,replicasets,networkpolicies,secrets"
)
QUORUM = "app.kubernetes.io/managed-by=quorum"
OLD_IMAGE, NEW_IMAGE = "quorum:old-1", "quorum:new-2"
CHILDREN = 41
"""The children of examples/synthesisjob.yaml and examples/ensemblerouter.yaml before calibration (see below)."""


def _options(kubeconfig: Path, namespace: str, image: str) -> OperatorOptions:
    return OperatorOptions(
        namespaces=[namespace], kubeconfig=str(kubeconfig), image=image, pod_annotations=dict(MANUAL_PODS)
    )


def _image(pod: dict[str, Any]) -> str:
    return pod["spec"]["containers"][0]["image"]


def test_an_operator_upgrade_leaves_a_running_job_on_its_image(kube, api, namespace, kubeconfig):
    with operator_running(_options(kubeconfig, namespace, OLD_IMAGE)):
        kube.apply(synthesis_job(namespace))
        workers = eventually(lambda: len(p := pods(api, namespace, "synthesis-worker")) == 2 and p, what="workers")
        assert {_image(p) for p in workers} == {OLD_IMAGE}
        assert eventually(lambda: status_of(api, namespace).get("image")) == OLD_IMAGE
    with operator_running(_options(kubeconfig, namespace, NEW_IMAGE)):
        for pod, accepted in zip(workers, (3, 4), strict=True):
            report_shard(kube, namespace, index_of(pod), accepted, generated=5)
            finish(api, pod, succeeded=True)
        merge = eventually(lambda: pods(api, namespace, "synthesis-merge"), what="merge pod")[0]
        assert _image(merge) == OLD_IMAGE
        finish(api, merge, succeeded=True, message=json.dumps({"records": 7}))
        done = eventually(lambda: condition(s := status_of(api, namespace), "Succeeded").get("status") == "True" and s)
    assert done["image"] == OLD_IMAGE and done["output"]["records"] == 7
    assert (done.get("lastError") or {}).get("reason") != "SpecChangeRefused"
    events = kube.get("events", None, "--field-selector=involvedObject.name=sj")["items"]
    assert not [e for e in events if e["reason"] == "SpecChangeRefused"]


def _router(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "EnsembleRouter",
        "metadata": {"name": "er", "namespace": namespace},
        "spec": {
            "models": [{"name": "sim", "model": "org/sim"}],
            "calibration": {"dataset": {"uri": "configmap://calib/calib.jsonl"}, "clusters": 2},
        },
    }


def test_deleting_resources_with_the_operator_stopped_completes(kube, api, namespace, start_operator):
    served = synthesis_job(namespace, models=[{"name": "sim", "model": "org/sim"}])
    with start_operator():
        kube.apply([served, _router(namespace)])
        eventually(lambda: condition(status_of(api, namespace), "Reconciling"), what="status")
        eventually(lambda: len(kube.get(CHILD_KINDS, None, "-l", QUORUM)["items"]) >= 10, what="children")
    for kind, name in (("sjob", "sj"), ("ensr", "er")):
        assert not kube.get(kind, name)["metadata"].get("finalizers")
    started = time.monotonic()
    kube.delete("sjob", "sj", timeout=30)
    kube.delete("ensr", "er", timeout=30)
    assert time.monotonic() - started < 30
    eventually(lambda: not kube.get(CHILD_KINDS, None, "-l", QUORUM)["items"], timeout=90, what="garbage collection")


def _example(name: str, namespace: str) -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / name).read_text())
    document["metadata"]["namespace"] = namespace
    return document


def _stem(name: str) -> str:
    """A child's name without its last `-` segment: the content hash of a child's name, a ReplicaSet's pod
    template hash or a generated suffix. Two objects of one kind and stem are the same child made twice."""
    return name.rsplit("-", 1)[0]


def _child_identities(kube) -> Counter:
    """(kind, parent, component, model, stem) of every child: each must occur once. The stem tells apart the
    children that share their labels (the NetworkPolicies of one resource's models, its generated Secrets)."""
    items = kube.get(CHILD_KINDS, None, "-l", QUORUM)["items"]
    keys = Counter()
    for item in items:
        labels = item["metadata"]["labels"]
        parent = labels.get("quorum.dev/synthesisjob") or labels.get("quorum.dev/ensemblerouter")
        component, model = labels.get("app.kubernetes.io/component"), labels.get("quorum.dev/model")
        keys[(item["kind"], parent, component, model, _stem(item["metadata"]["name"]))] += 1
    return keys


def test_an_operator_killed_again_and_again_creates_no_duplicate_children(kube, namespace, kubeconfig):
    command = [sys.executable, "-m", "quorum.cli.main", "operator", "run", "-n", namespace]
    command += ["--kubeconfig", str(kubeconfig), "--image", "quorum:test"]
    kube.apply([_example("synthesisjob.yaml", namespace), _example("ensemblerouter.yaml", namespace)])
    rng = random.Random(7)
    kills = 8
    for _ in range(kills):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
        time.sleep(rng.uniform(1.5, 5.0))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # SynthesisJob: SA, Role, RoleBinding, ConfigMap, model-key Secret,
        #   3 × (Deployment, Service, ReplicaSet, NetworkPolicy) = 17;
        # EnsembleRouter: 2 SAs, Role, RoleBinding, 2 ConfigMaps, model-key Secret, calibration NetworkPolicy,
        #   4 × (Deployment, Service, ReplicaSet, NetworkPolicy) = 24
        eventually(lambda: sum(_child_identities(kube).values()) >= CHILDREN, timeout=90, what="every child")
        time.sleep(5)
        identities = _child_identities(kube)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    duplicates = {key: n for key, n in identities.items() if n > 1}
    by_kind = Counter(kind for kind, *_ in identities.elements())
    print(
        f"\noperator killed {kills} times: {sum(identities.values())} children ({dict(sorted(by_kind.items()))}), "
        f"{len(duplicates)} duplicated"
    )
    assert duplicates == {} and sum(identities.values()) == CHILDREN
    assert by_kind["NetworkPolicy"] == 8 and by_kind["Secret"] == 2
