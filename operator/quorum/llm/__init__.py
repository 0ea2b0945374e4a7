"""Talking to OpenAI-compatible model servers: the client the engines use, a simulated server for exact and
performance tests, and the packaged tiny model served locally. Nothing here knows about Kubernetes."""

from quorum.llm.client import (
    CallFailed,
    ChatClient,
    ClientPool,
    Completion,
    InvalidJson,
    ModelEndpoint,
    RetryPolicy,
    TokenUsage,
)

__all__ = [
    "CallFailed",
    "ChatClient",
    "ClientPool",
    "Completion",
    "InvalidJson",
    "ModelEndpoint",
    "RetryPolicy",
    "TokenUsage",
]
