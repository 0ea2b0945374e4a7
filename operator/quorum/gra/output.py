"""The published dataset: one schema for every layout and file format, and the files trainers look for.

Why a fixed schema: trainers and `datasets` align columns by type, so a run's output must not change shape with
the format (JSONL vs Parquet), the rubric (dimension names) or the pool (model names). Everything that varies
by name is therefore a list of `{model, ...}` / `{dimension, score}` entries, and optional parts are typed
nulls. `DATASET_SCHEMA` is the one definition: Parquet is written with it, JSONL rows are built by the same
function, and the dataset card declares it to `datasets` (`load_dataset(<output dir>)`), so a JSONL run and a
Parquet run concatenate.

`rejected.jsonl` carries every candidate that is not in the dataset with the same `provenance` (plus its status,
its error and the task as written), then the per-seed calls that failed. Beside the data the merge writes
`dataset_info.json` (LLaMA-Factory's dataset registry entry) and `README.md` (a dataset card with the counts,
the pool and its roles, the gate settings, per-reviewer reliability and reviewer agreement).

Rows are built from typed `SampleRecord`s here and nowhere else.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import yaml

from quorum.api.common import DataFormat
from quorum.api.synthesis import RecordFormat
from quorum.gra.records import jsonl_bytes
from quorum.gra.sample import ROUNDS, RoundOutcome, SampleRecord, SampleStatus
from quorum.locations import Location

_SCORE = pa.struct([("dimension", pa.string()), ("score", pa.float64())])
_REVIEW = pa.struct(
    [
        ("model", pa.string()),
        ("score", pa.float64()),
        ("critique", pa.string()),
        ("scores", pa.list_(_SCORE)),
        ("excluded", pa.bool_()),
    ]
)
_ADJUDICATION = pa.struct(
    [
        ("model", pa.string()),
        ("fallback", pa.bool_()),
        ("decision", pa.string()),
        ("score", pa.float64()),
        ("reason", pa.string()),
    ]
)
_ROUND = pa.struct(
    [
        ("mu", pa.float64()),
        ("sigma", pa.float64()),
        ("gate", pa.string()),
        ("reason", pa.string()),
        ("outcome", pa.string()),
        ("reviews", pa.list_(_REVIEW)),
        ("adjudication", _ADJUDICATION),
    ]
)
PROVENANCE = pa.struct(
    [
        ("round", pa.int64()),
        ("slot", pa.int64()),
        ("shard", pa.int64()),
        ("status", pa.string()),
        ("gatePath", pa.string()),
        ("generator", pa.string()),
        ("reviewers", pa.list_(pa.string())),
        ("independent", pa.bool_()),
        ("demoSeedIds", pa.list_(pa.string())),
        ("sourceSeedId", pa.string()),
        ("review", pa.struct([("instruction", _ROUND), ("response", _ROUND)])),
        ("dedup", pa.struct([("neighbour", pa.string()), ("similarity", pa.float64())])),
        ("digestFilled", pa.bool_()),
        ("tokens", pa.list_(pa.struct([("model", pa.string()), ("prompt", pa.int64()), ("completion", pa.int64())]))),
    ]
)
_TURN_OPENAI = pa.struct([("role", pa.string()), ("content", pa.string())])
_TURN_SHAREGPT = pa.struct([("from", pa.string()), ("value", pa.string())])
_BODY: dict[RecordFormat, list[tuple[str, pa.DataType]]] = {
    RecordFormat.OPENAI: [("messages", pa.list_(_TURN_OPENAI))],
    RecordFormat.SHAREGPT: [("conversations", pa.list_(_TURN_SHAREGPT))],
    RecordFormat.ALPACA: [("instruction", pa.string()), ("input", pa.string()), ("output", pa.string())],
}


def dataset_schema(layout: RecordFormat) -> pa.Schema:
    """Columns of `dataset.*`: id and domain, the layout's training columns, the digest, the provenance."""
    return pa.schema(
        [
            ("id", pa.string()),
            ("domain", pa.string()),
            *_BODY[layout],
            ("keywords", pa.list_(pa.string())),
            ("summary", pa.string()),
            ("provenance", PROVENANCE),
        ]
    )


