"""What a task's answers look like: how to extract the voting key and how to grade it against a reference."""

from __future__ import annotations

from dataclasses import dataclass

from quorum.api.ensemble import TaskKind, TaskSpec
from quorum.routing.extract import extract_choice, extract_code, extract_math, normalize_math, normalize_open
from quorum.routing.sandbox import run_tests


@dataclass(frozen=True)
class TaskRule:
    """Extraction and grading of one task (from `calibration.tasks`; unlisted tasks are open-ended)."""

    name: str
    kind: TaskKind = TaskKind.OPEN
    choices: str = "ABCD"
    last_number_fallback: bool = False
    """Math replies without an answer marker vote with their last number (off: they do not vote)."""

    @classmethod
    def from_spec(cls, spec: TaskSpec) -> TaskRule:
        return cls(spec.name, spec.kind, spec.choices, spec.last_number_fallback)

    def describe(self) -> dict[str, str | bool]:
        """What the artifact records so a router without the task list still extracts the same way."""
        return {"kind": self.kind.value, "choices": self.choices, "lastNumberFallback": self.last_number_fallback}

    @classmethod
    def described(cls, name: str, description: dict[str, str | bool]) -> TaskRule:
        return cls(
            name,
            TaskKind(str(description["kind"])),
            str(description.get("choices", "ABCD")),
            bool(description.get("lastNumberFallback", False)),
        )

    @property
    def votes_on_strings(self) -> bool:
        """Math and multiple choice vote on extracted keys; code and open answers pick the most central sample."""
        return self.kind in (TaskKind.MATH, TaskKind.MULTIPLE_CHOICE)

    def extract(self, text: str) -> str | None:
        if self.kind is TaskKind.MATH:
            return extract_math(text, last_number_fallback=self.last_number_fallback)
        if self.kind is TaskKind.MULTIPLE_CHOICE:
            return extract_choice(text, self.choices)
        if self.kind is TaskKind.CODE:
            return extract_code(text)
        answer = normalize_open(text)
        return answer or None

    def reference_key(self, reference: str) -> str | None:
        """The reference answer in the same normalized form as extracted answers."""
        if self.kind is TaskKind.MATH:
            return normalize_math(reference) or extract_math(reference, last_number_fallback=True)
        if self.kind is TaskKind.MULTIPLE_CHOICE:
            return extract_choice(reference, self.choices)
        return normalize_open(reference) or None

    async def grade(self, text: str, reference: str, tests: str | None = None) -> bool:
        """Whether one sample is correct: equal keys for math/choice, passing tests for code, and for open
        answers the normalized reference appearing in the normalized reply (short factual references)."""
        if self.kind is TaskKind.CODE:
            code = extract_code(text)
            if not code or not tests:
                return False
            return (await run_tests(code, tests)).passed
        answer = self.extract(text)
        expected = self.reference_key(reference)
        if not answer or not expected:
            return False
        if self.kind is TaskKind.OPEN:
            return f" {expected} " in f" {answer} "
        return answer == expected


def task_rules(specs: list[TaskSpec]) -> dict[str, TaskRule]:
    return {spec.name: TaskRule.from_spec(spec) for spec in specs}


def rule_for(rules: dict[str, TaskRule], task: str | None) -> TaskRule:
    """The rule of `task`; tasks not configured are graded and voted as open-ended answers."""
    if task and task in rules:
        return rules[task]
    return TaskRule(name=task or "open")
