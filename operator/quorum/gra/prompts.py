"""Every prompt and JSON schema of the GRA pipeline, in one place, and the users' overrides of the prompts.

The paper published no prompts; these are Quorum's own, written for the 7–8B instruct models GRA runs on
(the tiny model of local mode is allowed to do badly with them). The review prompts follow LLM-as-judge
practice: each rubric dimension is defined, every score band has an anchored description, the critique comes
before the scores, and nothing in the prompt is a filled-in answer a model could copy (no example scores or
critiques). A review prompt puts the rubric, which is the same for every sample of a run, before the sample
and the short request after it: llama.cpp and vLLM reuse the cached prefix of an earlier prompt, so only the
sample's own text and the request are prefilled (with SmolLM2, the rubric is about three quarters of a review's
prompt tokens), and the model still reads what to write last. Each stage's user message is a Jinja2 template;
`spec.prompts.<stage>.templateUri` replaces it with the user's own, rendered with the same variables
(`VARIABLES`, listed in the README).

Schema names (`gra_generate`, ...) identify the stage to servers and to the scripted test backends; the
schemas themselves are never overridden, so the pipeline always gets the answer shape it parses.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import jinja2
import jinja2.meta

from quorum.api.synthesis import PromptOverride, Prompts

Messages = list[dict[str, str]]

GENERATE = "gra_generate"
REVIEW_INSTRUCTION = "gra_review_instruction"
REVIEW_RESPONSE = "gra_review_response"
ADJUDICATE = "gra_adjudicate"
DIGEST = "gra_digest"
CLASSIFY = "gra_classify"

CHARS_PER_TOKEN = 3
"""A conservative characters-per-token ratio used to size string limits from token budgets."""
KEY_TOKENS = 14
"""Tokens one short `"key": value,` pair may take under constrained decoding, whitespace included (measured
with SmolLM2: 6 score pairs and the braces took up to 81 tokens)."""
OBJECT_TOKENS = 12
"""Tokens of the braces and the quotes around a free-text field."""


def _text_chars(max_tokens: int, short_keys: int) -> int:
    """Characters one free-text field may take so the object still closes within `max_tokens`, counting one
    token per character: a constrained decoder may spend a token on every digit or dot (SmolLM2 writes
    "1.1.1.1..." and timestamps), and text that overruns the budget leaves the other fields unwritten."""
    return min(400, max(24, max_tokens - KEY_TOKENS * short_keys - OBJECT_TOKENS))


STAGE_FIELDS = {
    CLASSIFY: "classify",
    DIGEST: "digest",
    GENERATE: "generate",
    REVIEW_INSTRUCTION: "review_instruction",
    REVIEW_RESPONSE: "review_response",
    ADJUDICATE: "adjudicate",
}
"""Schema name → field of `spec.prompts`."""

VARIABLES: dict[str, tuple[str, ...]] = {
    CLASSIFY: ("task", "domains"),
    DIGEST: ("instruction", "input", "output"),
    GENERATE: ("domain", "demos"),
    REVIEW_INSTRUCTION: ("domain", "instruction", "input", "dimensions", "scale", "bands"),
    REVIEW_RESPONSE: ("domain", "instruction", "input", "output", "dimensions", "scale", "bands"),
    ADJUDICATE: ("domain", "instruction", "input", "output", "round", "reviews", "scale"),
}
"""The variables each stage's template is rendered with (the README documents their shapes)."""


class PromptTemplateError(ValueError):
    """A prompt override cannot be used; the message names the spec field."""


@functools.lru_cache(maxsize=256)
def dimension_key(name: str) -> str:
    """Rubric dimension → JSON key (`domain relevance` → `domain_relevance`); cached, as every review asks."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "score"


# --- the built-in templates ------------------------------------------------------------------------------

SYSTEM = {
    CLASSIFY: "You sort tasks into categories. Answer with JSON only.",
    DIGEST: "You describe tasks briefly and precisely. Answer with JSON only.",
    GENERATE: "You write clear, correct, self-contained training tasks with model answers. Answer with JSON only.",
    REVIEW_INSTRUCTION: "You are a strict, independent reviewer of training data. You judge the text in front "
    "of you on its own merits and answer with JSON only.",
    REVIEW_RESPONSE: "You are a strict, independent reviewer of training data. You check answers for errors "
    "before you judge them and answer with JSON only.",
    ADJUDICATE: "You are the area chair who settles reviewer disagreements about training data. You read the "
    "sample yourself and answer with JSON only.",
}

TEMPLATES = {
    CLASSIFY: """Categories: {{ domains | join(", ") }}.
Task: {{ task }}

