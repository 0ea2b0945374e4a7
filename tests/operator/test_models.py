"""Shared Models without a cluster: the scaler's decision (queue depth and consumers → replicas), the split
of `maxConcurrency`, the Model's plan, and the consumers' side (`modelRef` resolved, `WaitingForModel`,
a missing Model Stalled, cleanup never touching a Model)."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from quorum.api.model import ModelReplicas, ModelSpec
from quorum.api.synthesis import SynthesisJobSpec
from quorum.builders.backends import backend_name
from quorum.builders.model import model_key, model_owner, model_url
from quorum.handlers import model as model_handler
from quorum.handlers.register import reconcile_object
from quorum.handlers.scaling import desired_replicas, split_budget, waiting_requests
from quorum.llm.simulated import SimReply, SimulatedBackend
from tests.operator.plan_fixtures import NOW, FakeKube, conditions, fake_context, resource, sjob_spec

BOUNDS = ModelReplicas(min=0, max=4, idle_seconds=60, target_waiting_per_replica=8)


@pytest.mark.parametrize(
    ("current", "waiting", "consumers", "idle_for", "expected", "why"),
    [
        (0, None, 1, None, 1, "a consumer scales a Model up from zero"),
        (1, 0, 2, None, 1, "no queue: one replica is enough"),
        (1, 8, 2, None, 1, "a queue at the target is not above it"),
        (1, 20, 2, None, 3, "20 waiting at 8 per replica: ceil(20/8) = 3"),
        (2, 100, 1, None, 4, "never above max"),
        (3, 0, 1, None, 3, "a drained queue does not bounce the GPUs down"),
        (None, None, 0, 10.0, None, "idle, but not for idleSeconds yet: keep"),
        (2, 50, 0, 60.0, 0, "idle for idleSeconds: down to min (zero)"),
        (2, None, 3, None, 2, "no replica answered the scrape: unchanged"),
    ],
)
def test_scaler_decides_replicas_from_queue_depth_and_consumers(current, waiting, consumers, idle_for, expected, why):
    current = 2 if current is None else current
    expected = 2 if expected is None else expected
    assert desired_replicas(BOUNDS, current, waiting, consumers, idle_for) == expected, why


def test_scaler_keeps_min_replicas_and_at_least_one_while_consumed():
    bounds = ModelReplicas(min=2, max=4, idle_seconds=0)
    assert desired_replicas(bounds, 0, None, 0, 0.0) == 2
    assert desired_replicas(ModelReplicas(min=0, max=1), 0, None, 5, None) == 1


@pytest.mark.parametrize(
    ("budget", "requested", "expected"),
    [
        (128, [32, 32, 64], [32, 32, 64]),  # everything fits: each gets what it asked for
        (64, [32, 96], [16, 48]),  # over budget: in proportion
        (10, [5, 5, 5], [4, 3, 3]),  # rounding leftovers go to the largest (first) requests
        (2, [1, 1, 1], [1, 1, 1]),  # never starved to zero
    ],
)
def test_max_concurrency_is_split_in_proportion_to_requests(budget, requested, expected):
    assert split_budget(budget, requested) == expected
    if len(requested) <= budget:
        assert sum(split_budget(budget, requested)) <= budget


def test_queue_depth_is_read_from_a_real_servers_metrics():
    """The simulated server queues beyond `max_running`, as vLLM's batch does, and reports it on /metrics."""

    async def slow(_request: Any) -> SimReply:
        await asyncio.sleep(0.5)
        return SimReply(text="ok")

    async def scenario() -> int:
        server = SimulatedBackend(slow, max_running=1)
        async with server, httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            body = {"model": "sim", "messages": [{"role": "user", "content": "hi"}]}
            calls = [asyncio.create_task(client.post("/v1/chat/completions", json=body)) for _ in range(4)]
            await asyncio.sleep(0.2)
            text = (await client.get("/metrics")).text
            await asyncio.gather(*calls)
            return waiting_requests(text)

    waiting = asyncio.run(scenario())
    assert waiting == 3
    assert desired_replicas(ModelReplicas(max=4, target_waiting_per_replica=1), 1, waiting, 1, None) == 3


def test_waiting_requests_sums_samples_and_ignores_other_metrics():
    text = (
        "# TYPE vllm:num_requests_waiting gauge\n"
        'vllm:num_requests_waiting{model_name="a"} 3.0\n'
        'vllm:num_requests_running{model_name="a"} 9.0\n'
        'vllm:num_requests_waiting{model_name="b"} 2.0\n'
    )
    assert waiting_requests(text) == 5
    assert waiting_requests("") == 0


