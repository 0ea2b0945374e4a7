"""One output schema whatever the file format, rubric or pool, and files trainers read as they are: the
`datasets` library concatenates a JSONL run with a Parquet run, TRL-style `messages` go through a real chat
template, LLaMA-Factory's `dataset_info.json` names columns that exist, and the dataset card describes the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quorum.api.synthesis import Postprocess, RecordFormat
from quorum.gra import GraConfig, run_local
from quorum.gra.output import dataset_schema, features_yaml
from quorum.gra.testing import GraScript
from quorum.llm import ModelEndpoint
from quorum.llm.simulated import SimulatedBackend
from tests.gra.conftest import make_spec


def synthesize(folder: Path, name: str, pool: list[str], **sections: Any) -> Path:
    """A real local run against a simulated pool; returns its output directory."""
    sim = SimulatedBackend(GraScript(), models=pool)
    url = sim.start_in_thread()
    try:
        sections = {"generation": {"target": 8, "rounds": 1}, "review": {"reviewers": 2}} | sections
        spec = make_spec(url, pool, **sections)
        out = folder / name
        endpoints = [ModelEndpoint(m, url, m, None, 8) for m in pool]
        run_local(GraConfig.from_spec(spec, name=name, base_dir=folder), out, endpoints=endpoints)
    finally:
        sim.stop_thread()
    return out


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A JSONL run and a Parquet run that differ in pool (model names) and rubric (dimension names)."""
    folder = tmp_path_factory.mktemp("runs")
    from tests.gra.conftest import SEEDS

    (folder / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SEEDS))
    jsonl = synthesize(folder, "jsonl-run", ["a", "b", "c"])
    parquet = synthesize(
        folder,
        "parquet-run",
        ["llama-8b", "qwen-7b", "mistral"],
        output={"uri": "file://unused", "format": "parquet"},
        review={"reviewers": 2, "instructionRubric": ["clarity", "fit for the domain"]},
    )
    return jsonl, parquet


def test_a_jsonl_run_and_a_parquet_run_load_with_datasets_and_concatenate(two_runs: tuple[Path, Path]) -> None:
    from datasets import concatenate_datasets, load_dataset

    jsonl_dir, parquet_dir = two_runs
    assert (jsonl_dir / "dataset.jsonl").exists() and (parquet_dir / "dataset.parquet").exists()
    first = load_dataset(str(jsonl_dir), split="train")
    second = load_dataset(str(parquet_dir), split="train")
    assert first.features == second.features
    both = concatenate_datasets([first, second])
    assert len(both) == len(first) + len(second) > 0

    # Per-rubric and per-model values are lists of entries, so new names add rows, never columns.
    review = second[0]["provenance"]["review"]["instruction"]["reviews"][0]
    assert {s["dimension"] for s in review["scores"]} == {"clarity", "fit for the domain"}
    assert {t["model"] for t in second[0]["provenance"]["tokens"]} <= {"llama-8b", "qwen-7b", "mistral"}
    # Parquet keeps provenance as nested structs, not a JSON string.
    import pyarrow.parquet as pq

    provenance = pq.read_schema(parquet_dir / "dataset.parquet").field("provenance").type
    assert provenance == dataset_schema(RecordFormat.OPENAI).field("provenance").type


def test_every_layout_has_the_same_provenance_and_the_card_declares_what_datasets_derives() -> None:
    from datasets import Features

    provenance = {dataset_schema(layout).field("provenance").type for layout in RecordFormat}
    assert len(provenance) == 1
    for layout in RecordFormat:
        schema = dataset_schema(layout)
        assert features_yaml(schema) == Features.from_arrow_schema(schema)._to_yaml_list()


@pytest.mark.slow
def test_messages_are_the_default_and_render_through_the_packaged_chat_template(two_runs: tuple[Path, Path]) -> None:
    """TRL's SFTTrainer applies the tokenizer's chat template to `messages`; so does this test, with the
    SmolLM2 tokenizer and template packaged in the GGUF file Quorum serves."""
    from datasets import load_dataset
    from transformers import AutoTokenizer

    from quorum.llm.local import packaged_chat_model_path

    assert Postprocess().format == RecordFormat.OPENAI  # the JSONL run left the layout to the default
    rows = load_dataset(str(two_runs[0]), split="train")
    gguf = packaged_chat_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    for row in rows:
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        user, assistant = row["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert f"<|im_start|>user\n{user['content']}<|im_end|>" in text
        assert text.rstrip().endswith(f"<|im_start|>assistant\n{assistant['content']}<|im_end|>")
        assert len(tokenizer(text)["input_ids"]) > 10


@pytest.mark.parametrize("layout", list(RecordFormat), ids=str)
def test_dataset_info_tells_llama_factory_which_columns_hold_the_turns(tmp_path: Path, layout: RecordFormat) -> None:
    from tests.gra.conftest import SEEDS

    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SEEDS))
    out = synthesize(tmp_path, "run", ["a", "b", "c"], postprocess={"format": str(layout)})
    info = json.loads((out / "dataset_info.json").read_text())["run"]
    row = json.loads((out / info["file_name"]).read_text().splitlines()[0])
    assert set(info["columns"].values()) <= set(row)
    if layout == RecordFormat.OPENAI:
        assert info["formatting"] == "sharegpt" and info["tags"]["role_tag"] in row["messages"][0]
    elif layout == RecordFormat.ALPACA:
        assert info["columns"] == {"prompt": "instruction", "query": "input", "response": "output"}


def test_the_dataset_card_has_counts_pool_roles_gate_and_leaves_the_licence(two_runs: tuple[Path, Path]) -> None:
    out = two_runs[0]
    card = (out / "README.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert card.startswith("---\n") and "dataset_info:" in card
    assert f"| {manifest['counts']['accepted']} |" in card or str(manifest["counts"]["accepted"]) in card
    for model in ("a", "b", "c"):
        assert f"- `{model}` (" in card
    assert "generator, reviewer, adjudicator" in card
    assert "accept when μ ≥ 7.0 and σ ≤ 1.5" in card
    assert "## Licence" in card and "license:" not in card.split("---")[1]
    assert "## Reviewer reliability" in card and "Krippendorff" in card  # the report's per-reviewer table
