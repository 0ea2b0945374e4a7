"""The chart's ValidatingAdmissionPolicy on the real API server: creating a SynthesisJob or EnsembleRouter
grants nothing its author does not already have. A user allowed to create them but not to read a Secret or
ConfigMap they reference is refused (the message names the field); with `get` on it too, the same object is
admitted. Foreign images, `file://` locations and `s3://` calibration data are refused the same way."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from e2e.kube import Kube, KubectlError, eventually
from quorum.api.common import VLLM_IMAGE
from tests.charts.helm import OPERATOR_CHART, Helm, find
from tests.operator.test_synthesis_lifecycle import synthesis_job

pytestmark = pytest.mark.cluster

AUTHOR, READER = "alice", "bob"
SEEDS_ONLY = [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["seeds"], "verbs": ["get"]}]
"""Both users may read the seeds ConfigMap of `synthesis_job` and no other ConfigMap."""


def install_policy(helm: Helm, kube: Kube, namespace: str) -> None:
    rendered = helm.template(OPERATOR_CHART, {"operator": {"watchNamespaces": [namespace]}}, namespace=namespace)
    policy = find(rendered, "ValidatingAdmissionPolicy") + find(rendered, "ValidatingAdmissionPolicyBinding")
    assert len(policy) == 2
    kube.apply(policy)


def grant(kube: Kube, namespace: str, user: str, name: str, rules: list[dict[str, Any]]) -> None:
    meta = {"name": name, "namespace": namespace}
    kube.apply(
        [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
            },
        ]
    )


def job_with_secret(namespace: str, name: str, **overrides: Any) -> dict[str, Any]:
    job = synthesis_job(namespace, name, **overrides)
    job["spec"]["models"][0]["endpoint"]["apiKeySecretRef"] = {"name": "tulu-api", "key": "token"}
    return job


def refusal(kube: Kube, manifest: dict[str, Any]) -> str | None:
    """The API server's message when it refuses `manifest`, None when it admits it (server-side dry run)."""
    try:
        kube.kubectl("create", "--dry-run=server", "--filename=-", input=yaml.safe_dump(manifest))
    except KubectlError as error:
        return str(error)
    return None


