"""Small helpers every sub-command shares."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from quorum.api.base import format_validation_error
from quorum.api.resources import Resource, load_one

console = Console(stderr=True)
T = TypeVar("T", bound=Resource)

ManifestArg = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="Manifest (YAML) to read.")


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def read_resource(path: Path, kind: type[T]) -> T:
    """Load one resource of `kind`, turning validation errors into a readable message naming the field."""
    try:
        return load_one(path, kind)
    except ValidationError as error:
        fail(f"{path} is not a valid {kind.kind_name}:\n{format_validation_error(error)}")
    except ValueError as error:
        fail(str(error))