Which one category fits the task best? Answer with a JSON object whose "domain" key is one of the categories.""",
    DIGEST: """Instruction: {{ instruction }}
{% if input %}Input: {{ input }}
{% endif %}{% if output %}Response: {{ output[:600] }}
{% endif %}
Describe this task: list 3 to 8 keywords naming its topic and skills, and summarise what it asks in at most
two sentences. Answer with a JSON object with the keys "keywords" (a list of strings) and "summary".""",
    GENERATE: """Write one new {{ domain }} task and its answer.
{% if demos %}Examples of the kind of task wanted:
{% for demo in demos %}Example {{ loop.index }}: {{ demo.instruction }}
{% if demo.input %}Input: {{ demo.input[:300] }}
{% endif %}{% if demo.output %}Answer: {{ demo.output[:300] }}
{% endif %}{% if demo.keywords %}Keywords: {{ demo.keywords | join(", ") }}. Summary: {{ demo.summary }}
{% endif %}{% endfor %}{% endif %}
Now write a different task on a related topic that a capable student could answer from the text alone: the
instruction, an optional input, a correct and complete output, 3 to 8 keywords and a one- or two-sentence
summary.""",
    REVIEW_INSTRUCTION: """Score each dimension from 1 to {{ scale }}:
{% for dimension in dimensions %}- {{ dimension.key }}: {{ dimension.meaning }}
{% endfor %}
Score bands (use the whole range; most tasks are not excellent):
{% for band in bands %}- {{ band.range }}: {{ band.instruction }}
{% endfor %}

Review the instruction of a {{ domain }} training task. Do not answer it.

Instruction: {{ instruction }}
{% if input %}Input: {{ input }}
{% endif %}
First write "critique": two sentences in your own words about this particular instruction, naming its
concrete strengths and flaws. Then give each dimension its integer score.""",
    REVIEW_RESPONSE: """Score each dimension from 1 to {{ scale }}:
{% for dimension in dimensions %}- {{ dimension.key }}: {{ dimension.meaning }}
{% endfor %}
Score bands (use the whole range; a response that repeats the instruction, stops early or contains an error
cannot score in the top bands):
{% for band in bands %}- {{ band.range }}: {{ band.response }}
{% endfor %}

Review the response to a {{ domain }} training task. Check it step by step before you score.

Instruction: {{ instruction }}
{% if input %}Input: {{ input }}
{% endif %}Response: {{ output }}

First write "critique": two sentences in your own words about this particular response, naming any error you
found. Then give each dimension its integer score.""",
    ADJUDICATE: """The reviewers of a {{ domain }} training task disagree about its {{ round }}.

Instruction: {{ instruction }}
{% if input %}Input: {{ input }}
{% endif %}{% if round == "response" %}Response: {{ output }}
{% endif %}
Reviews:
{% for review in reviews -%}
- Reviewer {{ loop.index }} (score {{ "%.1f" | format(review.score) }} of {{ scale }}): {{ review.critique }}
{% endfor %}
Read the {{ round }} yourself and decide whether it belongs in a training set. Answer with a JSON object:
"decision" ("accept" or "reject"), "score" (your own integer score from 1 to {{ scale }}) and "reason" (one
sentence in your own words).""",
}

DIMENSION_MEANINGS = {
    "clarity": "is the request unambiguous and well formed, with everything needed stated?",
    "answerability": "can it be answered correctly from the text alone, without missing data or opinions?",
    "feasibility": "can it be answered correctly from the text alone, without missing data or opinions?",
    "domain relevance": "does it belong to the stated domain and exercise that domain's skills?",
    "correctness": "is every statement, step and result in the response right?",
    "completeness": "does it do everything the instruction asks, to the end?",
    "relevance": "does it answer this instruction rather than a different or repeated one?",
    "coherence": "is it logically ordered and consistent with itself?",
    "language": "is it fluent, well formatted and in the instruction's language?",
    "safety": "is it free of harmful, deceptive or inappropriate content?",
}

BANDS = (
    (
        "useless: incomprehensible, empty, off topic or impossible to answer",
        "useless: wrong, empty, a copy of the instruction, or unrelated to it",
    ),
    (
        "poor: major ambiguity or missing information; an answer would be a guess",
        "poor: major errors or omissions; a student would learn something false",
    ),
    (
        "usable with fixes: the intent is clear but wording or details need work",
        "partly right: the main idea is there but with a clear error or gap",
    ),
    (
        "good: clear and answerable, with minor flaws",
        "good: correct and complete apart from minor flaws in detail or style",
    ),
    (
        "excellent: precise, self-contained and a clear exercise of the domain; rare",
        "excellent: fully correct, complete and well explained; rare",
    ),
)
"""Anchored descriptions for five equal score bands (lowest first), for instructions and for responses."""


def score_bands(scale: int) -> list[dict[str, str]]:
    """The five anchored bands laid over 1..scale (highest first, as judges read them); on a scale shorter
    than five the empty bands are left out."""
    edges = [1 + (i * scale) // len(BANDS) for i in range(len(BANDS) + 1)]
    bands = []
    for number, (instruction, response) in enumerate(BANDS):
        low, high = edges[number], edges[number + 1] - 1
        if high < low:
            continue
        bands.append(
            {"range": f"{low}" if low == high else f"{low}-{high}", "instruction": instruction, "response": response}
        )
    return bands[::-1]


def dimensions(names: list[str]) -> list[dict[str, str]]:
    return [
        {"name": n, "key": dimension_key(n), "meaning": DIMENSION_MEANINGS.get(n.lower(), f"how good is its {n}?")}
        for n in names
    ]


# --- rendering and overrides -----------------------------------------------------------------------------

_ENVIRONMENT = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


@dataclass(frozen=True)
class StagePrompt:
    system: str
    template: jinja2.Template
    source: str
    """Where the template came from: `built-in` or the override's URI."""


