"""Extractors normalize equivalent answers to one voting key and keep different answers apart."""

from __future__ import annotations

import re

import pytest

from quorum.api.ensemble import TaskKind
from quorum.routing.extract import extract_choice, extract_code, extract_math, last_boxed
from quorum.routing.tasks import TaskRule

MATH = TaskRule("math", TaskKind.MATH)
CHOICE = TaskRule("choice", TaskKind.MULTIPLE_CHOICE, "ABCD")

# Whole sample texts (or bare answers, which are whole replies too) that must vote together.
EQUIVALENT = [
    # fractions and decimals
    ("\\frac{1}{2}", "1/2"),
    ("\\dfrac{1}{2}", "0.5"),
    ("\\dfrac12", ".5"),
    ("\\tfrac{3}{4}", "0.75"),
    ("-\\frac{3}{4}", "\\frac{-3}{4}"),
    ("\\frac{6}{8}", "3/4"),
    ("2.50", "5/2"),
    ("3.0", "3"),
    ("1000.00", "1000"),
    ("0.125", "\\frac{1}{8}"),
    ("-0.5", "-\\frac12"),
    ("\\frac{10}{2}", "5"),
    ("(1)/(2)", "1/2"),
    ("\\left( 2 \\right)", "2"),
    ("(3)", "3"),
    ("((7))", "7"),
    # signs and separators
    ("+10", "10"),
    ("\\boxed{+10}", "the answer is 10"),
    ("1,000", "1000"),
    ("1{,}000", "1000"),
    ("\\boxed{1{,}000}", "Answer: 1,000"),
    ("1,234,567", "1234567"),
    ("12{,}345.5", "12345.5"),
    ("−4", "-4"),
    # percentages, currency, degrees
    ("50\\%", "50"),
    ("50%", "\\boxed{50}"),
    ("\\$5", "5"),
    ("$\\$12.50$", "12.5"),
    ("90^\\circ", "90"),
    ("90^{\\circ}", "90°"),
    # units
    ("12 cm", "12"),
    ("\\text{12 cm}", "12"),
    ("48 \\text{ m}^2", "48"),
    ("\\boxed{48 \\text{ m}^2}", "\\boxed{48}"),
    ("60 \\text{ km/h}", "60"),
    ("\\boxed{60\\text{ km/h}}", "The answer is 60."),
    ("60 km/h", "60 kilometres per hour"),
    ("5\\,\\text{cm}", "5"),
    ("12 apples", "12"),
    ("3 hours", "\\boxed{3}"),
    ("7 \\mathrm{kg}", "7"),
    ("48 square metres", "48"),
    ("2.5 L", "5/2"),
    ("\\text{20 dollars}", "20"),
    # delimiters and markers
    ("\\(42\\)", "42"),
    ("\\[42\\]", "42"),
    ("$42$", "42"),
    ("$$42$$", "42"),
    ("the answer is 42, since 6 \\times 7 = 42", "\\boxed{42}"),
    ("The answer is $\\frac{1}{2}$.", "\\boxed{0.5}"),
    ("So the answer is: 17.", "\\boxed{17}"),
    ("**Answer:** 9", "\\boxed{9}"),
    ("Answer: 42 apples", "42"),
    ("The final answer is \\(\\boxed{8}\\).", "8"),
    ("Thus the answer is 12 because 3 \\cdot 4 = 12.", "12"),
    ("The answer is 5; the other root is rejected.", "5"),
    ("First \\boxed{2}, then correcting: \\boxed{\\frac{1}{2}}", "1/2"),
    ("\\boxed{} empty, but the answer is 5", "5"),
    ("Working: 3 + 4 = 7.\n\\boxed{7}", "7"),
    ("\\fbox{11}", "11"),
    ("The answer is 1,234.", "1234"),
    # variables, prefixes, expressions
    ("x = 3", "3"),
    ("\\boxed{x = 5}", "5"),
    ("\\theta = 30^\\circ", "30"),
    ("x^2 + 1", "x^2+1"),
    ("\\boxed{2x + 1}", "2x+1"),
    ("\\frac{x}{2}", "(x)/(2)"),
    ("\\sqrt{2}", "\\sqrt2"),
    ("\\sqrt{18}", "3\\sqrt{2}"),
    ("\\sqrt{8}", "2\\sqrt2"),
    ("\\sqrt{16}", "4"),
    ("2\\sqrt{12}", "4\\sqrt{3}"),
    ("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt3}{2}"),
    ("\\pi", "$\\pi$"),
    ("2\\pi", "2 \\pi"),
    ("(1, 2)", "(1,2)"),
    ("[0, 1]", "[0,1]"),
    ("5x", "5 x"),
    ("3i", "3 i"),
    ("\\infty", "\\boxed{\\infty}"),
    # scientific notation
    ("1.5 \\times 10^3", "1500"),
    ("2 \\times 10^{-2}", "0.02"),
    ("3\\cdot10^2", "300"),
    # choices
    ("Answer: B", "the answer is (B)"),
    ("ANSWER: **C**", "\\boxed{C}"),
    ("B) Paris", "Answer: B"),
    ("I think A is tempting. Answer: D", "D"),
    ("option C", "(C)"),
]

