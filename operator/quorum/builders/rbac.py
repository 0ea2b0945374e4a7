"""Service accounts and RBAC, least privilege per component.

`OPERATOR_RULES` is the single list of what the operator itself may do; the Helm chart renders exactly these
rules (as a Role per watched namespace, or a ClusterRole when cluster-wide), and the cluster tests check them
with `kubectl auth can-i`. Workers get their own ServiceAccount per SynthesisJob that may only read and patch
the status of that one SynthesisJob; the calibration Job may only fill its own artifact ConfigMap; the router
gets a ServiceAccount with no token mounted and no rules at all.
"""

from __future__ import annotations

from typing import Any

from quorum.api.resources import GROUP
from quorum.builders.meta import Owner

APPLY = ["create", "patch"]
"""Server-side apply: `patch`, plus `create` when the object does not exist yet. Never `update` (a PUT would
replace fields other managers own)."""

OPERATOR_RULES: list[dict[str, Any]] = [
    # The custom resources: read and watch them, patch metadata (finalizer, kopf's progress annotations). A
    # shared Model is read by its consumers' reconciles and lists them in its status; never created or deleted.
    {
        "apiGroups": [GROUP],
        "resources": ["synthesisjobs", "ensemblerouters", "models"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": [GROUP],
        "resources": ["synthesisjobs/status", "ensemblerouters/status", "models/status"],
        "verbs": ["get", "patch"],
    },
    # Every child kind is listed and watched, labelled `app.kubernetes.io/managed-by=quorum`, into the child
    # cache the reconciles read (handlers/informer.py); Deployments, Jobs and pods also drive reconciles.
    # Deployments and Jobs are read back and deleted: model Deployments when a job ends
    # (`backends.deleteOnCompletion`), worker and stale calibration Jobs.
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", *APPLY, "delete"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", *APPLY, "delete"]},
    # Model Services go with their Deployments; artifact ConfigMaps are read (the summary) and replaced.
    {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": ["get", "list", "watch", *APPLY, "delete"]},
    # Children only observed (the child cache) and applied; they go with their owner (garbage collection),
    # never deleted by the operator.
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["list", "watch", *APPLY]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["list", "watch", *APPLY]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["list", "watch", *APPLY]},
    # Per-resource Roles for workers and calibration; the operator holds every permission it grants, so it
    # needs neither `escalate` nor `bind`.
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "rolebindings"],
        "verbs": ["list", "watch", *APPLY],
    },
    # The generated model keys and router tokens: created once, never listed, read, updated or deleted.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
    # Worker pods are only read: failure reasons and termination messages (the merge and calibration results).
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    # One-line events: one per status write that flips conditions, and the plans' own.
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
]
"""What stays broad, and why: RBAC cannot name objects by owner or label, and child names are derived from the
users' resource names, so `resourceNames` cannot list them in advance. `patch` therefore covers every
Deployment, Job, Service, ConfigMap, ServiceAccount, HPA, NetworkPolicy, Role and RoleBinding of a watched
namespace, and `delete` every Deployment, Job, Service and ConfigMap. What RBAC can express is narrowed: no
`update` anywhere, no `delete` on kinds the operator never deletes, no `deletecollection`, Secrets
`create`-only (so the operator can read none), pods read-only."""

OPERATOR_CLUSTER_RULES: list[dict[str, Any]] = [
    # kopf's own observation, read-only and cluster-scoped even when the operator watches a few namespaces:
    # namespaces (to follow the watched ones as they come and go) and CRDs (to notice Quorum's CRDs installed
    # or upgraded after the operator started). Without them kopf retries 403s and then runs half-blind.
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
]


def service_account(owner: Owner, name: str, component: str, *, automount: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": owner.metadata(name, component),
        "automountServiceAccountToken": automount,
    }


def role_with_binding(owner: Owner, name: str, component: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Role and the RoleBinding that gives it to the ServiceAccount of the same name."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": owner.metadata(name, component),
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": owner.metadata(name, component),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
    }
    return [role, binding]


def worker_rules(owner: Owner) -> list[dict[str, Any]]:
    """Workers report `status.shards.<index>` of their own SynthesisJob by merge patch, nothing else."""
    return [
        {
            "apiGroups": [GROUP],
            "resources": ["synthesisjobs/status"],
            "resourceNames": [owner.name],
            "verbs": ["get", "patch"],
        }
    ]


def calibrator_rules(artifact_configmap: str) -> list[dict[str, Any]]:
    """Calibration writes its bundle into the one ConfigMap the operator created for it."""
    return [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [artifact_configmap],
            "verbs": ["get", "patch"],
        }
    ]