@dataclass
class PromptBook:
    """The prompt of every stage: built-in ones, replaced by validated overrides from the spec."""

    stages: dict[str, StagePrompt] = field(default_factory=dict)
    digest: str = "built-in"
    """Hash of the override texts; part of the engine fingerprint (a changed prompt changes the data)."""

    @classmethod
    def built_in(cls) -> PromptBook:
        return cls({name: _compile(name, SYSTEM[name], TEMPLATES[name], "built-in") for name in TEMPLATES})

    @classmethod
    def from_spec(cls, overrides: Prompts, read: Any) -> PromptBook:
        """Load and check every override: the file must exist, parse as Jinja2 and use only the stage's
        variables. `read(uri) -> str` reads a data URI (`quorum.locations`, object stores included)."""
        book = cls.built_in()
        texts = []
        for name, attribute in STAGE_FIELDS.items():
            override: PromptOverride | None = getattr(overrides, attribute)
            if override is None:
                continue
            where = f"spec.prompts.{_camel(attribute)}.templateUri"
            try:
                text = read(override.template_uri)
            except (OSError, ValueError) as error:
                raise PromptTemplateError(f"{where}: cannot read {override.template_uri}: {error}") from error
            book.stages[name] = _compile(name, override.system or SYSTEM[name], text, override.template_uri, where)
            texts.append(f"{name}\0{override.system or ''}\0{text}")
        if texts:
            book.digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
        return book

    def messages(self, stage: str, **variables: Any) -> Messages:
        prompt = self.stages[stage]
        return [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.template.render(**variables).strip()},
        ]

    def fixed_text(self, stage: str) -> str:
        """The stage's prompt without any sample in it: what a copying reviewer repeats."""
        prompt = self.stages[stage]
        return prompt.system + "\n" + prompt.template.render(**_PLACEHOLDERS[stage])


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _compile(stage: str, system: str, text: str, source: str, where: str | None = None) -> StagePrompt:
    where = where or f"built-in {stage} prompt"
    try:
        parsed = _ENVIRONMENT.parse(text)
    except jinja2.TemplateSyntaxError as error:
        raise PromptTemplateError(f"{where}: template syntax error on line {error.lineno}: {error.message}") from error
    unknown = sorted(jinja2.meta.find_undeclared_variables(parsed) - set(VARIABLES[stage]))
    if unknown:
        raise PromptTemplateError(
            f"{where}: unknown variable(s) {', '.join(unknown)}; {stage} templates may use "
            f"{', '.join(VARIABLES[stage])}"
        )
    template = _ENVIRONMENT.from_string(text)
    try:
        template.render(**_PLACEHOLDERS[stage])
    except jinja2.TemplateError as error:
        raise PromptTemplateError(f"{where}: rendering a sample failed: {error}") from error
    return StagePrompt(system, template, source)


_SAMPLE = {"domain": "math", "instruction": "", "input": "", "output": "", "scale": 10}
_PLACEHOLDERS: dict[str, dict[str, Any]] = {
    CLASSIFY: {"task": "", "domains": ["math", "code"]},
    DIGEST: {"instruction": "", "input": "", "output": ""},
    GENERATE: {"domain": "math", "demos": []},
    REVIEW_INSTRUCTION: {**_SAMPLE, "dimensions": dimensions(["clarity"]), "bands": score_bands(10)},
    REVIEW_RESPONSE: {**_SAMPLE, "dimensions": dimensions(["correctness"]), "bands": score_bands(10)},
    ADJUDICATE: {**_SAMPLE, "round": "response", "reviews": [{"score": 5.0, "critique": ""}]},
}
"""Empty variables for validating templates and for the fixed text of a prompt (copy detection)."""


