"""A synthetic pool for routing tests: four topics of distinct wording, three simulated models with known
per-topic accuracies. Correctness is a deterministic function of (model, question), so the expected routed,
single-model and oracle accuracies follow from the table below."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from quorum.llm.simulated import SimReply, SimRequest

CAPITALS = [
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Norway", "Oslo"),
    ("Greece", "Athens"),
    ("Poland", "Warsaw"),
    ("Chile", "Santiago"),
    ("Cuba", "Havana"),
    ("Iran", "Tehran"),
    ("Iraq", "Baghdad"),
    ("Sweden", "Stockholm"),
    ("Austria", "Vienna"),
    ("Portugal", "Lisbon"),
    ("Ireland", "Dublin"),
    ("Hungary", "Budapest"),
    ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"),
    ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"),
    ("Argentina", "Buenos Aires"),
]
ELEMENTS = [
    ("gold", "Au"),
    ("silver", "Ag"),
    ("iron", "Fe"),
    ("sodium", "Na"),
    ("potassium", "K"),
    ("lead", "Pb"),
    ("copper", "Cu"),
    ("tin", "Sn"),
    ("mercury", "Hg"),
    ("tungsten", "W"),
    ("helium", "He"),
    ("neon", "Ne"),
    ("oxygen", "O"),
    ("carbon", "C"),
    ("nitrogen", "N"),
    ("calcium", "Ca"),
    ("zinc", "Zn"),
    ("argon", "Ar"),
    ("sulfur", "S"),
    ("chlorine", "Cl"),
    ("magnesium", "Mg"),
    ("uranium", "U"),
    ("lithium", "Li"),
    ("nickel", "Ni"),
]
TOPIC_TASK = {"arithmetic": "arithmetic", "capitals": "trivia", "elements": "trivia", "speed": "arithmetic"}
ACCURACY = {  # model → topic → share of questions it answers correctly
    "alpha": {"arithmetic": 0.9, "speed": 0.9, "capitals": 0.2, "elements": 0.2},
    "beta": {"arithmetic": 0.2, "speed": 0.2, "capitals": 0.9, "elements": 0.9},
    "gamma": {"arithmetic": 0.55, "speed": 0.55, "capitals": 0.55, "elements": 0.55},
}


def _choices(correct: str, pool: list[str], seed: int) -> tuple[str, str]:
    others = [p for p in pool if p != correct]
    picks = [others[(seed * 7 + k * 5) % len(others)] for k in range(3)]
    options = picks[:]
    position = seed % 4
    options.insert(position, correct)
    text = " ".join(f"{letter}) {o}" for letter, o in zip("ABCD", options, strict=True))
    return text, "ABCD"[position]


def questions() -> list[dict]:
    items = []
    for i in range(24):
        a, b = 13 + 7 * i, 29 + 3 * i
        items.append(
            {
                "topic": "arithmetic",
                "question": f"Compute the sum {a} + {b}. Put the final number in \\boxed{{}}.",
                "answer": str(a + b),
            }
        )
        km, hours = 60 + 12 * i, 2 + i % 5
        items.append(
            {
                "topic": "speed",
                "question": f"A train travels {km * hours} kilometres in {hours} hours. "
                "What is its average speed in km/h?",
                "answer": str(km),
            }
        )
        country, capital = CAPITALS[i]
        options, letter = _choices(capital, [c for _, c in CAPITALS], i)
        items.append(
            {
                "topic": "capitals",
                "question": f"Which city is the capital of {country}? {options}. Reply with 'Answer: <letter>'.",
                "answer": letter,
            }
        )
        element, symbol = ELEMENTS[i]
        options, letter = _choices(symbol, [s for _, s in ELEMENTS], i + 1)
        items.append(
            {
                "topic": "elements",
                "question": f"What is the chemical symbol of the element {element}? {options}. "
                "Reply with 'Answer: <letter>'.",
                "answer": letter,
            }
        )
    for item in items:
        item["task"] = TOPIC_TASK[item["topic"]]
    return items


BY_QUESTION = {q["question"]: q for q in questions()}


def correct(model: str, question: str) -> bool:
    topic = BY_QUESTION[question]["topic"]
    digest = int(hashlib.sha256(f"{model}|{question}".encode()).hexdigest()[:8], 16)
    return digest % 100 < ACCURACY[model][topic] * 100


def wrong_answer(item: dict) -> str:
    if item["task"] == "arithmetic":
        return str(int(item["answer"]) + 1)
    return "ABCD"[("ABCD".index(item["answer"]) + 1) % 4]


def reply_text(model: str, item: dict, ok: bool) -> str:
    answer = item["answer"] if ok else wrong_answer(item)
    if item["task"] == "arithmetic":
        return f"[{model}] Working it out step by step, the result is \\boxed{{{answer}}}."
    return f"[{model}] Considering the options carefully. Answer: {answer}"


def responder_for(model: str):
    def respond(request: SimRequest) -> SimReply:
        question = request.messages[-1]["content"]
        item = BY_QUESTION.get(question)
        if item is None:
            return SimReply(text=f"[{model}] I cannot help with that.")
        return SimReply(text=reply_text(model, item, correct(model, question)))

    return respond


def write_dataset(path: Path) -> Path:
    path.write_text("".join(json.dumps({k: q[k] for k in ("question", "answer", "task")}) + "\n" for q in questions()))
    return path
