"""JSONL encoding and the one tolerant JSONL reader of the run's own files. What a sample record looks like
in JSON is `quorum.gra.sample`'s; the published layouts (Alpaca, ShareGPT, OpenAI messages, rejected.jsonl)
and their schema live in `quorum.gra.output`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from quorum.locations import Location, as_location


def jsonl_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    """Published files (the dataset, rejected.jsonl): the standard library's spacing, as they always read."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def run_jsonl_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    """The run's own files (journals, committed rounds), read back only by `parse_jsonl`: compact orjson lines.
    Why not `jsonl_bytes`: a worker journals every finished sample and call, and the standard encoder was about
    6% of its CPU, orjson's a tenth of that."""
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    """Every JSON object of JSONL text. The one reader of the run's own files: journals and caches are written
    as work finishes, so a crash can leave a last line cut short; such a line (or any line that is not a JSON
    object) is skipped, and the work it stood for is redone."""
    found = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def read_jsonl(path: Path | Location) -> list[dict[str, Any]]:
    """`parse_jsonl` of a file or object (none when it is missing)."""
    source = as_location(path)
    if not source.exists():
        return []
    return parse_jsonl(source.read_text())
