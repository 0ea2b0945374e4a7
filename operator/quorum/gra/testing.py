"""Scripted GRA answers for the simulated backend (`quorum.llm.simulated`), used by tests and the benchmark.

Every answer is a pure function of the request (stage from the schema name, model, prompt, per-call seed), so
two runs of the same spec get the same answers in any order; that is what the crash-and-resume test relies
on. Scores and verdicts can be scripted per model for the exact gate tests.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from quorum.gra import prompts
from quorum.llm.simulated import SimReply, SimRequest

WORDS = tuple(
    [
        "prime",
        "sum",
        "vector",
        "graph",
        "loop",
        "string",
        "sort",
        "cache",
        "poem",
        "letter",
        "river",
        "planet",
        "law",
        "market",
        "protein",
        "tax",
        "bridge",
        "triangle",
        "fraction",
        "recursion",
        "queue",
        "essay",
        "haiku",
        "volcano",
        "enzyme",
        "treaty",
        "budget",
        "orbit",
        "matrix",
        "parser",
        "story",
    ]
)

ScoreRule = Callable[[SimRequest, str], "int | list[int]"]
"""(request, round name "instruction"|"response") → the score this reviewer gives on every dimension, or one
score per dimension in rubric order."""
CritiqueRule = Callable[[SimRequest, str], str]
"""(request, round name) → the critique this reviewer writes."""


def digest_of(*parts: object) -> int:
    return int(hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:12], 16)


@dataclass
class GraScript:
    """A responder: `SimulatedBackend(GraScript(...))`."""

    score: ScoreRule | None = None
    critique: CritiqueRule | None = None
    """Default: an honest reviewer's critique, in words of its own that depend on what it read."""
    adjudicate: Callable[[SimRequest], str] | None = None
    duplicate_every: int = 0
    """Every n-th generated sample reuses one fixed instruction, so dedup has work."""
    fail: Callable[[SimRequest], SimReply | None] | None = None
    """Fault injection: return a reply (500, hang, bad JSON) to send instead of the scripted answer."""

    def __call__(self, request: SimRequest) -> SimReply:
        if self.fail is not None and (injected := self.fail(request)) is not None:
            return injected
        name = request.schema_name
        key = digest_of(request.model, request.prompt, request.body.get("seed"))
        schema = ((request.response_format or {}).get("json_schema") or {}).get("schema", {})
        if name == prompts.GENERATE:
            return _json(_fitted(self._generate(request, key), schema))
        if name in (prompts.REVIEW_INSTRUCTION, prompts.REVIEW_RESPONSE):
            round_name = "instruction" if name == prompts.REVIEW_INSTRUCTION else "response"
            value = self.score(request, round_name) if self.score else 5 + key % 6
            keys = [k for k in schema.get("properties", {}) if k != "critique"]
            values = value if isinstance(value, list) else [value] * len(keys)
            critique = self.critique(request, round_name) if self.critique else own_words(key)
            return _json(_fitted({**dict(zip(keys, values, strict=True)), "critique": critique}, schema))
        if name == prompts.ADJUDICATE:
            decision = self.adjudicate(request) if self.adjudicate else ("accept" if key % 2 else "reject")
            return _json({"decision": decision, "score": 8 if decision == "accept" else 3, "reason": "settled"})
        if name == prompts.DIGEST:
            words = [WORDS[(key >> (4 * i)) % len(WORDS)] for i in range(3)]
            return _json({"keywords": words, "summary": f"A task about {' and '.join(words)}."})
        if name == prompts.CLASSIFY:
            names = schema["properties"]["domain"]["enum"]
            found = [n for n in names if n in request.prompt.split("Task:", 1)[-1]]
            return _json({"domain": found[0] if found else names[key % len(names)]})
        return SimReply(text="I only answer GRA prompts.")

    def _generate(self, request: SimRequest, key: int) -> dict[str, Any]:
        first_user = next(m["content"] for m in request.messages if m.get("role") == "user")
        domain = first_user.split(" task", 1)[0].removeprefix("Write one new ")
        if self.duplicate_every and key % self.duplicate_every == 0:
            instruction = "Explain in two sentences what a prime number is."
        else:
            words = [WORDS[(key >> (5 * i)) % len(WORDS)] for i in range(6)]
            instruction = f"Write a {domain} exercise {key % 9973} about {', '.join(words)}."
        return {
            "instruction": instruction,
            "input": "",
            "output": f"Answer {key % 1000}: a worked solution.",
            "keywords": [domain, *WORDS[key % 5 : key % 5 + 2]],
            "summary": f"A {domain} task.",
        }


def varied_high(request: SimRequest, round_name: str) -> int:
    """High scores that still vary with the text: an honest-looking panel that accepts (a constant scorer is
    flagged degenerate and excluded from the gate)."""
    return 8 + sum(map(ord, request.prompt)) % 3


def own_words(key: int, count: int = 10) -> str:
    """A critique no other review shares: words drawn by the request's hash (what an honest reviewer's
    independent wording looks like to the copy detector)."""
    words = [WORDS[(key >> (3 * i)) % len(WORDS)] for i in range(count)]
    return f"Notes: {' '.join(words)}."


def _fitted(value: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Top-level strings cut to the schema's `maxLength`, as a server decoding under the schema would stop them:
    a scripted critique longer than a small review budget allows must not turn every review into a repair."""
    properties = schema.get("properties", {})
    return {
        key: item[: properties[key]["maxLength"]]
        if isinstance(item, str) and "maxLength" in properties.get(key, {})
        else item
        for key, item in value.items()
    }


def _json(value: dict[str, Any]) -> SimReply:
    return SimReply(text=json.dumps(value))


default_responder = GraScript(duplicate_every=0)
"""For `python -m quorum.llm.simulated --responder quorum.gra.testing:default_responder` (the benchmark)."""


def planted_duplicates(
    n: int, dimension: int = 384, exact_share: float = 0.01, near_share: float = 0.01, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dedup ground truth: isotropic random unit vectors (nearly orthogonal, the hardest case for clustering)
    with exact copies and near copies (cosine 0.91–0.99) of earlier, unplanted rows. Returns the vectors and the
    rows planted as exact and as near copies: exactly those must be dropped."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dimension), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact_count, near_count = int(n * exact_share), int(n * near_share)
    rows = rng.choice(np.arange(n // 10, n), size=exact_count + near_count, replace=False)
    exact, near = np.sort(rows[:exact_count]), np.sort(rows[exact_count:])
    planted = np.zeros(n, dtype=bool)
    planted[rows] = True
    originals = np.flatnonzero(~planted)
    for group, similar in ((exact, False), (near, True)):
        sources = originals[(rng.random(len(group)) * np.searchsorted(originals, group)).astype(np.int64)]
        vectors[group] = vectors[sources]
        if similar:
            cosine = rng.uniform(0.91, 0.99, size=(len(group), 1)).astype(np.float32)
            noise = rng.standard_normal((len(group), dimension), dtype=np.float32)
            noise -= (noise * vectors[group]).sum(axis=1, keepdims=True) * vectors[group]
            noise /= np.linalg.norm(noise, axis=1, keepdims=True)
            vectors[group] = cosine * vectors[group] + np.sqrt(1 - cosine**2) * noise
    return vectors, exact, near