# Answers that must never vote together (a None side never votes, so it merges with nothing).
MUST_NOT_MERGE = [
    ("1/2", "1/3"),
    ("0.5", "5"),
    ("-3", "3"),
    ("1,2,3", "123"),
    ("12", "120"),
    ("\\sqrt{2}", "2"),
    ("5x", "5"),
    ("3i", "3"),
    ("x", "y"),
    ("2x + 1", "2x - 1"),
    ("x^2", "x^3"),
    ("0.333", "1/3"),
    ("(1, 2)", "[1, 2]"),
    ("(1, 2)", "(2, 1)"),
    ("1, 2", "12"),
    ("\\sqrt{18}", "3\\sqrt{3}"),
    ("2\\pi", "\\pi"),
    ("10^3", "1000.5"),
    ("1.5 \\times 10^3", "150"),
    ("50\\%", "5"),
    ("-\\frac{1}{2}", "\\frac{1}{2}"),
    ("\\frac{x}{2}", "\\frac{2}{x}"),
    ("3 hours", "4"),
    ("I am not sure; step 1 gives 3 and step 2 gives 40.", "40"),
    ("we get 3, then finally 7", "7"),
    ("no numbers here", "no numbers here"),
    ("The answer is not clear from the problem.", "The answer is not clear from the problem."),
    ("Let me think about 12 more carefully.", "12"),
    ("I cannot decide between the options given.", "I cannot decide between the options given."),
    ("\\boxed{}", "\\boxed{}"),
    ("1e3", "1000"),
    ("x = 3", "y"),
    ("Answer: E", "Answer: E"),
    ("the answer is a city", "A"),
    ("Paris", "Paris"),
    ("Answer: A", "Answer: B"),
]


def _pair_keys(left: str, right: str) -> tuple[str | None, str | None]:
    """Both sides through the same task's rule: letters through multiple choice, everything else math."""
    choice = any(re.search(r"(?<![\\a-zA-Z])[A-E](?![a-zA-Z])|option|Paris|city", s) for s in (left, right))
    rule = CHOICE if choice else MATH
    return rule.extract(left), rule.extract(right)


def test_the_extractor_table_is_large_enough():
    assert len(EQUIVALENT) >= 80 and len(MUST_NOT_MERGE) >= 30


@pytest.mark.parametrize(("left", "right"), EQUIVALENT)
def test_equivalent_answers_vote_together(left, right):
    first, second = _pair_keys(left, right)
    assert first is not None and first == second, (first, second)


@pytest.mark.parametrize(("left", "right"), MUST_NOT_MERGE)
def test_different_answers_and_non_answers_never_vote_together(left, right):
    first, second = _pair_keys(left, right)
    assert first is None or second is None or first != second, (first, second)


def test_the_last_number_fallback_votes_only_where_a_task_asks_for_it():
    text = "Adding the two parts we get 3, then finally 7"
    assert MATH.extract(text) is None
    assert TaskRule("gsm", TaskKind.MATH, last_number_fallback=True).extract(text) == "7"
    assert TaskRule("gsm", TaskKind.MATH, last_number_fallback=True).extract("version2 of item4") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("First \\boxed{2}, then correcting: \\boxed{\\frac{1}{2}}", "1/2"),
        ("so the value is \\boxed{\\frac{\\sqrt{3}}{2}}.", "(\\sqrt3)/(2)"),
        ("The answer is 1,234.", "1234"),
        ("Answer: 42 apples", "42"),
        ("we get 3, then finally 7", None),  # no answer marker: no vote (the fallback is opt-in)
        ("no numbers here", None),
        ("\\boxed{} empty, but the answer is 5", "5"),
    ],
)
def test_math_extraction_prefers_last_boxed_then_markers_then_a_bare_answer(text, expected):
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
