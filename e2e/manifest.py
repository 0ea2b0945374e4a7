"""The record of what sits in a binary directory and how it was made.

A binary counts as present only when the file exists *and* manifest.json says it came from the current
recipe; an interrupted build records nothing, so the next run simply builds again. A file lock keeps two
concurrent `make k8s` runs (a developer and CI on one machine) from building into the same directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BuildStep:
    """One unit of work that produces `outputs` (file names in the binary directory) from `recipe`."""

    title: str
    outputs: tuple[str, ...]
    recipe: str
    run: Callable[[Path], None]


class Manifest:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / MANIFEST
        self.entries: dict[str, dict[str, object]] = {}
        if self.path.exists():
            self.entries = json.loads(self.path.read_text())

    @classmethod
    @contextlib.contextmanager
    def locked(cls, directory: Path) -> Iterator[Manifest]:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield cls(directory)

    def is_current(self, outputs: tuple[str, ...], recipe: str) -> bool:
        return all(
            (self.directory / name).is_file() and self.entries.get(name, {}).get("recipe") == recipe for name in outputs
        )

    def record(self, outputs: tuple[str, ...], recipe: str, seconds: float) -> None:
        for name in outputs:
            self.entries[name] = {
                "recipe": recipe,
                "seconds": round(seconds, 1),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=2, sort_keys=True) + "\n")
        tmp.replace(self.path)
