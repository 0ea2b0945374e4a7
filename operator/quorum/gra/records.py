"""Engine records on the wire: which count as kept, and JSONL encoding. The published layouts (Alpaca,
ShareGPT, OpenAI messages) and their schema live in `quorum.gra.output`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from quorum.locations import Location, as_location

KEPT = frozenset({"accepted", "adjudicated-accept"})


def is_kept(record: dict[str, Any]) -> bool:
    return record.get("status") in KEPT


def jsonl_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def read_jsonl(path: Path | Location) -> list[dict[str, Any]]:
    source = as_location(path)
    if not source.exists():
        return []
    return [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
