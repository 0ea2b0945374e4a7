"""Answer extraction and normalization: turn a sample's free text into the key it votes with.

Why normalize: upstream Avengers voted on raw strings, so `1/2`, `\\frac{1}{2}` and `0.5` split one answer
into three minority votes. Here every numeric form becomes one canonical exact fraction before voting.
An extraction that finds nothing returns `None`, and `None` never votes.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_IS = re.compile(r"answer\s+is\s*[:=]?\s*(.+)", re.IGNORECASE)
_ANSWER_COLON = re.compile(r"answer\s*[:=]\s*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
_THOUSANDS = re.compile(r"(?<![\d.])(-?\d{1,3}(?:,\d{3})+)(?![\d])")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mathrm|mbox|mathbf|operatorname)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)")
_SQRT = re.compile(r"\\sqrt\s*\{\s*(\d+)\s*\}")
_UNIT_TAIL = re.compile(r"^(-?[\d.]+(?:/\d+)?)\s*(?:[a-zA-Z°]+\.?\s*){1,3}$")
_LEADING_VARIABLE = re.compile(r"^[a-zA-Z]\s*=\s*(?=\S)")


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}`, matching nested braces (`\\boxed{\\frac{1}{2}}`)."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    content = text[start:i].strip()
                    if content:
                        return content
                    break
    return None


def _after_marker(text: str) -> str | None:
    """The phrase after the last "answer is" / "Answer:", up to the end of its line."""
    for pattern in (_ANSWER_IS, _ANSWER_COLON):
        matches = list(pattern.finditer(text))
        if matches:
            phrase = matches[-1].group(1).strip().splitlines()[0].strip()
            phrase = phrase.rstrip(".").strip().strip("*").strip()
            if phrase:
                return phrase
    return None


def extract_math(text: str) -> str | None:
    """Last `\\boxed{}`, else the phrase after "answer is"/"Answer:", else the last number; normalized."""
    candidate = last_boxed(text) or _after_marker(text)
    if candidate is not None:
        normalized = normalize_math(candidate)
        if normalized:
            return normalized
    numbers = _NUMBER.findall(_THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), text))
    return normalize_math(numbers[-1]) if numbers else None


def _exact_number(text: str) -> Fraction | None:
    """An exact value for `3`, `-2.50`, `.5`, `7/8`, `-1/2`; None for anything else."""
    text = text.replace(" ", "")
    try:
        if "/" in text:
            numerator, _, denominator = text.partition("/")
            value = Fraction(Decimal(numerator)) / Fraction(Decimal(denominator))
        else:
            value = Fraction(Decimal(text))
    except (InvalidOperation, ValueError, ZeroDivisionError):
        return None
    return value


def _strip_parens(text: str) -> str:
    """Drop parentheses that wrap the whole text: `((3))` → `3`, but `(1)/(2)` stays."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, char in enumerate(text):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1]
    return text


def _numeric(text: str) -> Fraction | None:
    """Exact value of `-(1)/(2)`, `(3)`, `-0.50`, ...; None when `text` is not a plain number or fraction."""
    negative = text.startswith("-")
    text = _strip_parens(text[1:] if negative else text)
    if text.count("/") > 1 or not text:
        return None
    parts = [_strip_parens(part) for part in text.split("/")]
    if not all(re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", part) for part in parts):
        return None
    value = _exact_number("/".join(parts))
    return -value if negative and value is not None else value


def _canonical_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def normalize_math(answer: str) -> str | None:
    """Canonical form of a math answer so that equivalent answers vote together.

    Numbers become exact fractions (`0.5` = `1/2` = `\\frac{1}{2}` = `\\dfrac12` → `1/2`; `2.50` → `5/2`;
    `1,000` → `1000`; `50\\%` → `50`); units and `x =` prefixes are dropped; other expressions keep their
    LaTeX with spaces and sizing commands removed.
    """
    s = answer.strip().strip("$").strip()
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "").replace("\\;", "")
    s = s.replace("\\ ", " ").replace("\\%", "%").replace("\\$", "").replace("$", "")
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("°", "")
    s = _TEXT_COMMAND.sub(lambda m: " " + m.group(1), s).strip()
    s = _LEADING_VARIABLE.sub("", s)
    s = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), s)
    s = s.rstrip(".").strip()
    if s.endswith("%"):
        s = s[:-1].strip()
    s = _SQRT.sub(lambda m: f"\\sqrt{m.group(1)}", s)  # \sqrt{2} = \sqrt2, and frees \frac{\sqrt{3}}{2}
    for _ in range(3):  # nested fractions resolve from the inside out
        s = _FRAC.sub(lambda m: f"({m.group(1)})/({m.group(2)})", s)
    s = _FRAC_SHORT.sub(lambda m: f"{m.group(1)}/{m.group(2)}", s)
    unit = _UNIT_TAIL.match(s)
    if unit:
        s = unit.group(1)
    compact = s.replace(" ", "").replace("{", "").replace("}", "")
    value = _numeric(compact)
    if value is not None:
        return _canonical_number(value)
    return compact or None


_CHOICE_PATTERNS = (  # keywords in any case, the letter itself upper case ("the answer is a city" is no "A")
    r"(?i:answer)\s*(?i:is)?\s*[:=]?\s*\**\s*\(?([{letters}])\)?(?![A-Za-z])",
    r"\\boxed\{\s*\(?([{letters}])\)?\s*\}",
    r"(?i:option|choice)\s*\(?([{letters}])\)?(?![A-Za-z])",
)


def extract_choice(text: str, choices: str = "ABCD") -> str | None:
    """The last `Answer: X` (X within this task's letters), then `\\boxed{X}`, "option X", or a reply that is
    just the letter (`B`, `(B)`, `B.`, `B) Paris`). Letters outside the range never count."""
    letters = re.escape(choices.upper())
    for template in _CHOICE_PATTERNS:
        matches = re.findall(template.replace("{letters}", letters), text)
        if matches:
            return matches[-1]
    bare = re.fullmatch(rf"\s*\(?([{letters}])(?:[).:]\s*.*)?\s*", text.strip(), flags=re.DOTALL)
    if bare:
        return bare.group(1)
    return None


_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str | None:
    """The last fenced code block, or the whole reply when it is unfenced code."""
    blocks = [b.strip() for b in _FENCE.findall(text) if b.strip()]
    if blocks:
        return blocks[-1]
    stripped = text.strip()
    if re.search(r"^\s*(def|class|import|from)\s", stripped, flags=re.MULTILINE):
        return stripped
    return None


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = re.compile(r"[^\w\s]")


def normalize_open(text: str) -> str:
    """Lower case without punctuation, articles and extra spaces (SQuAD-style) for open-answer grading."""
    text = _PUNCTUATION.sub(" ", text.lower())
    return " ".join(_ARTICLES.sub(" ", text).split())
