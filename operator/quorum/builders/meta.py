"""Names, labels, owner references and pod hardening shared by every child Quorum creates."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from quorum.api.resources import API_VERSION

MANAGED_BY = "quorum"
FIELD_MANAGER = "quorum-operator"
DEFAULT_IMAGE = "quorum-dev/quorum:0.1.0"
"""Image of the workers, the calibration Job and the router when the spec names none and the operator was given
no `--image`: the worker/router image (the operator itself runs from quorum-operator, images/README.md)."""

APPLIED_HASH_ANNOTATION = "quorum.dev/applied-hash"
"""Hash of the manifest the operator last applied to a child: an unchanged child is not applied again."""

LABEL_SYNTHESISJOB = "quorum.dev/synthesisjob"
LABEL_ENSEMBLEROUTER = "quorum.dev/ensemblerouter"
LABEL_MODEL = "quorum.dev/model"
LABEL_SHARED_MODEL = "quorum.dev/shared-model"
"""The `Model` resource a child belongs to (`quorum.dev/model` is the model's name within its parent)."""
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"

PARENT_LABEL = {"SynthesisJob": LABEL_SYNTHESISJOB, "EnsembleRouter": LABEL_ENSEMBLEROUTER, "Model": LABEL_SHARED_MODEL}


@dataclass(frozen=True)
class Owner:
    """The custom resource children belong to: what owner references and labels are made from.

    Deliberately not the whole object: children must never inherit the parent's labels (GitOps tools such as
    Argo CD would then treat them as their own and prune them).
    """

    kind: str
    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, body: Any) -> Owner:
        metadata = body["metadata"]
        return cls(kind=body["kind"], name=metadata["name"], namespace=metadata["namespace"], uid=metadata["uid"])

    @property
    def parent_label(self) -> str:
        return PARENT_LABEL[self.kind]

    def selector(self, component: str, model: str | None = None) -> dict[str, str]:
        """The labels that identify one component's pods; stable, so Deployment selectors never change."""
        labels = {self.parent_label: self.name, LABEL_COMPONENT: component}
        if model is not None:
            labels[LABEL_MODEL] = model
        return labels

    def labels(self, component: str, model: str | None = None) -> dict[str, str]:
        return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_NAME: "quorum", **self.selector(component, model)}

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def metadata(self, name: str, component: str, model: str | None = None) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": self.labels(component, model),
            "ownerReferences": [self.reference()],
        }


def short_hash(value: Any, length: int = 8) -> str:
    """A stable hash of JSON-able data, for fingerprints and content-addressed child names."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


MAX_CHILD_NAME = 63
CHILD_HASH_LENGTH = 5


def child_name(owner: Owner, *parts: str, model: str | None = None) -> str:
    """The one naming rule of every child: `<resource>-<parts>-<hash>`, the hash over (kind, resource, parts)
    and, for a model's children, over the model name as a separate field (a model named `router` is not the
    router).

    Why the hash: plain concatenation collides. A SynthesisJob and an EnsembleRouter both named `same` would
    share `same-config`; an EnsembleRouter's model named `router` would be its router; `a` + model `b-c` and
    `a-b` + model `c` would both be `a-b-c`. The hash tells all of those apart while the readable part stays
    for `kubectl get`. Names stay DNS labels within 63 characters (the API caps resource names at 30 and model
    names at 24), so they are valid for every kind, Services included.
    """
    digest = short_hash([owner.kind, owner.name, model, *parts], CHILD_HASH_LENGTH)
    readable = "-".join([owner.name, *([model] if model is not None else []), *parts])[
        : MAX_CHILD_NAME - CHILD_HASH_LENGTH - 1
    ].rstrip("-")
    return f"{readable}-{digest}"


def controller_of(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The owner reference with `controller: true` of an existing object, if any."""
    for reference in ((obj or {}).get("metadata") or {}).get("ownerReferences") or []:
        if reference.get("controller"):
            return reference
    return None


def foreign_controller(obj: dict[str, Any] | None, owner: Owner) -> str:
    """Who else controls `obj` (`Kind/name`), or "" when it is absent or ours. An object that another owner
    controls — or that no one does, created by hand — is never adopted or overwritten."""
    if obj is None:
        return ""
    reference = controller_of(obj)
    if reference is None:
        return "nobody (created outside Quorum)"
    if reference.get("uid") == owner.uid:
        return ""
    return f"{reference.get('kind')}/{reference.get('name')}"


POD_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}

CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}

TMP_VOLUME = {"name": "tmp", "emptyDir": {}}
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}
"""A writable /tmp: the root filesystem is read-only, and Python, torch and vLLM all want scratch space."""


def with_pod_annotations(manifest: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    """Add operator-wide pod annotations (e.g. a mesh or scheduler opt-out) to a Deployment or Job template."""
    if annotations and manifest["kind"] in ("Deployment", "Job"):
        template = manifest["spec"]["template"].setdefault("metadata", {})
        template["annotations"] = {**template.get("annotations", {}), **annotations}
    return manifest
