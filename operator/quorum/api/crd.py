"""CustomResourceDefinitions generated from the pydantic models, which are the single source of truth.

Pydantic emits JSON Schema 2020-12; the API server wants a *structural* OpenAPI v3.0 schema. The conversion
inlines `$ref`s, turns `Optional[X]` into plain optional properties, maps `const`/`Literal` to enums,
exclusive bounds to the v3.0 boolean form, drops titles, and gives object-valued properties whose fields all
have defaults a default (the object with its fields' defaults filled in) so the API server fills nested
defaults (defaults in the schema, not in a webhook, keep GitOps diffs clean).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema

from quorum.api.resources import GROUP, NAME_RULES, RESOURCES, VERSION, Resource

CATEGORY = "quorum"

PRINTER_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "SynthesisJob": [
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {
            "name": "Stage",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Progressing")].reason',
        },
        {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
        {"name": "Accepted", "type": "integer", "jsonPath": ".status.counts.accepted"},
        {"name": "Started", "type": "date", "jsonPath": ".status.startTime"},
        {"name": "Completed", "type": "date", "jsonPath": ".status.completionTime"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    "EnsembleRouter": [
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Backends", "type": "string", "jsonPath": ".status.backendsReady"},
        {"name": "URL", "type": "string", "jsonPath": ".status.url"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    "Model": [
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
        {"name": "Consumers", "type": "integer", "jsonPath": ".status.consumerCount"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}

_DROPPED_KEYS = {"title", "$defs", "discriminator"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline `$ref`s, recursively; a `$ref` with siblings (e.g. a description) keeps the siblings."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        merged = {**target, **siblings}
        return _resolve(merged, defs)
    return {k: _resolve(v, defs) for k, v in node.items()}


def _structural(node: Any) -> Any:
    """Rewrite one resolved JSON-Schema node into its structural OpenAPI v3.0 equivalent."""
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: v for k, v in node.items() if k not in _DROPPED_KEYS}

    any_of = node.pop("anyOf", None)
    if any_of is not None:
        options = [o for o in any_of if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unions other than Optional[X] cannot be structural: {any_of}")
        merged = {**options[0], **{k: v for k, v in node.items() if k != "default" or v is not None}}
        return {**_structural(merged), "_nullable": True}  # marker for the parent: never default it
    if isinstance(node.get("description"), str):
        node["description"] = " ".join(node["description"].split())
    if node.get("default", 0) is None:
        node.pop("default")
    if "default" in node:
        node["default"] = _without_nulls(node["default"])
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node and not isinstance(node[bound], bool):
            node[plain] = node[bound]
            node[bound] = True
    if "enum" in node and "type" not in node:
        node["type"] = "string"

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _structural(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _structural(value)
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" in out:
        out.pop("additionalProperties", None)  # structural schemas allow properties or additionalProperties
        for prop in out["properties"].values():
            if prop.pop("_nullable", False):
                continue  # an optional object (e.g. `vllm`) stays absent unless set
            if prop.get("type") == "object" and "properties" in prop and not prop.get("required"):
                # The filled-in object, not `{}`: the API server checks a default against the CEL rules
                # before nested defaults apply, so `{}` fails rules such as `self.parallelism <= self.shards`.
                filled = {name: sub["default"] for name, sub in prop["properties"].items() if "default" in sub}
                prop.setdefault("default", filled)
        if "required" in out:
            out["required"] = [r for r in out["required"] if r in out["properties"]]
    return out


class _FactoryDefaults(GenerateJsonSchema):
    """Pydantic leaves `default_factory` defaults out of JSON Schema; the API server needs them, because it
    checks an object's default against the CEL rules before nested defaults apply (a bare `{}` fails rules
    such as `self.parallelism <= self.shards`)."""

    def default_schema(self, schema: Any) -> Any:
        if "default_factory" in schema and not schema.get("default_factory_takes_data"):
            default = schema["default_factory"]()
            schema = {k: v for k, v in schema.items() if k != "default_factory"} | {"default": default}
        return super().default_schema(schema)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def openapi_schema(model: type) -> dict[str, Any]:
    """Structural OpenAPI v3.0 schema of a pydantic model, with camelCase property names."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_FactoryDefaults)
    defs = raw.get("$defs", {})
    return _structural(_resolve(raw, defs))