def model_body(name: str = "qwen", status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1},
        "spec": {"model": "Qwen/Qwen2.5-7B-Instruct", "replicas": {"min": 0, "max": 2, "idleSeconds": 60}, **spec},
        "status": status or {},
    }


def view(body: dict[str, Any], now: datetime.datetime = NOW) -> model_handler.ModelView:
    owner = model_owner("ns", body["metadata"]["name"], body["metadata"]["uid"])
    return model_handler.ModelView(owner, ModelSpec.model_validate(body["spec"]), body["status"], now)


def test_model_plan_scales_up_for_consumers_and_splits_their_budget():
    consumers = [model_handler.Consumer("EnsembleRouter", "er", 200), model_handler.Consumer("SynthesisJob", "sj", 56)]
    plan = model_handler.plan(view(model_body(maxConcurrency=128)), model_handler.Observed(consumers=consumers))
    kinds = {m["kind"]: m for m in plan.applies}
    assert sorted(kinds) == ["Deployment", "NetworkPolicy", "Secret", "Service"]
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 1
    # Only the consumers' model-calling pods (and the operator's scraper) reach the server, with the Model's key.
    peers = kinds["NetworkPolicy"]["spec"]["ingress"][0]["from"]
    assert [p["podSelector"]["matchLabels"] for p in peers[:2]] == [
        {"quorum.dev/ensemblerouter": "er"},
        {"quorum.dev/synthesisjob": "sj"},
    ]
    assert kinds["Secret"]["metadata"]["annotations"]["quorum.dev/create-only"] == "true"
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "Model"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert (
        container["securityContext"]["readOnlyRootFilesystem"] and "startupProbe" in container
    )  # the inline hardening
    assert [c["granted"] for c in plan.status["consumers"]] == [100, 28]
    assert plan.status["url"] == model_url("ns", "qwen") and plan.status["consumerCount"] == 2
    assert conditions(plan)["Ready"][:2] == (False, "Scaling") and plan.outcome.waiting


def test_model_plan_keeps_replicas_through_idle_seconds_then_scales_to_zero():
    owner = model_owner("ns", "qwen", "uid-qwen")
    deployment = {
        "metadata": {"ownerReferences": [{"kind": "Model", "name": "qwen", "uid": "uid-qwen", "controller": True}]},
        "spec": {"replicas": 1},
        "status": {"readyReplicas": 1},
    }
    children = {("apps/v1", "Deployment", backend_name(owner, "qwen")): deployment}
    fresh = model_handler.plan(view(model_body()), model_handler.Observed(children=children))
    assert (
        next(m for m in fresh.applies if m["kind"] == "Deployment")["spec"]["replicas"] == 1
        and fresh.status["idleSince"] == "2026-01-01T12:00:00Z"
    )
    assert conditions(fresh)["Ready"][0] is True and 59 <= fresh.outcome.delay <= 60
    later = model_handler.plan(
        view(model_body(status={"idleSince": "2026-01-01T11:58:00Z"})), model_handler.Observed(children=children)
    )
    assert next(m for m in later.applies if m["kind"] == "Deployment")["spec"]["replicas"] == 0
    assert conditions(later)["Ready"][:2] == (False, "ScaledToZero") and later.status["phase"] == "ScaledToZero"
    assert ("Normal", "Scaled", "replicas 1 -> 0 (0 consumers)") in later.events


def referencing_sjob(**overrides: Any) -> dict[str, Any]:
    return resource("SynthesisJob", sjob_spec(models=[{"name": "q", "modelRef": {"name": "qwen"}}], **overrides))


def test_a_missing_model_stalls_the_consumer_naming_it():
    kube = FakeKube({("quorum.dev/v1alpha1", "SynthesisJob", "sj"): referencing_sjob()})
    reconcile_object(fake_context(kube, []), "synthesisjobs", "ns", "sj")
    status = kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")]["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "ModelNotFound" and "Model qwen" in stalled["message"]


