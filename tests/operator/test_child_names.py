"""Child names cannot collide across resources, kinds or models (the three clashes found on the plane), and
every one is a DNS label within 63 characters."""

from __future__ import annotations

import re

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.api.resources import MAX_RESOURCE_NAME
from quorum.builders import ensemble, synthesis
from quorum.builders.backends import backend_name
from quorum.builders.meta import MAX_CHILD_NAME, Owner
from tests.operator.plan_fixtures import ensr_spec, sjob_spec

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def sjob(name: str) -> Owner:
    return Owner(kind="SynthesisJob", name=name, namespace="ns", uid=f"uid-{name}")


def ensr(name: str) -> Owner:
    return Owner(kind="EnsembleRouter", name=name, namespace="ns", uid=f"uid-e-{name}")


def all_names(owner: Owner, models: list[str]) -> set[tuple[str, str]]:
    """Every (kind, name) a resource of `owner` creates."""
    if owner.kind == "SynthesisJob":
        spec = synthesis.SynthesisJobSpec.model_validate(
            sjob_spec(models=[{"name": m, "model": "org/m"} for m in models])
        )
        manifests = [*synthesis.synthesis_children(owner, spec), synthesis.workers_job(owner, spec)]
        manifests.append(synthesis.merge_job(owner, spec))
    else:
        spec = EnsembleRouterSpec.model_validate(ensr_spec(models=[{"name": m, "model": "org/m"} for m in models]))
        manifests = [*ensemble.router_children(owner, spec), ensemble.calibrate_job(owner, spec)]
        manifests += ensemble.serving_children(owner, spec, "artifact", "")
    return {(m["kind"], m["metadata"]["name"]) for m in manifests}


def test_a_synthesisjob_and_an_ensemblerouter_of_the_same_name_share_no_child() -> None:
    assert not all_names(sjob("same"), ["m"]) & all_names(ensr("same"), ["m"])
    assert synthesis.config_map_name(sjob("same")) != ensemble.config_map_name(ensr("same"))


def test_an_ensemble_model_named_router_is_not_the_router() -> None:
    names = all_names(ensr("team"), ["router", "config", "calibrate"])
    deployments = [name for kind, name in names if kind == "Deployment"]
    assert len(deployments) == len(set(deployments)) == 4
    assert backend_name(ensr("team"), "router") != ensemble.router_name(ensr("team"))


def test_resource_and_model_names_that_concatenate_alike_do_not_collide() -> None:
    assert backend_name(sjob("a"), "b-c") != backend_name(sjob("a-b"), "c")
    assert not all_names(sjob("a"), ["b-c"]) & all_names(sjob("a-b"), ["c"])


def test_the_longest_names_stay_dns_labels_within_63_characters() -> None:
    longest_model = "m" * 24
    for owner in (sjob("a" * MAX_RESOURCE_NAME), ensr("z" * MAX_RESOURCE_NAME)):
        for _kind, name in all_names(owner, [longest_model, "x"]):
            assert len(name) <= MAX_CHILD_NAME and DNS_1035.match(name), name


def test_names_are_stable_and_readable() -> None:
    assert backend_name(sjob("math"), "qwen") == backend_name(sjob("math"), "qwen")
    assert backend_name(sjob("math"), "qwen").startswith("math-qwen-")
    assert synthesis.workers_name(sjob("math")).startswith("math-workers-")


def test_a_claim_name_with_a_dot_still_gives_a_valid_volume_name() -> None:
    from quorum.builders.storage import PodStorage

    storage = PodStorage()
    assert storage.localize("pvc://my.claim/seeds.jsonl") == "file:///data/pvc/my.claim/seeds.jsonl"
    [volume] = storage.volume_list()
    assert DNS_1035.match(volume["name"]) and volume["persistentVolumeClaim"]["claimName"] == "my.claim"