# --- per-stage variables ---------------------------------------------------------------------------------


def task_variables(sample: dict[str, Any]) -> dict[str, str]:
    return {
        "instruction": sample["instruction"],
        "input": sample.get("input", "") or "",
        "output": sample.get("output", "") or "",
    }


def review_variables(domain: str, sample: dict[str, Any], rubric: list[str], scale: int) -> dict[str, Any]:
    return {
        "domain": domain,
        **task_variables(sample),
        "dimensions": dimensions(rubric),
        "scale": scale,
        "bands": score_bands(scale),
    }


def demo_variables(demos: list[tuple[Any, dict[str, Any] | None]]) -> list[dict[str, Any]]:
    return [
        {
            "instruction": seed.instruction,
            "input": seed.input,
            "output": seed.output,
            "keywords": list((digest or {}).get("keywords", [])),
            "summary": (digest or {}).get("summary", ""),
        }
        for seed, digest in demos
    ]


# --- schemas ---------------------------------------------------------------------------------------------


def _string(max_chars: int, min_chars: int = 1) -> dict[str, Any]:
    return {"type": "string", "minLength": min_chars, "maxLength": max(min_chars, max_chars)}


def _keywords() -> dict[str, Any]:
    """gra.md stage 2: 3 to 8 keywords."""
    return {"type": "array", "items": _string(24), "minItems": 3, "maxItems": 8}


SUMMARY_MAX_SENTENCES = 2


def sentences(text: str) -> list[str]:
    """Sentences split after `.`, `!` or `?` and white space (the rule the two-sentence summary is held to)."""
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def classify_schema(names: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"domain": {"type": "string", "enum": list(names)}},
        "required": ["domain"],
        "additionalProperties": False,
    }


def digest_schema(max_tokens: int = 256) -> dict[str, Any]:
    """A summary of at most two sentences: the length bound leaves room for two, and the digest stage trims
    anything after the second sentence (a grammar cannot count sentences)."""
    return {
        "type": "object",
        "properties": {"keywords": _keywords(), "summary": _string(min(400, max(60, (max_tokens - 100) * 2)))},
        "required": ["keywords", "summary"],
        "additionalProperties": False,
    }


def clean_digest(value: dict[str, Any]) -> dict[str, Any]:
    """Keywords stripped and de-duplicated; the summary cut to its first two sentences."""
    keywords = list(dict.fromkeys(k.strip() for k in value.get("keywords", []) if k.strip()))[:8]
    summary = sentences(str(value.get("summary", "")))[:SUMMARY_MAX_SENTENCES]
    return {"keywords": keywords, "summary": " ".join(summary)}


def generate_schema(max_tokens: int) -> dict[str, Any]:
    """Lengths take fixed shares of the token budget (less what 8 keywords may take) so the object closes
    before `max_tokens`."""
    budget = max(160, max_tokens * CHARS_PER_TOKEN - 200)
    return {
        "type": "object",
        "properties": {
            "instruction": _string(max(80, budget // 5), 8),
            "input": _string(max(40, budget // 10), 0),
            "output": _string(max(80, budget // 2), 1),
            "keywords": _keywords(),
            "summary": _string(max(60, budget // 10)),
        },
        "required": ["instruction", "input", "output", "keywords", "summary"],
        "additionalProperties": False,
    }


def review_schema(dimension_names: list[str], scale: int, max_tokens: int) -> dict[str, Any]:
    """The critique comes first: models score more sensibly after writing down what they saw. One shared
    (read-only) object per rubric, so a client's validator cache recognises it on every review."""
    return _review_schema(tuple(dimension_names), scale, max_tokens)


@functools.lru_cache(maxsize=64)
def _review_schema(dimension_names: tuple[str, ...], scale: int, max_tokens: int) -> dict[str, Any]:
    score = {"type": "integer", "minimum": 1, "maximum": scale}
    keys = [dimension_key(d) for d in dimension_names]
    critique = _string(_text_chars(max_tokens, len(keys)), 10)
    properties: dict[str, Any] = {"critique": critique, **{key: score for key in keys}}
    return {
        "type": "object",
        "properties": properties,
        "required": ["critique", *keys],
        "additionalProperties": False,
    }


def adjudicate_schema(scale: int, max_tokens: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["accept", "reject"]},
            "score": {"type": "integer", "minimum": 1, "maximum": scale},
            "reason": _string(_text_chars(max_tokens, 2)),
        },
        "required": ["decision", "score", "reason"],
        "additionalProperties": False,
    }
