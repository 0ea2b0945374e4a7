"""On the real control plane with the operator running: 320 invalid or hostile resources made by mutating
the examples. Each one is either rejected at admission or shows `Stalled` within 10 s, either way naming the
very field that was mutated or its parent (`FuzzSpec.names_field`: another field does not count), or runs
with a status that says what it is doing; none loops silently with a blank status.
`quorum validate` (the pydantic models) is held to the API server's verdicts on the same documents."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from quorum.api import parse_resource
from quorum.api.resources import API_VERSION
from quorum.handlers.plan import api_error_message
from tests.operator.fuzz_specs import FuzzSpec, fuzz_specs

pytestmark = pytest.mark.cluster

BATCH = 8
VERDICT_SECONDS = 10.0


def _create(api, namespace: str, spec: FuzzSpec) -> str | None:
    """The API server's rejection message, or None when it admitted the resource."""
    resource = api.dynamic.resources.get(api_version=API_VERSION, kind=spec.document["kind"])
    try:
        resource.create(body=spec.document, namespace=namespace)
    except ApiException as error:
        return api_error_message(error)
    return None


def _validate_rejects(spec: FuzzSpec) -> bool:
    try:
        parse_resource(spec.document)
    except ValidationError:
        return True
    return False


def _status(api, namespace: str, spec: FuzzSpec) -> Any:
    found = api.get(API_VERSION, spec.document["kind"], namespace, spec.document["metadata"]["name"]) or {}
    return found.get("status")


def _metrics() -> str:
    from prometheus_client import REGISTRY, generate_latest

    text = generate_latest(REGISTRY).decode()
    return " ".join(line for line in text.splitlines() if line.startswith("quorum_operator") and "_bucket" not in line)


def _verdict(obj: dict[str, Any]) -> tuple[str, str] | None:
    conditions = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
    if conditions.get("Stalled", {}).get("status") == "True":
        return "stalled", conditions["Stalled"].get("message", "")
    if "Reconciling" in conditions and "Ready" in conditions:
        return "ran", conditions["Ready"].get("reason", "")
    return None


def _await_verdicts(api, namespace: str, admitted: dict[str, tuple[FuzzSpec, float]]) -> dict[str, tuple[str, str]]:
    verdicts: dict[str, tuple[str, str]] = {}
    while len(verdicts) < len(admitted):
        for kind in ("SynthesisJob", "EnsembleRouter"):
            for obj in api.list(API_VERSION, kind, namespace, {}):
                name = obj["metadata"]["name"]
                if name in admitted and name not in verdicts and (verdict := _verdict(obj)):
                    verdicts[name] = verdict
        late = [n for n, (_, t) in admitted.items() if n not in verdicts and time.monotonic() - t > VERDICT_SECONDS]
        lines = [f"{admitted[n][0].id}: {_status(api, namespace, admitted[n][0])}" for n in late]
        assert not late, f"no Stalled and no status within {VERDICT_SECONDS}s: {'; '.join(lines)} | {_metrics()}"
        time.sleep(0.3)
    return verdicts


def test_every_hostile_spec_is_rejected_or_stalled_naming_the_field(api, namespace, start_operator, capsys):
    specs = fuzz_specs()
    assert len(specs) >= 300
    counts = {"rejected": 0, "stalled": 0, "ran": 0}
    unnamed, disagreements, stalled = [], [], []
    started = time.monotonic()
    with start_operator():
        for offset in range(0, len(specs), BATCH):
            admitted: dict[str, tuple[FuzzSpec, float]] = {}
            for spec in specs[offset : offset + BATCH]:
                rejection = _create(api, namespace, spec)
                if (rejection is not None) != _validate_rejects(spec):
                    disagreements.append((spec.id, rejection))
                if rejection is None:
                    admitted[spec.document["metadata"]["name"]] = (spec, time.monotonic())
                    continue
                counts["rejected"] += 1
                if spec.field not in rejection or not spec.names_field(rejection):
                    unnamed.append((spec.id, rejection[:300]))
            for name, (kind, detail) in _await_verdicts(api, namespace, admitted).items():
                counts[kind] += 1
                spec = admitted[name][0]
                if kind == "stalled" and not spec.names_field(detail):
                    unnamed.append((spec.id, detail[:300]))
                if kind == "stalled":
                    stalled.append(f"{spec.id} ({detail[:80]})")
                api.delete(API_VERSION, spec.document["kind"], namespace, name)
    with capsys.disabled():
        print(f"\nfuzz: {len(specs)} specs in {time.monotonic() - started:.0f}s: {counts}; validate disagrees on "
              f"{len(disagreements)}; stalled: {'; '.join(stalled)}")  # fmt: skip
    assert unnamed == [], unnamed
    assert disagreements == [], disagreements
