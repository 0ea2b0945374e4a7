"""Reading seed records (JSONL or Parquet) into a uniform shape, with bad lines reported by number."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from quorum.api.common import DataFormat
from quorum.api.synthesis import SeedFields
from quorum.locations import Location, as_location

log = logging.getLogger(__name__)


class OnBadSeed(StrEnum):
    SKIP = "skip"
    FAIL = "fail"


class BadSeedData(ValueError):
    """The seed file has a malformed record and the policy is `fail`."""


@dataclass(frozen=True)
class BadSeed:
    line: int
    reason: str


@dataclass
class Seed:
    id: str
    instruction: str
    input: str = ""
    output: str = ""
    domain: str | None = None
    index: int = 0
    """Position in the seed file (0-based among good records); shards partition on it."""

    def prompt_text(self) -> str:
        """What dedup and clustering embed: the instruction plus its input, as for generated samples."""
        return f"{self.instruction}\n{self.input}".strip()


@dataclass
class SeedSet:
    seeds: list[Seed]
    bad: list[BadSeed] = field(default_factory=list)


def read_seeds(
    path: Path | Location,
    fmt: DataFormat,
    fields: SeedFields,
    on_bad: OnBadSeed = OnBadSeed.FAIL,
) -> SeedSet:
    """Every good seed in file order. A bad record (not JSON, not an object, no instruction) is reported with
    its 1-based line (JSONL) or row (Parquet) number; `fail` raises on the first one, `skip` keeps going."""
    path = as_location(path)
    if not path.exists():
        raise FileNotFoundError(f"seed file {path} does not exist")
    rows = _parquet_rows(path) if fmt == DataFormat.PARQUET else _jsonl_rows(path)
    result = SeedSet(seeds=[])
    for number, row, error in rows:
        seed = None if error else _to_seed(row, fields, number, len(result.seeds))
        if seed is None:
            reason = error or f"record has no non-empty {fields.instruction!r} string"
            where = "line" if fmt == DataFormat.JSONL else "row"
            if on_bad == OnBadSeed.FAIL:
                raise BadSeedData(f"{path}: {where} {number}: {reason}")
            log.warning("skipping bad seed at %s %s %d: %s", path, where, number, reason)
            result.bad.append(BadSeed(number, reason))
            continue
        result.seeds.append(seed)
    return result


def read_instruction_file(path: Path | Location) -> list[str]:
    """Benchmark prompts for decontamination: one JSON object with `instruction` (or `prompt`) per line."""
    texts = []
    for _number, row, error in _jsonl_rows(as_location(path)):
        if error is None and isinstance(row, dict):
            text = row.get("instruction") or row.get("prompt")
            if isinstance(text, str) and text.strip():
                texts.append(text.strip())
    return texts


def _jsonl_rows(path: Location) -> list[tuple[int, Any, str | None]]:
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line), None))
        except json.JSONDecodeError as error:
            rows.append((number, None, f"not valid JSON ({error.msg} at column {error.colno})"))
    return rows


def _parquet_rows(path: Location) -> list[tuple[int, Any, str | None]]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(path.read_bytes()))
    return [(number, row, None) for number, row in enumerate(table.to_pylist(), start=1)]


def _text(row: dict[str, Any], key: str) -> str:
    if not key:
        return ""
    value = row.get(key)
    return value.strip() if isinstance(value, str) else ""


def _to_seed(row: Any, fields: SeedFields, number: int, index: int) -> Seed | None:
    if not isinstance(row, dict):
        return None
    instruction = _text(row, fields.instruction)
    if not instruction:
        return None
    raw_id = row.get(fields.id) if fields.id else None
    return Seed(
        id=str(raw_id) if raw_id not in (None, "") else f"line-{number}",
        instruction=instruction,
        input=_text(row, fields.input),
        output=_text(row, fields.output),
        domain=_text(row, fields.domain) or None,
        index=index,
    )


def shard_of(seed: Seed, shard_count: int) -> int:
    """Seeds are dealt round-robin so every shard sees every part of the file (and usually every domain)."""
    return seed.index % shard_count