@pytest.fixture
def users(helm: Helm, kube: Kube, namespace: str) -> tuple[Kube, Kube]:
    install_policy(helm, kube, namespace)
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tulu-api"}, "stringData": {"token": "t"}})
    author_rules = [
        {
            "apiGroups": ["quorum.dev"],
            "resources": ["synthesisjobs", "ensemblerouters", "models"],
            "verbs": ["create", "get"],
        },
        *SEEDS_ONLY,
    ]
    grant(kube, namespace, AUTHOR, "author", author_rules)
    grant(
        kube,
        namespace,
        READER,
        "author-reader",
        [*author_rules, {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    )
    return kube.impersonate_user(AUTHOR), kube.impersonate_user(READER)


def test_the_plane_serves_validating_admission_policies(kube: Kube) -> None:
    resources = kube.kubectl("api-resources", "--api-group=admissionregistration.k8s.io", "-o", "name").stdout
    assert "validatingadmissionpolicies.admissionregistration.k8s.io" in resources.split()


def test_an_author_who_cannot_read_the_secret_is_refused_naming_the_field(users, namespace: str) -> None:
    author, _ = users
    message = eventually(lambda: refusal(author, job_with_secret(namespace, "a")), what="the policy to refuse")
    assert "spec.models[sim].endpoint.apiKeySecretRef (Secret tulu-api): you may not get this Secret" in message
    assert author.can_i("create", "synthesisjobs.quorum.dev") and not author.can_i("get", "secrets/tulu-api")


def test_an_author_who_can_read_the_secret_is_admitted(users, namespace: str) -> None:
    author, reader = users
    eventually(lambda: refusal(author, job_with_secret(namespace, "a")), what="the policy to be active")
    assert refusal(reader, job_with_secret(namespace, "b")) is None
    reader.kubectl("create", "--filename=-", input=yaml.safe_dump(job_with_secret(namespace, "b")))
    assert reader.get("synthesisjobs.quorum.dev", "b")["spec"]["models"][0]["endpoint"]["apiKeySecretRef"]


def test_images_outside_the_allow_list_and_file_locations_are_refused(users, namespace: str) -> None:
    _, reader = users
    eventually(lambda: refusal(users[0], job_with_secret(namespace, "a")), what="the policy to be active")
    foreign = synthesis_job(namespace, "c", workers={"shards": 2, "parallelism": 2, "image": "evil/miner:1.0"})
    assert "spec.workers.image: image evil/miner:1.0 is not allowed" in (refusal(reader, foreign) or "")
    allowed = synthesis_job(namespace, "d", workers={"shards": 2, "parallelism": 2, "image": "quorum-dev/quorum:0.1.0"})
    assert refusal(reader, allowed) is None
    local_file = synthesis_job(namespace, "e", seeds={"uri": "file:///etc/shadow"})
    assert "spec.seeds.uri: file:// would read" in (refusal(reader, local_file) or "")


def test_a_shared_model_with_a_foreign_vllm_image_is_refused(users, namespace: str) -> None:
    """A `Model` runs its own vLLM Deployment, so its image is judged like a model entry's."""
    _, reader = users
    eventually(lambda: refusal(users[0], job_with_secret(namespace, "a")), what="the policy to be active")

    def model(name: str, image: str) -> dict[str, Any]:
        return {
            "apiVersion": "quorum.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": "Qwen/Qwen2.5-7B-Instruct", "vllm": {"image": image}},
        }

    assert "spec.vllm.image: image evil/vllm:1.0 is not allowed" in (
        refusal(reader, model("m1", "evil/vllm:1.0")) or ""
    )
    assert refusal(reader, model("m2", VLLM_IMAGE)) is None


def ensemble_router(namespace: str, name: str, **embedding: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "models": [{"name": "sim", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "sim"}}],
        "calibration": {"dataset": {"uri": "configmap://seeds/calibration.jsonl"}, "clusters": 2},
        "embedding": embedding,
    }
    return {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "EnsembleRouter",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def test_an_embeddings_key_its_author_cannot_read_is_refused_naming_the_field(users, namespace: str) -> None:
    """The calibration and router pods send `embedding.endpoint.apiKeySecretRef` to a URL the author chose."""
    author, reader = users
    endpoint = {"url": "http://embed.example:8080/v1", "model": "e", "apiKeySecretRef": {"name": "tulu-api"}}
    router = ensemble_router(namespace, "r", endpoint=endpoint)
    message = eventually(lambda: refusal(author, router), what="the policy to refuse")
    assert "spec.embedding.endpoint.apiKeySecretRef (Secret tulu-api): you may not get this Secret" in message
    assert author.can_i("create", "ensemblerouters.quorum.dev")
    assert refusal(reader, router) is None
    assert refusal(author, ensemble_router(namespace, "plain")) is None  # no key, nothing to check


def test_a_configmap_its_author_cannot_read_is_refused_naming_the_field(users, namespace: str) -> None:
    """A `configmap://` location mounts the ConfigMap into the pods; a prompt template counts too."""
    _, reader = users
    eventually(lambda: refusal(users[0], job_with_secret(namespace, "a")), what="the policy to be active")
    assert refusal(reader, synthesis_job(namespace, "b")) is None  # its seeds ConfigMap is readable
    template = {"generate": {"templateUri": "configmap://team-prompts/generate.j2"}}
    message = refusal(reader, synthesis_job(namespace, "c", prompts=template)) or ""
    assert "spec.prompts.generate.templateUri (ConfigMap team-prompts): you may not get this ConfigMap" in message
    other_seeds = synthesis_job(namespace, "d", seeds={"uri": "configmap://kube-root-ca.crt/ca.crt"})
    assert "spec.seeds.uri (ConfigMap kube-root-ca.crt)" in (refusal(reader, other_seeds) or "")
    assert not reader.can_i("get", "configmaps/team-prompts") and reader.can_i("get", "configmaps/seeds")


def test_file_prompts_and_s3_calibration_data_are_refused(users, namespace: str) -> None:
    _, reader = users
    eventually(lambda: refusal(users[0], job_with_secret(namespace, "a")), what="the policy to be active")
    local = synthesis_job(namespace, "b", prompts={"digest": {"templateUri": "file:///etc/passwd"}})
    assert "spec.prompts.digest.templateUri: file:// would read" in (refusal(reader, local) or "")
    router = ensemble_router(namespace, "r")
    router["spec"]["calibration"]["dataset"]["uri"] = "s3://bucket/calibration.jsonl"
    message = " ".join((refusal(reader, router) or "").split())
    assert "spec.calibration.dataset.uri: s3:// calibration data is read by `quorum router calibrate`" in message