def training_row(record: SampleRecord, layout: RecordFormat) -> dict[str, Any]:
    """One published row of a kept record."""
    sample = record.sample
    assert sample is not None, f"{record.id} is kept without a sample"
    prompt = f"{sample.instruction}\n\n{sample.input}" if sample.input else sample.instruction
    if layout == RecordFormat.SHAREGPT:
        body: dict[str, Any] = {
            "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": sample.output}]
        }
    elif layout == RecordFormat.OPENAI:
        body = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": sample.output}]}
    else:
        body = {"instruction": sample.instruction, "input": sample.input, "output": sample.output}
    return {
        "id": record.id,
        "domain": record.domain,
        **body,
        "keywords": list(sample.keywords),
        "summary": sample.summary,
        "provenance": provenance(record),
    }


def rejected_row(record: SampleRecord) -> dict[str, Any]:
    """One row of rejected.jsonl for a candidate that is not in the dataset: its status and error, the task
    as written (nulls when generation failed) and the same `provenance` as a dataset row."""
    sample = record.sample
    return {
        "id": record.id,
        "kind": "sample",
        "status": record.status.value,
        "error": None if record.error is None else record.error.to_json(),
        "domain": record.domain,
        "instruction": None if sample is None else sample.instruction,
        "input": None if sample is None else sample.input,
        "output": None if sample is None else sample.output,
        "keywords": [] if sample is None else list(sample.keywords),
        "summary": None if sample is None else sample.summary,
        "provenance": provenance(record),
    }


def failed_call_row(entry: dict[str, Any]) -> dict[str, Any]:
    """One row of rejected.jsonl for a per-seed call (classification, digest, calibration) that failed."""
    return {
        "id": entry["key"],
        "kind": "call",
        "status": SampleStatus.FAILED.value,
        "error": entry["error"],
        "seedId": entry["seedId"],
    }


def provenance(record: SampleRecord) -> dict[str, Any]:
    """gra.md "Every record carries its provenance", in the published schema (`PROVENANCE`)."""
    dedup = record.dedup
    return {
        "round": record.round,
        "slot": record.slot,
        "shard": record.shard,
        "status": record.status.value,
        "gatePath": record.gate_path,
        "generator": record.generator,
        "reviewers": list(record.reviewers),
        "independent": record.independent,
        "demoSeedIds": list(record.demo_seed_ids),
        "sourceSeedId": record.source_seed_id,
        "review": {name: _round(record.review.get(name)) for name in ROUNDS},
        "dedup": {
            "neighbour": None if dedup is None else dedup.label,
            "similarity": None if dedup is None else float(dedup.similarity),
        },
        "digestFilled": record.digest_filled,
        "tokens": [
            {"model": model, "prompt": used.prompt, "completion": used.completion}
            for model, used in sorted(record.tokens.items())
        ],
    }


def _round(outcome: RoundOutcome | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    adjudication = outcome.adjudication
    return {
        "mu": _number(outcome.mu),
        "sigma": _number(outcome.sigma),
        "gate": outcome.gate.value,
        "reason": outcome.reason,
        "outcome": outcome.outcome.value,
        "reviews": [
            {
                "model": review.model,
                "score": review.score,
                "critique": review.critique,
                "scores": [{"dimension": d, "score": float(s)} for d, s in review.scores.items()],
                "excluded": review.excluded,
            }
            for review in outcome.reviews
        ],
        "adjudication": None
        if adjudication is None
        else {**adjudication.to_json(), "score": float(adjudication.score)},
    }


def _number(value: float | None) -> float | None:
    return None if value is None else float(value)


def write_dataset(out: Location, records: list[SampleRecord], layout: RecordFormat, fmt: DataFormat) -> Location:
    rows = [training_row(r, layout) for r in records]
    if fmt == DataFormat.PARQUET:
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=dataset_schema(layout)), buffer)
        target = out / "dataset.parquet"
        target.write_bytes(buffer.getvalue())
        return target
    target = out / "dataset.jsonl"
    target.write_bytes(jsonl_bytes(rows))
    return target


def write_rejected(out: Location, records: list[SampleRecord], failed_calls: list[dict[str, Any]]) -> Location:
    """`rejected.jsonl`: every candidate not in the dataset, then every failed per-seed call."""
    target = out / "rejected.jsonl"
    target.write_bytes(jsonl_bytes([*map(rejected_row, records), *map(failed_call_row, failed_calls)]))
    return target


# --- what trainers read beside the data ----------------------------------------------------------------------


