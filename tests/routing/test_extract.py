"""Extractors normalize equivalent answers to one voting key and keep different answers apart."""

from __future__ import annotations

import pytest

from quorum.api.ensemble import TaskKind
from quorum.routing.extract import extract_choice, extract_code, extract_math, last_boxed, normalize_math
from quorum.routing.tasks import TaskRule

EQUIVALENT = [
    ("\\frac{1}{2}", "1/2"),
    ("\\dfrac{1}{2}", "0.5"),
    ("\\dfrac12", ".5"),
    ("\\tfrac{3}{4}", "0.75"),
    ("-\\frac{3}{4}", "\\frac{-3}{4}"),
    ("2.50", "5/2"),
    ("1,000", "1000"),
    ("1000.00", "1000"),
    ("50\\%", "50"),
    ("12 cm", "12"),
    ("\\text{12 cm}", "12"),
    ("x = 3", "3"),
    ("\\$5", "5"),
    ("(3)", "3"),
    ("90^\\circ", "90"),
    ("\\left( 2 \\right)", "2"),
    ("$7$", "7"),
    ("3.0", "3"),
    ("1,234,567", "1234567"),
    ("\\sqrt{2}", "\\sqrt2"),
    ("x^2 + 1", "x^2+1"),
]
DIFFERENT = [("1/2", "1/3"), ("0.5", "5"), ("-3", "3"), ("1,2,3", "123"), ("12", "120"), ("\\sqrt{2}", "2")]


@pytest.mark.parametrize(("left", "right"), EQUIVALENT)
def test_equivalent_math_answers_share_one_key(left, right):
    assert normalize_math(left) == normalize_math(right)


@pytest.mark.parametrize(("left", "right"), DIFFERENT)
def test_different_math_answers_keep_different_keys(left, right):
    assert normalize_math(left) != normalize_math(right)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("First \\boxed{2}, then correcting: \\boxed{\\frac{1}{2}}", "1/2"),
        ("so the value is \\boxed{\\frac{\\sqrt{3}}{2}}.", "(\\sqrt3)/(2)"),
        ("The answer is 1,234.", "1234"),
        ("Answer: 42 apples", "42"),
        ("we get 3, then finally 7", "7"),
        ("no numbers here", None),
        ("\\boxed{} empty, but the answer is 5", "5"),
    ],
)
def test_math_extraction_prefers_last_boxed_then_markers_then_last_number(text, expected):
    assert extract_math(text) == expected


def test_boxed_matching_handles_nested_braces():
    assert last_boxed("\\boxed{\\frac{a}{b_{1}}} tail") == "\\frac{a}{b_{1}}"
    assert last_boxed("\\boxed{unclosed") is None


@pytest.mark.parametrize(
    ("text", "choices", "expected"),
    [
        ("Answer: B", "ABCD", "B"),
        ("I think A is tempting. Answer: D", "ABCD", "D"),
        ("the answer is (C)", "ABCD", "C"),
        ("ANSWER: **C**", "ABCD", "C"),
        ("B) Paris", "ABCD", "B"),
        ("\\boxed{E}", "ABCDE", "E"),
        ("Answer: E", "ABCD", None),  # outside this task's letter range
        ("the answer is a city", "ABCD", None),  # an article is not a choice
        ("Paris", "ABCD", None),
    ],
)
def test_multiple_choice_extraction_respects_the_letter_range(text, choices, expected):
    assert extract_choice(text, choices) == expected


def test_code_extraction_takes_the_last_fenced_block():
    text = "Try:\n```python\ndef f(): return 1\n```\nBetter:\n```python\ndef f(): return 2\n```"
    assert extract_code(text) == "def f(): return 2"
    assert extract_code("def g(x):\n    return x") == "def g(x):\n    return x"
    assert extract_code("no code here") is None


async def test_code_is_graded_by_running_its_tests_in_a_sandbox():
    rule = TaskRule("mbpp", TaskKind.CODE)
    tests = "assert add(2, 3) == 5"
    assert await rule.grade("```python\ndef add(a, b):\n    return a + b\n```", "", tests)
    assert not await rule.grade("```python\ndef add(a, b):\n    return a - b\n```", "", tests)


async def test_sandbox_kills_endless_code_and_cuts_the_network():
    from quorum.routing.sandbox import run_tests

    looping = await run_tests("while True: pass", "", timeout_seconds=1)
    assert looping.timed_out and not looping.passed
    network = await run_tests("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)", "")
    assert not network.passed