def test_a_consumer_waits_for_its_model_then_runs_on_it_without_a_deployment_of_its_own():
    kube = FakeKube(
        {
            ("quorum.dev/v1alpha1", "SynthesisJob", "sj"): referencing_sjob(),
            ("quorum.dev/v1alpha1", "Model", "qwen"): model_body(),
        }
    )
    ctx = fake_context(kube, [])
    reconcile_object(ctx, "synthesisjobs", "ns", "sj")
    status = kube.objects[("quorum.dev/v1alpha1", "SynthesisJob", "sj")]["status"]
    backends = next(c for c in status["conditions"] if c["type"] == "BackendsReady")
    assert (backends["status"], backends["reason"]) == ("False", "WaitingForModel")
    assert not any(m["kind"] == "Deployment" for m in kube.applied)
    # The Model counts the job and is ready: the job's workers start, configured with the Model's URL and the
    # job's share of maxConcurrency per worker pod.
    kube.objects[("quorum.dev/v1alpha1", "Model", "qwen")]["status"] = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "consumers": [{"kind": "SynthesisJob", "name": "sj", "requested": 64, "granted": 20}],
    }
    reconcile_object(ctx, "synthesisjobs", "ns", "sj")
    kinds = [m["kind"] for m in kube.applied]
    assert "Job" in kinds and "Deployment" not in kinds
    config = [m for m in kube.applied if m["kind"] == "ConfigMap"][-1]
    text = next(iter(config["data"].values()))
    assert model_url("ns", "qwen") in text and "maxConcurrency: 10" in text  # 20 granted over 2 worker pods
    assert model_key("ns", "qwen").name in text  # the workers send the Model's generated key


def test_model_consumers_are_the_unfinished_resources_that_reference_it():
    sj = referencing_sjob()
    done = referencing_sjob()
    done["metadata"]["name"] = "done"
    done["status"] = {"conditions": [{"type": "Succeeded", "status": "True"}]}
    kube = FakeKube({("quorum.dev/v1alpha1", "SynthesisJob", n["metadata"]["name"]): n for n in (sj, done)})
    consumers = model_handler.consumers_of(fake_context(kube, []), "ns", "qwen")
    assert consumers == [model_handler.Consumer("SynthesisJob", "sj", 64)]  # 32 per worker x 2 in parallel


def test_a_model_entry_sets_exactly_one_of_model_endpoint_and_model_ref():
    both = {"name": "q", "model": "org/m", "modelRef": {"name": "qwen"}}
    with pytest.raises(ValidationError, match="exactly one of model"):
        SynthesisJobSpec.model_validate(sjob_spec(models=[both]))
    with pytest.raises(ValidationError, match="only to models that this resource deploys"):
        SynthesisJobSpec.model_validate(sjob_spec(models=[{"name": "q", "modelRef": {"name": "x"}, "vllm": {}}]))


def test_three_consumers_of_three_models_need_nine_gpu_deployments_inline_and_three_shared():
    """The issue's figure, from the builders: inline, each consumer deploys each model; shared, the Models do."""
    from quorum.api.ensemble import EnsembleRouterSpec
    from quorum.builders.ensemble import router_children
    from quorum.builders.model import model_manifests
    from quorum.builders.synthesis import synthesis_children
    from quorum.handlers.shared_models import resolve
    from tests.operator.plan_fixtures import ENSR_OWNER, SJOB_OWNER, ensr_spec

    names = ("alpha", "beta", "gamma")
    inline = [{"name": n, "model": f"org/{n}"} for n in names]
    shared = [{"name": n, "modelRef": {"name": n}} for n in names]

    def gpu_deployments(manifests: list[dict[str, Any]]) -> int:
        return sum(m["kind"] == "Deployment" and "nvidia.com/gpu" in json.dumps(m) for m in manifests)

    def consumers(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
        specs = [SynthesisJobSpec.model_validate(sjob_spec(models=models)) for _ in range(2)]
        router = EnsembleRouterSpec.model_validate(ensr_spec(models=models))
        if models is shared:
            bodies = {n: model_body(n, {"consumers": []}, model=n) for n in names}
            specs = [resolve("SynthesisJob", "sj", s, bodies, "ns").spec for s in specs]
            router = resolve("EnsembleRouter", "er", router, bodies, "ns").spec
        return [m for s in specs for m in synthesis_children(SJOB_OWNER, s)] + router_children(ENSR_OWNER, router)

    assert gpu_deployments(consumers(inline)) == 9
    models = [m for n in names for m in model_manifests(model_owner("ns", n), ModelSpec(model=n), 1)]
    assert gpu_deployments(consumers(shared)) == 0 and gpu_deployments(models) == 3
