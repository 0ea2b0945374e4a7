"""Prompt overrides from the spec: a Jinja2 template file replaces a stage's user message, is checked when
the run starts (the error names the field) and changes what the models are asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from quorum.cli.main import app
from quorum.gra import GraConfig, prompts, run_local
from quorum.gra.prompts import PromptTemplateError
from quorum.gra.testing import GraScript
from quorum.llm.simulated import SimulatedBackend
from tests.gra.conftest import endpoints_for, make_spec
from tests.gra.test_failures import write_manifest

POOL = ["a", "b", "c"]
OVERRIDE = """Judge this {{ domain }} instruction strictly, house style 7.
Instruction: {{ instruction }}
Dimensions: {% for d in dimensions %}{{ d.key }} {% endfor %}(1 to {{ scale }})."""


def test_a_review_override_changes_the_calls(seed_dir: Path) -> None:
    (seed_dir / "review.j2").write_text(OVERRIDE)
    sim = SimulatedBackend(GraScript(), models=POOL)
    url = sim.start_in_thread()
    try:
        overrides = {"reviewInstruction": {"templateUri": "file://review.j2", "system": "You are the house judge."}}
        spec = make_spec(url, POOL, review={"reviewers": 2}, prompts=overrides, generation={"target": 4, "rounds": 1})
        run = run_local(GraConfig.from_spec(spec, base_dir=seed_dir), seed_dir / "o", endpoints=endpoints_for(spec))
    finally:
        sim.stop_thread()
    reviews = [r for r in sim.requests if r.schema_name == prompts.REVIEW_INSTRUCTION]
    responses = [r for r in sim.requests if r.schema_name == prompts.REVIEW_RESPONSE]
    assert reviews and all(r.messages[0]["content"] == "You are the house judge." for r in reviews)
    assert all("house style 7" in r.messages[1]["content"] for r in reviews)
    assert all("clarity answerability domain_relevance" in r.messages[1]["content"] for r in reviews)
    assert responses and not any("house style" in r.prompt for r in responses)  # other stages keep theirs
    assert run.manifest["prompts"][prompts.REVIEW_INSTRUCTION] == "file://review.j2"
    assert run.manifest["prompts"][prompts.REVIEW_RESPONSE] == "built-in"


def test_an_edited_override_changes_the_fingerprint(seed_dir: Path) -> None:
    (seed_dir / "review.j2").write_text(OVERRIDE)
    overrides = {"reviewInstruction": {"templateUri": "file://review.j2"}}
    spec = make_spec("http://127.0.0.1:9", POOL, review={"reviewers": 2}, prompts=overrides)
    before = GraConfig.from_spec(spec, base_dir=seed_dir).fingerprint()
    (seed_dir / "review.j2").write_text(OVERRIDE + " Be brief.")
    assert GraConfig.from_spec(spec, base_dir=seed_dir).fingerprint() != before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Review {{ instructon }}", "unknown variable(s) instructon"),
        ("Review {% for x in dimensions %}", "template syntax error"),
        (None, "cannot read"),
    ],
    ids=["unknown-variable", "syntax-error", "missing-file"],
)
def test_a_bad_override_stops_the_run_at_start_naming_the_field(seed_dir: Path, text: str | None, message: str) -> None:
    if text is not None:
        (seed_dir / "bad.j2").write_text(text)
    sim = SimulatedBackend(GraScript(), models=POOL)
    url = sim.start_in_thread()
    try:
        job = write_manifest(seed_dir, url, prompts={"reviewResponse": {"templateUri": "file://bad.j2"}})
        result = CliRunner().invoke(app, ["synth", "run", str(job), "--local", "--out", str(seed_dir / "o")])
    finally:
        sim.stop_thread()
    output = " ".join(result.output.split())
    assert result.exit_code == 1
    assert "spec.prompts.reviewResponse.templateUri" in output and message in output
    assert not sim.requests  # nothing was asked


def test_every_documented_variable_is_accepted() -> None:
    for stage, names in prompts.VARIABLES.items():
        text = " ".join(f"{{{{ {name} }}}}" for name in names)
        prompts._compile(stage, "system", text, "test")  # no PromptTemplateError
    with pytest.raises(PromptTemplateError):
        prompts._compile(prompts.DIGEST, "system", "{{ domain }}", "test")
