"""Invalid and hostile resources made by mutating the examples: every leaf of every example replaced by
hostile values of the wrong type, size, form or range, plus the cases users met first (issue 12). Each spec
comes with the field its rejection (or `Stalled` message) must name.

Deterministic (a seeded sample), so a failure reproduces.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = ("synthesisjob.yaml", "ensemblerouter.yaml", "local/synthesisjob.yaml", "local/ensemblerouter.yaml")
SEED = 12

HOSTILE_STRINGS: tuple[Any, ...] = ("", "../../etc", "UPPER case!", "x" * 2000, "a\nb", 12345, None, ["list"])
HOSTILE_NUMBERS: tuple[Any, ...] = (-1, 0, 10**12, "lots", True, 0.5, None)
HOSTILE_OTHERS: tuple[Any, ...] = ("yes", 7, [], {"unexpected": 1}, None)


ROOTS = ("spec", "metadata")
QUORUM_PATH = re.compile(r"(?<![\w.])spec\.(?!template\.)[A-Za-z][\w.\[\]]*")
"""A path into the Quorum resource's spec as the API server and `quorum validate` write it
(`spec.models[0].vllm`, `spec.models.0.vllm`); a child's pod template paths (`spec.template.spec...`) are not."""


def _dotted(path: str | tuple[Any, ...]) -> str:
    """A path without list indexes: `spec.models[0].vllm` and ("spec", "models", 0, "vllm") → spec.models.vllm."""
    parts = path.split(".") if isinstance(path, str) else [str(p) for p in path if not isinstance(p, int)]
    parts = [re.sub(r"\[[^\]]*\]", "", part) for part in parts]
    return ".".join(part for part in parts if part and not part.isdigit())


def _word(name: str, text: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", text) is not None


@dataclass(frozen=True)
class FuzzSpec:
    id: str
    document: dict[str, Any]
    field: str
    """The last segment of the mutated field: what a rejection or a Stalled message must name."""
    path: tuple[Any, ...] = ()
    """Where the document was mutated (list indexes included)."""

    def names_field(self, message: str) -> bool:
        """Whether `message` blames the mutated field or its parent, not just any field.

        A path into the Quorum spec in the message must be at or under the field's parent (at or under the
        field itself for a top-level field: `spec` alone would excuse everything). Words outside such paths
        count when they are the field's name or its parent's (a child's rejection words it after the child,
        e.g. `spec.template.spec.containers[0].resources.requests[cpu]`; an object-level rule says
        `spec.models[0]: tensorParallelSize ...`). So `spec.seeds.uri: ...` does not excuse a bad `output.uri`.
        """
        dotted = _dotted(self.path)
        parts = dotted.split(".")
        scope = ".".join(parts[:-1]) if len(parts) > 2 else dotted
        paths = [_dotted(found.rstrip(".")) for found in QUORUM_PATH.findall(message)]
        if any(found == scope or found.startswith(scope + ".") for found in paths):
            return True
        words = {self.field, *parts[-2:]} - {"", *ROOTS}
        rest = QUORUM_PATH.sub(" ", message)
        return any(_word(name, rest) for name in words)


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        for index, item in enumerate(node):
            yield from _leaves(item, (*path, index))
    else:
        yield path, node


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = document
    for part in path[:-1]:
        node = node[part]
    if value is None and isinstance(node, dict):
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


def _hostile(value: Any) -> tuple[Any, ...]:
    if isinstance(value, bool):
        return HOSTILE_OTHERS
    if isinstance(value, int | float):
        return HOSTILE_NUMBERS
    if isinstance(value, str):
        return HOSTILE_STRINGS
    return HOSTILE_OTHERS


def _field_name(path: tuple[Any, ...]) -> str:
    names = [str(part) for part in path if not isinstance(part, int)]
    return names[-1] if names else ""


def example(name: str) -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    document["metadata"].pop("namespace", None)
    return document


def leaf_mutations() -> list[tuple[str, tuple[Any, ...], Any]]:
    """(example, path, value) for every leaf of every example and every hostile value of its type."""
    found = []
    for name in FILES:
        for path, value in _leaves(example(name)):
            if path[:1] in (("apiVersion",), ("kind",)) or path == ("metadata", "name"):
                continue
            found += [(name, path, hostile) for hostile in _hostile(value) if hostile != value]
    return found


def _targeted() -> list[tuple[str, tuple[Any, ...], Any, str]]:
    """The cases of issue 12, each against the example it was found with."""
    sj, er = "synthesisjob.yaml", "ensemblerouter.yaml"
    resources = ("spec", "models", 0, "resources")
    return [
        (sj, ("spec", "output", "uri"), "configmap://cm/x", "uri"),
        (sj, (*resources, "requests"), {"cpu": "lots"}, "requests"),
        (sj, (*resources, "limits"), {"memory": "12 Gi"}, "limits"),
        (sj, (*resources, "nodeSelector"), {"bad key!": "x"}, "nodeSelector"),
        (sj, (*resources, "nodeSelector"), {"ok": "bad value!"}, "nodeSelector"),
        (sj, (*resources, "tolerations"), [{"key": "gpu", "operator": "Exists", "value": "y"}], "value"),
        (sj, (*resources, "tolerations"), [{"operator": "Equal", "value": "y"}], "key"),
        (sj, ("spec", "modelCache", "subPath"), "../../etc", "subPath"),
        (sj, ("spec", "seeds", "uri"), "pvc://my.claim/seeds.jsonl", "uri"),
        (sj, ("spec", "seeds", "uri"), "pvc://../..", "uri"),
        (sj, ("spec", "models", 0, "model"), "x" * 1_000_000, "model"),
        (sj, ("metadata", "name"), "my.job", "name"),
        (sj, ("metadata", "name"), "1job", "name"),
        (er, ("metadata", "name"), "my.router", "name"),
        (sj, ("spec", "workers", "image"), "quorum-dev/quorum:latest", "image"),
        (er, ("spec", "router", "image"), "quorum-dev/quorum", "image"),
        (sj, ("spec", "models", 0, "vllm", "tensorParallelSize"), 4, "tensorParallelSize"),
        (sj, ("spec", "generation", "maxTokens"), 100_000, "maxTokens"),
        (er, ("spec", "calibration", "dataset", "uri"), "pvc://../../x", "uri"),
        (er, ("spec", "models", 0, "name"), "router", "name"),
    ]


def fuzz_specs(count: int = 320) -> list[FuzzSpec]:
    """The targeted cases, then a seeded sample of leaf mutations: `count` specs in all, named fz-<n>."""
    chosen = [(name, path, value, token) for name, path, value, token in _targeted()]
    pool = leaf_mutations()
    random.Random(SEED).shuffle(pool)
    chosen += [(name, path, value, _field_name(path)) for name, path, value in pool[: max(0, count - len(chosen))]]
    specs = []
    for index, (name, path, value, token) in enumerate(chosen):
        document = copy.deepcopy(example(name))
        document["metadata"]["name"] = f"fz-{index}"
        _set(document, path, value)
        label = ".".join(str(p) for p in path)
        specs.append(FuzzSpec(f"{index}:{name}:{label}", document, token, path))
    return specs
