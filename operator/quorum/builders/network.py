"""NetworkPolicies: who may reach a resource's model backends, and where its calibration pod (which runs
model-written code) may connect to.

- Each vLLM backend accepts traffic on its port only from its own resource's pods that call models (a
  SynthesisJob's workers and merge, an EnsembleRouter's calibration and router), never from the rest of the
  namespace or cluster; it also requires the generated API key (builders/credentials.py).
- The calibration pod may reach DNS, its own backends, the ports of its external endpoints (model endpoints and
  the embeddings endpoint) and the API server (to fill its artifact ConfigMap), nothing else. Graded code itself
  has no sockets at all (the seccomp filters of routing/sandbox.py); this is the second wall. Destinations of
  external endpoints and of the API server are not known as pod selectors, so those rules name ports only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from quorum.builders.backends import BACKEND_COMPONENT, VLLM_PORT, backend_name
from quorum.builders.meta import LABEL_COMPONENT, Owner

API_SERVER_PORTS = (443, 6443)
DNS_PORTS = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]


def _policy(owner: Owner, name: str, component: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": owner.metadata(name, component),
        "spec": spec,
    }


def clients_of(owner: Owner, components: list[str]) -> dict[str, Any]:
    """A peer: the pods of `owner` whose component is one of `components`."""
    return {
        "podSelector": {
            "matchLabels": {owner.parent_label: owner.name},
            "matchExpressions": [{"key": LABEL_COMPONENT, "operator": "In", "values": sorted(components)}],
        }
    }


def backend_policies(owner: Owner, models: list[Any], clients: list[str]) -> list[dict[str, Any]]:
    """One ingress policy per served model: only `clients` of the same resource, only the vLLM port."""
    return [
        _policy(
            owner,
            backend_name(owner, entry.name),
            BACKEND_COMPONENT,
            {
                "podSelector": {"matchLabels": owner.selector(BACKEND_COMPONENT, entry.name)},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [clients_of(owner, clients)], "ports": [{"port": VLLM_PORT, "protocol": "TCP"}]}],
            },
        )
        for entry in models
        if entry.deployed
    ]


def endpoint_ports(endpoints: list[Any]) -> list[int]:
    """TCP ports of external endpoints (80/443 when the URL names none)."""
    ports = set()
    for endpoint in endpoints:
        url = urlsplit(endpoint.url)
        ports.add(url.port or (443 if url.scheme == "https" else 80))
    return sorted(ports)


def egress_only_to_backends(
    owner: Owner, name: str, component: str, models: list[Any], endpoints: list[Any] | None = None
) -> dict[str, Any]:
    """Egress of `component`'s pods: DNS, this resource's backends, the API server, and the ports of every
    external endpoint it calls: the models' own and `endpoints` (servers other than models, such as an
    embeddings endpoint)."""
    egress: list[dict[str, Any]] = [
        {"ports": DNS_PORTS},
        {
            "to": [{"podSelector": {"matchLabels": owner.selector(BACKEND_COMPONENT)}}],
            "ports": [{"port": VLLM_PORT, "protocol": "TCP"}],
        },
        {"ports": [{"port": port, "protocol": "TCP"} for port in API_SERVER_PORTS]},
    ]
    external = endpoint_ports([m.endpoint for m in models if m.endpoint is not None] + list(endpoints or []))
    if external:
        egress.append({"ports": [{"port": port, "protocol": "TCP"} for port in external]})
    return _policy(
        owner,
        name,
        component,
        {
            "podSelector": {"matchLabels": owner.selector(component)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": egress,
        },
    )


OPERATOR_PEER = {
    "namespaceSelector": {},
    "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "quorum", LABEL_COMPONENT: "operator"}},
}
"""The operator's pods (the chart's labels), in whatever namespace it runs: a shared Model's scaler reads the
vLLM `/metrics` of its replicas."""


def shared_model_policy(owner: Owner, consumers: list[tuple[Owner, list[str]]]) -> dict[str, Any]:
    """A shared Model's backend: the vLLM port only from the model-calling pods of its current consumers (and
    the operator's scraper); with no consumer, from nobody else."""
    peers = [clients_of(consumer, components) for consumer, components in consumers]
    return _policy(
        owner,
        backend_name(owner, owner.name),
        BACKEND_COMPONENT,
        {
            "podSelector": {"matchLabels": owner.selector(BACKEND_COMPONENT, owner.name)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [*peers, OPERATOR_PEER], "ports": [{"port": VLLM_PORT, "protocol": "TCP"}]}],
        },
    )
