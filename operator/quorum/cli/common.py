"""Small helpers every sub-command shares."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn, TypeVar

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console

from quorum.api.base import format_validation_error
from quorum.api.resources import Resource, load_one

console = Console(stderr=True)
T = TypeVar("T", bound=Resource)

ManifestArg = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="Manifest (YAML) to read.")


ManifestFile = typer.Argument(None, exists=True, dir_okay=False, readable=True, help="EnsembleRouter manifest (YAML).")
ConfigAlias = typer.Option(
    None, "--config", exists=True, dir_okay=False, readable=True, hidden=True, help="Old spelling of FILE."
)


def manifest_path(file: Path | None, config: Path | None) -> Path:
    """The manifest given as the positional FILE or through the hidden `--config` alias (pods still use it)."""
    if file is not None and config is not None and file != config:
        fail(f"give the manifest once: FILE ({file}) or --config ({config}), not both")
    path = file or config
    if path is None:
        fail("missing argument FILE: the manifest to read")
    return path


def manifest_argument(help_text: str) -> object:
    """A positional FILE checked by the command itself (pod paths resolve under `QUORUM_FS_ROOT` first)."""
    return typer.Argument(None, metavar="FILE", dir_okay=False, help=help_text, show_default=False)


PodConfigAlias = typer.Option(None, "--config", hidden=True, dir_okay=False, help="Old spelling of FILE.")


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)  # never wrapped: one error, one line
    raise typer.Exit(code)


def yaml_error_line(path: Path, error: yaml.YAMLError) -> str:
    """A YAML syntax error as one line: `file:line:column: problem`."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{where}: YAML syntax error: {problem}"


def read_resource(path: Path, kind: type[T]) -> T:
    """Load one resource of `kind`, turning validation errors into a readable message naming the field."""
    try:
        return load_one(path, kind)
    except yaml.YAMLError as error:
        fail(yaml_error_line(path, error))
    except ValidationError as error:
        fail(f"{path} is not a valid {kind.kind_name}:\n{format_validation_error(error)}")
    except ValueError as error:
        fail(str(error))
