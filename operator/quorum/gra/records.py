"""Output records: the three layouts (Alpaca, ShareGPT, OpenAI messages) and JSONL/Parquet writers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from quorum.api.common import DataFormat
from quorum.api.synthesis import RecordFormat

KEPT = frozenset({"accepted", "adjudicated-accept"})


def is_kept(record: dict[str, Any]) -> bool:
    return record.get("status") in KEPT


def _prompt(sample: dict[str, Any]) -> str:
    return f"{sample['instruction']}\n\n{sample['input']}" if sample.get("input") else sample["instruction"]


def format_record(record: dict[str, Any], layout: RecordFormat) -> dict[str, Any]:
    """The training record plus `id`, `domain`, the digest and the full provenance."""
    sample = record["sample"]
    if layout == RecordFormat.SHAREGPT:
        body: dict[str, Any] = {
            "conversations": [{"from": "human", "value": _prompt(sample)}, {"from": "gpt", "value": sample["output"]}]
        }
    elif layout == RecordFormat.OPENAI:
        body = {
            "messages": [
                {"role": "user", "content": _prompt(sample)},
                {"role": "assistant", "content": sample["output"]},
            ]
        }
    else:
        body = {"instruction": sample["instruction"], "input": sample.get("input", ""), "output": sample["output"]}
    provenance = {k: v for k, v in record.items() if k not in ("sample", "id", "domain")}
    return {
        "id": record["id"],
        "domain": record["domain"],
        **body,
        "keywords": sample.get("keywords", []),
        "summary": sample.get("summary", ""),
        "provenance": provenance,
    }


def write_atomic(path: Path, data: bytes) -> None:
    """Write beside the target, fsync, rename: a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def jsonl_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON object of a JSONL file (none when it is missing). The one reader of the run's own files:
    journals and caches are appended as work finishes, so a crash can leave a last line cut short; such a line
    (or any line that is not a JSON object) is skipped, and the work it stood for is redone."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def write_dataset(out_dir: Path, records: list[dict[str, Any]], layout: RecordFormat, fmt: DataFormat) -> Path:
    formatted = [format_record(r, layout) for r in records]
    if fmt == DataFormat.PARQUET:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [{**r, "provenance": json.dumps(r["provenance"], ensure_ascii=False)} for r in formatted]
        path = out_dir / "dataset.parquet"
        temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        pq.write_table(pa.Table.from_pylist(rows), temp)
        os.replace(temp, path)
        return path
    path = out_dir / "dataset.jsonl"
    write_atomic(path, jsonl_bytes(formatted))
    return path
