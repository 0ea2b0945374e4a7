"""The three custom resources as whole objects, and reading them from YAML manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from quorum.api.common import DNS_LABEL, cel_string
from quorum.api.ensemble import EnsembleRouterSpec, EnsembleRouterStatus
from quorum.api.model import ModelSpec, ModelStatus
from quorum.api.synthesis import SynthesisJobSpec, SynthesisJobStatus

GROUP = "quorum.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MAX_RESOURCE_NAME = 30
"""Child names are `<resource>-<part>-<hash>` and must stay within 63 characters (see builders/meta.py)."""

NAME_RULES: tuple[dict[str, str], ...] = (
    {
        "rule": f"size(self.metadata.name) <= {MAX_RESOURCE_NAME}",
        "message": f"metadata.name must be at most {MAX_RESOURCE_NAME} characters (child object names are derived "
        "from it)",
    },
    {
        "rule": f"self.metadata.name.matches({cel_string(DNS_LABEL)})",
        "message": "metadata.name must be a DNS label: lower-case letters, digits and '-', starting with a letter "
        "(it names Services, which allow no '.')",
    },
)
"""The API server's rules on the resource's name (the root `x-kubernetes-validations`); `ObjectMeta.name`
below is their Python half, from the same constants."""


class ObjectMeta(BaseModel):
    """The parts of metadata Quorum reads; everything else the API server keeps is passed through."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=DNS_LABEL, max_length=MAX_RESOURCE_NAME)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Resource(BaseModel):
    """Shared shape of our custom resources."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind_name: ClassVar[str]
    plural: ClassVar[str]
    singular: ClassVar[str]
    short_name: ClassVar[str]

    api_version: Literal["quorum.dev/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    metadata: ObjectMeta

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SynthesisJob(Resource):
    kind_name = "SynthesisJob"
    plural = "synthesisjobs"
    singular = "synthesisjob"
    short_name = "sjob"

    kind: Literal["SynthesisJob"] = "SynthesisJob"
    spec: SynthesisJobSpec
    status: SynthesisJobStatus | None = None


class EnsembleRouter(Resource):
    kind_name = "EnsembleRouter"
    plural = "ensemblerouters"
    singular = "ensemblerouter"
    short_name = "ensr"

    kind: Literal["EnsembleRouter"] = "EnsembleRouter"
    spec: EnsembleRouterSpec
    status: EnsembleRouterStatus | None = None


class Model(Resource):
    kind_name = "Model"
    plural = "models"
    singular = "model"
    short_name = "qmodel"

    kind: Literal["Model"] = "Model"
    spec: ModelSpec
    status: ModelStatus | None = None


T = TypeVar("T", bound=Resource)

RESOURCES: tuple[type[Resource], ...] = (SynthesisJob, EnsembleRouter, Model)

AnyResource = Annotated[SynthesisJob | EnsembleRouter | Model, Field(discriminator="kind")]
_any_resource: TypeAdapter[SynthesisJob | EnsembleRouter | Model] = TypeAdapter(AnyResource)


def parse_resource(document: dict[str, Any]) -> SynthesisJob | EnsembleRouter | Model:
    """Validate one manifest document; raises `pydantic.ValidationError` naming the failing field."""
    return _any_resource.validate_python(document)


def load_manifests(path: str | Path) -> list[SynthesisJob | EnsembleRouter | Model]:
    """Every Quorum resource in a (multi-document) YAML file; other kinds are skipped."""
    with open(path, encoding="utf-8") as handle:
        documents = [d for d in yaml.safe_load_all(handle) if d]
    return [parse_resource(d) for d in documents if d.get("apiVersion") == API_VERSION]


def load_one(path: str | Path, kind: type[T]) -> T:
    """The single resource of `kind` in a file; an error when there is none or several."""
    found = [r for r in load_manifests(path) if isinstance(r, kind)]
    if len(found) != 1:
        raise ValueError(f"{path}: expected exactly one {kind.kind_name}, found {len(found)}")
    return found[0]
