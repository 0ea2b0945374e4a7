"""Calibration data: where it lives, what a record is, the seeded split and a fingerprint of the content."""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from quorum.api.common import DataFormat
from quorum.api.ensemble import CalibrationDataset
from quorum.locations import Location, StorageAccessError, location


class DatasetError(ValueError):
    """The calibration data is missing, unreadable, or a record lacks a field; the message says where."""


@dataclass(frozen=True)
class CalibrationItem:
    question: str
    answer: str
    task: str
    tests: str | None = None


def _records(source: Location, data_format: DataFormat) -> list[dict]:
    try:
        data = source.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise DatasetError(f"calibration dataset {source} does not exist") from None
    except StorageAccessError as error:
        raise DatasetError(str(error)) from None
    if data_format is DataFormat.PARQUET:
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pylist()
    records = []
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{source}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{source}:{number}: a record must be a JSON object")
        records.append(record)
    return records


def load_dataset(
    source: CalibrationDataset, *, base_dir: Path, pvc_root: Path | None = None, file_root: Path | None = None
) -> list[CalibrationItem]:
    """Read and check every record; refuses the whole file on the first bad record (nothing half-loaded).
    The URI goes through `quorum.locations.location`, so `s3://` is read like the seeds of a SynthesisJob (with
    the AWS variables of the environment); `file_root` confines `file://` in cluster mode."""
    where = location(source.uri, base_dir=base_dir, pvc_root=pvc_root, file_root=file_root)
    fields = source.fields
    items = []
    for number, record in enumerate(_records(where, source.format), start=1):
        missing = [key for key in (fields.question, fields.answer, fields.task) if record.get(key) in (None, "")]
        if missing:
            raise DatasetError(f"{where}: record {number} lacks {', '.join(missing)}")
        tests = record.get(fields.tests)
        items.append(
            CalibrationItem(
                question=str(record[fields.question]),
                answer=str(record[fields.answer]),
                task=str(record[fields.task]),
                tests=str(tests) if tests else None,
            )
        )
    if not items:
        raise DatasetError(f"calibration dataset {where} has no records")
    return items


def fingerprint(items: list[CalibrationItem]) -> str:
    """SHA-256 of the records' content in order; the artifact records it so re-scoring can check the data."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(asdict(item), sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def split(items: list[CalibrationItem], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of each task into calibration and held-out indices (the paper's 70/30 per dataset).

    Every task with at least two items keeps at least one on each side."""
    by_task: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        by_task.setdefault(item.task, []).append(index)
    calibration: list[int] = []
    held_out: list[int] = []
    rng = random.Random(seed)
    for task in sorted(by_task):
        indices = by_task[task][:]
        rng.shuffle(indices)
        n_test = round(len(indices) * test_fraction)
        n_test = min(max(n_test, 1), len(indices) - 1) if len(indices) >= 2 else 0
        held_out.extend(indices[:n_test])
        calibration.extend(indices[n_test:])
    return sorted(calibration), sorted(held_out)
