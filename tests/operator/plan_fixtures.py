"""Building blocks of the plan tests: resources, observed children and an in-memory API server stand-in for
`execute` (the plan itself needs none of it: it is pure)."""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

from kubernetes.client.exceptions import ApiException

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.api.synthesis import SynthesisJobSpec
from quorum.builders.credentials import with_generated_value
from quorum.builders.meta import Owner
from quorum.handlers import synthesis
from quorum.handlers.context import OperatorContext

SJOB_OWNER = Owner(kind="SynthesisJob", name="sj", namespace="ns", uid="uid-sj")
ENSR_OWNER = Owner(kind="EnsembleRouter", name="er", namespace="ns", uid="uid-er")
NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
OLD_IMAGE, NEW_IMAGE = "quorum-dev/quorum:0.1.0", "quorum-dev/quorum:0.2.0"


def sjob_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "models": [
            {"name": "ext", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "sim"}},
            {"name": "served", "model": "org/model", "vllm": {"gpuMemoryUtilization": 0.9}},
        ],
        "seeds": {"uri": "configmap://seeds/seeds.jsonl"},
        "generation": {"target": 8, "rounds": 1},
        "review": {"reviewers": 1, "allowSameModel": True},
        "output": {"uri": "pvc://results/run"},
        "workers": {"shards": 2, "parallelism": 2},
    }
    spec.update(overrides)
    return spec


def ensr_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "models": [{"name": "ext", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "sim"}}],
        "calibration": {"dataset": {"uri": "configmap://calib/calib.jsonl"}, "clusters": 2},
    }
    spec.update(overrides)
    return spec


def owned(owner: Owner, status: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """An existing child controlled by `owner`."""
    reference = {"kind": owner.kind, "name": owner.name, "uid": owner.uid, "controller": True}
    return {"metadata": {"ownerReferences": [reference]}, "status": status or {}, **extra}


def job_done(owner: Owner, condition: str, succeeded: int = 0) -> dict[str, Any]:
    return owned(owner, {"succeeded": succeeded, "conditions": [{"type": condition, "status": "True"}]})


def synthesis_job(spec: dict[str, Any], previous: dict[str, Any] | None = None, image: str = NEW_IMAGE) -> Any:
    parsed = synthesis.resolve_image(SynthesisJobSpec.model_validate(spec), previous or {}, image)
    return synthesis.Job(SJOB_OWNER, parsed, previous or {}, NOW - datetime.timedelta(minutes=5), NOW)


def ensemble_spec(spec: dict[str, Any]) -> EnsembleRouterSpec:
    parsed = EnsembleRouterSpec.model_validate(spec)
    return parsed.model_copy(update={"router": parsed.router.model_copy(update={"image": NEW_IMAGE})})


def conditions(plan: Any) -> dict[str, tuple[bool | None, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in plan.conditions}


def applied(plan: Any) -> set[tuple[str, str]]:
    return {(m["kind"], m["metadata"]["name"]) for m in plan.applies}


class FakeKube:
    """The few calls `execute` and `observe` make, over a dict; `refuse` makes the next apply of a kind fail
    with the given HTTP status, as the API server would."""

    def __init__(self, objects: dict[tuple[str, str, str], dict[str, Any]] | None = None) -> None:
        self.objects = objects or {}
        self.refuse: dict[str, tuple[int, str]] = {}
        self.status_patches: list[dict[str, Any]] = []
        self.applied: list[dict[str, Any]] = []

    def apply(self, manifest: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        if manifest["kind"] in self.refuse:
            code, message = self.refuse[manifest["kind"]]
            error = ApiException(status=code, reason="Invalid")
            error.body = json.dumps({"message": message})
            raise error
        self.applied.append(manifest)
        if dry_run:
            return manifest
        self.objects[(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])] = manifest
        return manifest

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        key = (manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])
        if key in self.objects:
            error = ApiException(status=409, reason="AlreadyExists")
            error.body = json.dumps({"message": f'{manifest["kind"]} "{key[2]}" already exists'})
            raise error
        return self.apply(manifest)

    def create_once(self, manifest: dict[str, Any]) -> None:
        """A generated Secret: created with its value when absent, an existing one left alone (never read)."""
        if (manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"]) not in self.objects:
            self.apply(with_generated_value(manifest))

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((api_version, kind, name))
        return copy.deepcopy(found) if found is not None else None

    def read(
        self, api_version: str, kind: str, namespace: str, name: str, at_least: str | None = None
    ) -> dict[str, Any] | None:
        return self.get(api_version, kind, namespace, name)

    def list(self, api_version: str, kind: str, namespace: str | None, labels: dict[str, str]) -> list[Any]:
        return [
            copy.deepcopy(obj)
            for (version, obj_kind, _name), obj in self.objects.items()
            if (version, obj_kind) == (api_version, kind)
            and labels.items() <= ((obj.get("metadata") or {}).get("labels") or {}).items()
        ]

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        return self.objects.pop((api_version, kind, name), None) is not None

    def patch_merge(self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.objects[(api_version, kind, name)]["spec"].update(patch["spec"])

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.status_patches.append(status)
        self.objects[(api_version, kind, name)]["status"] = {
            **self.objects[(api_version, kind, name)].get("status", {}),
            **status,
        }


def fake_context(kube: FakeKube, events: list[tuple[str, str, str]], image: str = NEW_IMAGE) -> OperatorContext:
    """The operator's context over `kube`; `image` is the operator's default image (its `--image`)."""
    post = lambda body, t, r, m: events.append((t, r, m))  # noqa: E731
    return OperatorContext(kube=kube, image=image, post_event=post)  # type: ignore[arg-type]


def resource(kind: str, spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    owner = SJOB_OWNER if kind == "SynthesisJob" else ENSR_OWNER
    return {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": kind,
        "metadata": {
            "name": owner.name,
            "namespace": owner.namespace,
            "uid": owner.uid,
            "generation": generation,
            "creationTimestamp": "2026-01-01T11:55:00Z",
        },
        "spec": spec,
    }
