"""Secrets the operator generates: the API key its vLLM backends require and, unless the user names one, the
bearer token of the router. Both are created once (`CREATE_ONLY`) and never read back or updated, so the
operator needs only `create` on Secrets and can read none (see builders/rbac.py).

The builders stay pure: they return the Secret without a value, and `with_generated_value` adds a random
one at the moment the operator creates it (handlers/kube.py); every later apply of the same manifest is a
no-op (the API server answers 409 and the stored value stays).
"""

from __future__ import annotations

import secrets
from typing import Any

from quorum.api.common import SecretKeyRef
from quorum.builders.meta import Owner, child_name

CREATE_ONLY = "quorum.dev/create-only"
"""Annotation of a child the operator creates if absent and never patches (handlers/kube.py)."""
GENERATED_KEY = "quorum.dev/generated-key"
"""Annotation naming the Secret key that receives a random value when the Secret is created."""
TOKEN_KEY = "token"
CREDENTIALS_COMPONENT = "credentials"


def model_key_ref(owner: Owner) -> SecretKeyRef:
    """The key every vLLM backend of `owner` requires (`--api-key`), and its clients send."""
    return SecretKeyRef(name=child_name(owner, "model-key"), key=TOKEN_KEY)


def router_token_ref(owner: Owner, named: SecretKeyRef | None) -> SecretKeyRef:
    """The user's `router.authSecretRef`, or the one the operator generates: the router always asks a token."""
    return named or SecretKeyRef(name=child_name(owner, "router-token"), key=TOKEN_KEY)


def generated_secret(owner: Owner, ref: SecretKeyRef) -> dict[str, Any]:
    metadata = owner.metadata(ref.name, CREDENTIALS_COMPONENT)
    metadata["annotations"] = {CREATE_ONLY: "true", GENERATED_KEY: ref.key}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque"}


def with_generated_value(manifest: dict[str, Any]) -> dict[str, Any]:
    """The Secret as it is created: 256 random bits, URL-safe, under the annotated key."""
    key = manifest["metadata"]["annotations"][GENERATED_KEY]
    return {**manifest, "stringData": {key: secrets.token_urlsafe(32)}}


def is_create_only(manifest: dict[str, Any]) -> bool:
    return (manifest["metadata"].get("annotations") or {}).get(CREATE_ONLY) == "true"
