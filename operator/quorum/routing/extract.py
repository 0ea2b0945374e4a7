"""Answer extraction and normalization: turn a sample's free text into the key it votes with.

Why normalize: upstream Avengers voted on raw strings, so `1/2`, `\\frac{1}{2}` and `0.5` split one answer
into three minority votes. Here every numeric form becomes one canonical exact fraction before voting, while
variables and units stay apart from numbers (`5x` is not `5`, `3i` is not `3`) unless the unit is a known
measurement unit or a word (`60 km/h`, `48 \\text{ m}^2`, `12 apples` all vote as the number).

An extraction that finds nothing returns `None`, and `None` never votes: a sample that gives no answer (its
numbers are working, not a final answer) does not vote unless its task asks for the last-number fallback
(`calibration.tasks[].lastNumberFallback`, for datasets whose replies end with a bare number).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_MARKERS = (
    re.compile(r"answer\s+is\s*[:=]?\s*(.+)", re.IGNORECASE | re.DOTALL),
    re.compile(r"answer\s*\**\s*[:=]\s*(.+)", re.IGNORECASE | re.DOTALL),
)
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?![\w])")
_THOUSANDS = re.compile(r"(?<![\d.,])([-+]?\d{1,3}(?:,\d{3})+)(?![\d,])")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|mathbf|operatorname)\s*\{([^{}]*)\}")
_FRAC = re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)")
_SQRT_BRACED = re.compile(r"\\sqrt\s*\{\s*(\d+)\s*\}")
_SURD = re.compile(r"^(\d*)\\sqrt(\d+)$")
_SCIENTIFIC = re.compile(r"^(-?\d+(?:\.\d+)?)(?:\\times|\\cdot|x|\*)10\^\{?(-?\d+)\}?$")
_LEADING_VARIABLE = re.compile(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)\s*=\s*(?=\S)")
_NUMBER_THEN_UNIT = re.compile(r"^([-+]?[\d.]+(?:/\d+)?)\s*([a-zA-Z][a-zA-Z\s/^{}\d.]*)$")
_SPACING = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\quad", "\\displaystyle")
_DELIMITERS = (("\\(", "\\)"), ("\\[", "\\]"), ("$$", "$$"), ("$", "$"))
_CLAUSE_END = re.compile(r"(?:\.\s|\.$|;\s|,\s+(?=[a-zA-Z]{2})|\s+(?:since|because|as|which|so|for|and)\s)")
UNITS = frozenset(
    "m cm mm km g kg mg s ms h hr hrs min ml ft in yd mi lb lbs oz mph kph kmh kwh kw "  # noqa: SIM905
    "hz sq mL L K C F".split()
)
"""One- and two-letter words that are units after a number; longer words (`apples`, `metres`) always are.
Single letters not listed (`x`, `i`, `n`...) are variables: `5 x` keeps its `x`."""


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


def _first_clause(phrase: str) -> str:
    """`42, since 6 × 7 = 42` → `42`: the answer ends at the first top-level clause break after it."""
    phrase = phrase.strip().splitlines()[0] if phrase.strip() else ""
    depth = 0
    for i, char in enumerate(phrase):
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        if depth == 0 and i > 0 and _CLAUSE_END.match(phrase, i):
            return phrase[:i]
    return phrase


def _after_marker(text: str) -> str | None:
    """The answer after the last "answer is" / "Answer:" (markdown emphasis and delimiters allowed)."""
    for pattern in _MARKERS:
        matches = list(pattern.finditer(text))
        if matches:
            phrase = _first_clause(matches[-1].group(1).lstrip("*").strip())
            phrase = phrase.strip().rstrip(".").strip().strip("*").strip()
            if phrase:
                return phrase
    return None


def last_number(text: str) -> str | None:
    """The last stand-alone number (`12`, `-3.5`, `1,000`, `7/8`) in `text`; digits inside words do not count."""
    numbers = _NUMBER.findall(text)
    return normalize_math(numbers[-1]) if numbers else None


def extract_math(text: str, *, last_number_fallback: bool = False) -> str | None:
    """Last `\\boxed{}`, else the answer after "answer is"/"Answer:", else a reply that is only an answer
    (`42`, `$\\frac{1}{2}$`), else — only when the task asks for it — the last number; normalized."""
    for candidate in (last_boxed(text), _after_marker(text), _bare(text)):
        if candidate is not None:
            normalized = normalize_math(candidate)
            if normalized:
                return normalized
    return last_number(text) if last_number_fallback else None


def _bare(text: str) -> str | None:
    """A reply that is nothing but a short one-line answer (an empty `\\boxed{}` is no answer)."""
    stripped = text.strip()
    if not stripped or "\n" in stripped or len(stripped) > 40 or _BOXED.search(stripped):
        return None
    return stripped


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
    """Exact value of `-(1)/(2)`, `(3)`, `-0.50`, `1.5\\times10^3`; None when `text` is no plain number."""
    negative = text.startswith("-")
    text = _strip_parens(text[1:] if negative else text)
    scientific = _SCIENTIFIC.match(text)
    if scientific:
        value = Fraction(Decimal(scientific.group(1))) * Fraction(10) ** int(scientific.group(2))
        return -value if negative else value
    if text.count("/") > 1 or not text:
        return None
    parts = [_strip_parens(part) for part in text.split("/")]
    if not all(re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", part) for part in parts):
        return None
    value = _exact_number("/".join(parts))
    return -value if negative and value is not None else value


def _canonical_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _canonical_surd(match: re.Match[str]) -> str:
    """`\\sqrt18` = `3\\sqrt2`: pull square factors out of the radicand."""
    coefficient, radicand = int(match.group(1) or 1), int(match.group(2))
    outside = 1
    for factor in range(math.isqrt(radicand), 1, -1):
        if radicand % (factor * factor) == 0:
            outside, radicand = factor, radicand // (factor * factor)
            break
    coefficient *= outside
    if radicand == 1:
        return str(coefficient)
    return f"{coefficient if coefficient != 1 else ''}\\sqrt{radicand}"


def _is_unit(tail: str) -> bool:
    """`km/h`, `m^2`, `square metres`, `apples`: words after a number that only say what was counted."""
    words = [w for w in re.split(r"[\s/]+", re.sub(r"\^\{?\d\}?", "", tail)) if w]
    return bool(words) and all(w.isalpha() and (len(w) >= 3 or w in UNITS) for w in words)


def _strip_delimiters(s: str) -> str:
    s = s.strip()
    for opening, closing in _DELIMITERS:
        if s.startswith(opening) and s.endswith(closing) and len(s) >= len(opening) + len(closing):
            return s[len(opening) : len(s) - len(closing)].strip()
    return s


def _looks_like_prose(s: str) -> bool:
    """Two or more words of two letters or more outside LaTeX commands: a sentence, not a final answer."""
    words = re.findall(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}", re.sub(r"\\[a-zA-Z]+", " ", s))
    return len(words) >= 2


def _clean_latex(s: str) -> str:
    s = _strip_delimiters(s.strip().replace("\\$", "")).replace("$", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", "")
    for command in _SPACING:
        s = s.replace(command, "")
    s = s.replace("\\ ", " ").replace("\\%", "%").replace("−", "-")
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("°", "")
    return _TEXT_COMMAND.sub(lambda m: " " + m.group(1), s).strip()


def normalize_math(answer: str) -> str | None:
    """Canonical form of a math answer so that equivalent answers vote together, or None for no answer.

    Numbers become exact fractions (`0.5` = `1/2` = `\\frac{1}{2}` = `\\dfrac12` → `1/2`; `2.50` → `5/2`;
    `1,000` = `1{,}000` → `1000`; `+10` → `10`; `50\\%` → `50`; `1.5 \\times 10^3` → `1500`); surds are
    simplified (`\\sqrt{18}` → `3\\sqrt2`); units and `x =` prefixes are dropped; other expressions keep their
    LaTeX without spaces and sizing commands. Prose (`not sure`) is no answer.
    """
    s = _clean_latex(answer)
    s = _LEADING_VARIABLE.sub("", s)
    s = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), s)
    s = s.rstrip(".").strip()
    if s.endswith("%"):
        s = s[:-1].strip()
    if s.startswith("+"):
        s = s[1:].strip()
    unit = _NUMBER_THEN_UNIT.match(s)
    if unit and _is_unit(unit.group(2)):
        s = unit.group(1)
    if _looks_like_prose(s):
        return None
    s = _SQRT_BRACED.sub(lambda m: f"\\sqrt{m.group(1)}", s)  # \sqrt{2} = \sqrt2, and frees \frac{\sqrt{3}}{2}
    for _ in range(3):  # nested fractions resolve from the inside out
        s = _FRAC.sub(lambda m: f"({m.group(1)})/({m.group(2)})", s)
    s = _FRAC_SHORT.sub(lambda m: f"{m.group(1)}/{m.group(2)}", s)
    compact = s.replace(" ", "").replace("{", "").replace("}", "")
    value = _numeric(compact)
    if value is not None:
        return _canonical_number(value)
    compact = _SURD.sub(_canonical_surd, compact)
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
