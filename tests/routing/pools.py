"""Seeded simulated pools for routed-accuracy tests: each sample's correctness is drawn from the model's
per-topic accuracy with a generator keyed by (model, question, seed, choice), so a backend is deterministic for
a given seed and independent across seeds (like vLLM with `seed`), and voting over samples matters.

Two shapes:
- `SPECIALISTS`: 3 models, 4 topics in 2 tasks, self-consistency with one selected model.
- `WIDE`: 5 models, 6 topics in 3 tasks (answers written in several equivalent forms, some samples give no
  answer at all), model-switch over two selected models.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quorum.llm.simulated import SimReply, SimRequest

COUNTRIES = (  # noqa: SIM905
    "France Japan Italy Spain Egypt Kenya Peru Norway Greece Poland Chile Cuba "
    "Iran Iraq Sweden Austria Portugal Ireland Hungary Finland Denmark Thailand Vietnam Argentina "
    "Brazil Canada Mexico Turkey Nigeria Ghana Nepal Mongolia Morocco Tunisia Belgium Croatia "
    "Serbia Latvia Estonia Iceland"
).split()
ELEMENTS = (  # noqa: SIM905
    "gold silver iron sodium potassium lead copper tin mercury tungsten helium neon "
    "oxygen carbon nitrogen calcium zinc argon sulfur chlorine magnesium uranium lithium nickel "
    "cobalt platinum iodine bromine radon xenon krypton barium cesium titanium chromium manganese "
    "boron silicon phosphorus fluorine"
).split()
ANIMALS = (  # noqa: SIM905
    "lion eagle shark wolf falcon otter badger heron cobra lynx walrus bison "
    "gecko mole hare crane viper moose koala lemur tapir ibex okapi puma "
    "hyena jackal marten sable stoat finch robin wren raven crow owl swan "
    "goose duck lark"
).split()


def _question(topic: str, i: int) -> tuple[str, str]:
    """(question, reference answer) of question `i` of `topic`; wording differs strongly between topics."""
    if topic == "sums":
        a, b = 13 + 7 * i, 29 + 3 * i
        return f"Compute the sum {a} + {b}. Put the final number in \\boxed{{}}.", str(a + b)
    if topic == "speed":
        km, hours = 60 + 12 * i, 2 + i % 5
        return f"A train travels {km * hours} kilometres in {hours} hours. What is its average speed in km/h?", str(km)
    if topic == "area":
        w, h = 3 + i, 4 + 2 * i
        return f"A rectangular garden measures {w} m by {h} m. What is its area in square metres?", str(w * h)
    if topic == "fractions":
        n, d = 1 + i % 7, 8 + i
        return f"Simplify the ratio of {n * 3} apples to {d * 3} pears and give it as a reduced fraction.", f"{n}/{d}"
    letter = "ABCD"[i % 4]
    if topic == "capitals":
        return (
            f"Which city is the capital of {COUNTRIES[i]}? A) one B) two C) three D) four. Reply 'Answer: X'.",
            letter,
        )
    if topic == "elements":
        return (
            f"What is the chemical symbol of the element {ELEMENTS[i]}? A) w B) x C) y D) z. Reply 'Answer: X'.",
            letter,
        )
    return f"In zoology, which class does the {ANIMALS[i]} belong to? A) p B) q C) r D) s. Reply 'Answer: X'.", letter


@dataclass(frozen=True)
class Pool:
    """Models, topics (topic → task), per-sample accuracies, the router settings and the calibration size."""

    name: str
    accuracy: dict[str, dict[str, float]]
    topics: dict[str, str]
    per_topic: int
    voting: dict[str, Any]
    routing: dict[str, Any] = field(default_factory=dict)
    tasks: tuple[dict[str, Any], ...] = (
        {"name": "arithmetic", "kind": "math"},
        {"name": "trivia", "kind": "multiple-choice", "choices": "ABCD"},
        {"name": "fractions", "kind": "math"},
    )

    @property
    def models(self) -> list[str]:
        return list(self.accuracy)

    def questions(self) -> list[dict[str, str]]:
        items = []
        for topic, task in self.topics.items():
            for i in range(self.per_topic):
                question, answer = _question(topic, i)
                items.append({"question": question, "answer": answer, "task": task, "topic": topic})
        return items

    def write_dataset(self, path: Path) -> Path:
        lines = (json.dumps({k: q[k] for k in ("question", "answer", "task")}) for q in self.questions())
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    def responder(self, model: str):
        by_question = {q["question"]: q for q in self.questions()}
        accuracy = self.accuracy[model]
        unseeded: Counter[str] = Counter()  # the k-th unseeded call of a question: calibration is reproducible

        def respond(request: SimRequest) -> SimReply:
            item = by_question.get(request.messages[-1]["content"])
            if item is None:
                return SimReply(text=f"[{model}] I cannot help with that.")
            seed = request.body.get("seed")
            if seed is None:
                unseeded[item["question"]] += 1
            key = f"unseeded:{unseeded[item['question']]}" if seed is None else f"seed:{seed}"
            texts = []
            for choice in range(request.n):
                digest = hashlib.sha256(f"{model}|{item['question']}|{key}|{choice}".encode()).digest()
                rng = random.Random(int.from_bytes(digest[:8], "big"))
                texts.append(_reply(model, item, rng.random() < accuracy[item["topic"]], rng))
            return SimReply(texts=texts)

        return respond


def _mistake(rng: random.Random) -> int:
    return 1 if rng.random() < 0.7 else rng.randint(2, 3)


def _reply(model: str, item: dict[str, str], ok: bool, rng: random.Random) -> str:
    """A sample's text: the reference (in one of several equivalent forms) or a wrong answer (mostly one common
    mistake, so a weak model's plurality can be wrong); one in ten wrong samples gives no answer at all (its
    numbers are not an answer and must not vote)."""
    answer = item["answer"]
    if item["task"] == "trivia":
        if not ok and rng.random() < 0.1:
            return f"[{model}] I cannot decide between the options given."
        letter = answer if ok else "ABCD"[("ABCD".index(answer) + _mistake(rng)) % 4]
        return f"[{model}] Considering the options carefully. Answer: {letter}"
    if not ok and rng.random() < 0.1:
        return f"[{model}] I am not sure; step 1 gives {rng.randint(2, 9)} and step 2 gives {rng.randint(10, 99)}."
    if item["task"] == "fractions":
        n, d = (int(p) for p in answer.split("/"))
        if not ok:
            n, d = n + _mistake(rng), d
        return f"[{model}] Reducing: " + rng.choice([f"\\boxed{{\\frac{{{n}}}{{{d}}}}}", f"\\boxed{{{n}/{d}}}"])
    value = int(answer) if ok else int(answer) + _mistake(rng)
    forms = [f"\\boxed{{{value}}}", f"the answer is {value}.", f"\\boxed{{{value}.0}}"]
    return f"[{model}] Working it out step by step, " + rng.choice(forms)


SPECIALISTS = Pool(
    name="specialists",
    accuracy={
        "alpha": {"sums": 0.75, "speed": 0.75, "capitals": 0.25, "elements": 0.25},
        "beta": {"sums": 0.25, "speed": 0.25, "capitals": 0.75, "elements": 0.75},
        "gamma": {"sums": 0.45, "speed": 0.45, "capitals": 0.45, "elements": 0.45},
    },
    topics={"sums": "arithmetic", "speed": "arithmetic", "capitals": "trivia", "elements": "trivia"},
    per_topic=40,
    voting={"strategy": "self-consistency", "samples": 10},
)
WIDE = Pool(
    name="wide",
    accuracy={
        "m1": {"sums": 0.75, "speed": 0.3, "area": 0.3, "fractions": 0.25, "capitals": 0.25, "animals": 0.25},
        "m2": {"sums": 0.3, "speed": 0.75, "area": 0.75, "fractions": 0.25, "capitals": 0.25, "animals": 0.25},
        "m3": {"sums": 0.25, "speed": 0.25, "area": 0.25, "fractions": 0.75, "capitals": 0.3, "animals": 0.3},
        "m4": {"sums": 0.25, "speed": 0.25, "area": 0.25, "fractions": 0.3, "capitals": 0.75, "animals": 0.35},
        "m5": {"sums": 0.45, "speed": 0.45, "area": 0.45, "fractions": 0.45, "capitals": 0.45, "animals": 0.75},
    },
    topics={
        "sums": "arithmetic",
        "speed": "arithmetic",
        "area": "arithmetic",
        "fractions": "fractions",
        "capitals": "trivia",
        "animals": "trivia",
    },
    per_topic=30,
    voting={"strategy": "model-switch", "samples": 10},
    routing={"modelsSelected": 2},
)
POOLS = (SPECIALISTS, WIDE)