def crd_for(resource: type[Resource]) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource kind."""
    fields = resource.model_fields
    spec_schema = openapi_schema(fields["spec"].annotation)
    status_type = next(t for t in fields["status"].annotation.__args__ if t is not type(None))
    status_schema = openapi_schema(status_type)
    spec_schema["description"] = (resource.model_fields["spec"].annotation.__doc__ or "").strip()
    status_schema["description"] = (status_type.__doc__ or "").strip()
    root = {
        "type": "object",
        "description": f"{resource.kind_name} is a Quorum custom resource; see `kubectl explain "
        f"{resource.plural}.spec`.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version: quorum.dev/v1alpha1."},
            "kind": {"type": "string", "description": f"Kind: {resource.kind_name}."},
            "metadata": {"type": "object"},  # the API server refuses anything else here
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": [dict(rule) for rule in NAME_RULES],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{resource.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/name": "quorum", "app.kubernetes.io/part-of": "quorum"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": resource.kind_name,
                "listKind": f"{resource.kind_name}List",
                "plural": resource.plural,
                "singular": resource.singular,
                "shortNames": [resource.short_name],
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS[resource.kind_name],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def crd_filename(resource: type[Resource]) -> str:
    return f"{GROUP}_{resource.plural}.yaml"


GENERATED_HEADER = "# Generated by `quorum crds generate` from operator/quorum/api. Do not edit.\n"


def render(crd: dict[str, Any]) -> str:
    return GENERATED_HEADER + yaml.safe_dump(crd, sort_keys=False, width=120, allow_unicode=True)


def render_chart_template(crd: dict[str, Any]) -> str:
    """The CRD as a template of the `quorum-crds` Helm chart.

    Helm installs files under a chart's `crds/` once and never upgrades them, so the chart ships the CRDs as
    templates; `helm.sh/resource-policy: keep` stops `helm uninstall` from deleting them (and with them every
    user's resources). Labels come from the chart's helpers; everything else is the generated CRD.
    """
    body = yaml.safe_dump({"spec": crd["spec"]}, sort_keys=False, width=120, allow_unicode=True)
    if "{{" in body:
        raise ValueError(f"{crd['metadata']['name']}: '{{{{' in the schema would be read as a Helm template")
    head = (
        f"{GENERATED_HEADER}"
        f"apiVersion: {crd['apiVersion']}\n"
        f"kind: {crd['kind']}\n"
        "metadata:\n"
        f"  name: {crd['metadata']['name']}\n"
        "  labels:\n"
        '    {{- include "quorum-crds.labels" . | nindent 4 }}\n'
        "  annotations:\n"
        "    helm.sh/resource-policy: keep\n"
        "    {{- with .Values.annotations }}\n"
        "    {{- toYaml . | nindent 4 }}\n"
        "    {{- end }}\n"
    )
    return head + body


def rendered_crds() -> dict[str, str]:
    """File name → YAML text for every CRD."""
    return {crd_filename(r): render(crd_for(r)) for r in RESOURCES}


def rendered_chart_templates() -> dict[str, str]:
    """File name (under the CRD chart's templates/) → Helm template text for every CRD."""
    return {crd_filename(r): render_chart_template(crd_for(r)) for r in RESOURCES}


def generated_files(crds_dir: Path, chart_dir: Path | None = None) -> dict[Path, str]:
    """Every file generated from the models: path → expected text. `chart_dir` is the `quorum-crds` chart."""
    files = {crds_dir / name: text for name, text in rendered_crds().items()}
    if chart_dir is not None:
        templates = chart_dir / "templates"
        files.update({templates / name: text for name, text in rendered_chart_templates().items()})
    return files


def write_files(files: dict[Path, str]) -> list[Path]:
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)


def stale_files(files: dict[Path, str]) -> list[Path]:
    """The paths whose content differs from what the models generate (or that are missing)."""
    return [path for path, text in files.items() if not path.is_file() or path.read_text(encoding="utf-8") != text]


def stale_crds(directory: Path) -> list[str]:
    """Names of CRD files in `directory` that differ from what the models generate (or are missing)."""
    return [path.name for path in stale_files(generated_files(directory))]