def llama_factory_info(name: str, file_name: str, layout: RecordFormat) -> dict[str, Any]:
    """LLaMA-Factory's `dataset_info.json`: point its `dataset_dir` at the output and use `dataset: <name>`."""
    entry: dict[str, Any] = {"file_name": file_name}
    if layout == RecordFormat.OPENAI:
        entry |= {
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        }
    elif layout == RecordFormat.SHAREGPT:
        entry |= {"formatting": "sharegpt", "columns": {"messages": "conversations"}}
    else:
        entry |= {"formatting": "alpaca", "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    return {name: entry}


def features_yaml(schema: pa.Schema | pa.StructType) -> list[dict[str, Any]]:
    """The `dataset_info.features` list of a Hugging Face dataset card for an Arrow schema."""
    return [{"name": field.name, **_feature(field.type)} for field in schema]


_DTYPES = {pa.string(): "string", pa.int64(): "int64", pa.float64(): "float64", pa.bool_(): "bool"}


def _feature(kind: pa.DataType) -> dict[str, Any]:
    if pa.types.is_struct(kind):
        return {"struct": features_yaml(kind)}
    if pa.types.is_list(kind):
        inner = _feature(kind.value_type)
        return {"list": inner["dtype"] if "dtype" in inner else next(iter(inner.values()))}
    return {"dtype": _DTYPES[kind]}


def dataset_card(manifest: dict[str, Any], file_name: str, layout: RecordFormat) -> str:
    """`README.md`: YAML metadata `datasets` loads the data with (schema, split), then what a reader needs to
    judge the data. The licence is the user's to state (it depends on the seeds and the models)."""
    metadata = {
        "pretty_name": manifest["name"],
        "tags": ["synthetic", "gra", "quorum"],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": file_name}]}],
        "dataset_info": {"features": features_yaml(dataset_schema(layout))},
    }
    spec = manifest["spec"]
    counts = manifest["counts"]
    review = spec.get("review", {})
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        f"# {manifest['name']}",
        "",
        f"Instruction data synthesised by Quorum's GRA engine (generator, reviewers, adjudicator); `{layout}` "
        f"layout in `{file_name}`, rejected samples in `rejected.jsonl`, the full run record in `manifest.json`.",
        "",
        "## Counts",
        "",
        "| " + " | ".join(counts) + " |",
        "|" + "---|" * len(counts),
        "| " + " | ".join(str(v) for v in counts.values()) + " |",
        "",
        "## Models and roles",
        "",
        *[
            f"- `{m['name']}` ({m.get('model') or m.get('endpoint', {}).get('model', '?')}): "
            f"{', '.join(m.get('roles', ['generator', 'reviewer', 'adjudicator']))}"
            for m in spec["models"]
        ],
        f"- independent reviews: {str(manifest.get('independent')).lower()}",
        "",
        "## Gate",
        "",
        f"- {review.get('reviewers', 3)} reviewers per sample, scale 1–{review.get('scale', 10)}",
        f"- accept when μ ≥ {review.get('acceptAtLeast', 7.0)} and σ ≤ {review.get('maxStd', 1.5)}; reject when "
        f"μ < {review.get('rejectBelow', 5.0)}; grey zone: {review.get('greyZone', 'reject')}",
        f"- adjudication: {'on' if spec.get('adjudication', {}).get('enabled', True) else 'off'}",
        f"- acceptance {manifest['rates']['acceptance']:.1%}, adjudication {manifest['rates']['adjudication']:.1%}, "
        f"reviewer agreement (σ ≤ maxStd) {manifest['rates']['reviewerAgreement']:.1%}",
        "",
        *_reliability(manifest),
        "## Licence",
        "",
        "Not set by Quorum: it depends on the licences of the seed data and of the models that wrote and reviewed "
        "the samples. Add a `license:` field to the metadata above before you publish.",
        "",
    ]
    return "\n".join(lines)


def _reliability(manifest: dict[str, Any]) -> list[str]:
    """Per-reviewer reliability (the report's table), then reviewer-vs-reviewer agreement."""
    from quorum.gra.report import reliability_lines

    lines = reliability_lines(manifest)
    pairs = manifest.get("reviewerPairs") or {}
    if pairs:
        lines += ["## Reviewer agreement", "", "| pair | mean abs. score difference | pairs |", "|---|---|---|"]
        lines += [f"| {pair} | {v['meanAbsDiff']} | {v['pairs']} |" for pair, v in pairs.items()]
        lines.append("")
    return lines
