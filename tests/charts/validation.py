"""Strict offline validation of rendered manifests against the official Kubernetes schemas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

from tests.charts.helm import KUBERNETES_VERSION

# Kinds whose schemas are not part of Kubernetes itself (CRDs of other projects); tests check them by hand.
FOREIGN_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


def validate_strictly(manifests: list[dict[str, Any]]) -> list[str]:
    """Error messages, one per invalid manifest (empty when all pass); unknown fields count as errors."""
    errors = []
    for manifest in manifests:
        if (manifest["apiVersion"], manifest["kind"]) in FOREIGN_KINDS:
            continue
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {error.message} at {list(error.path)}")
    return errors
