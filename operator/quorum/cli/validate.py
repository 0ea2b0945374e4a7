"""`quorum validate`: check manifests against the API models before applying them."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from pydantic import ValidationError

from quorum.api.base import format_validation_error
from quorum.api.resources import API_VERSION, parse_resource
from quorum.cli.common import console, yaml_error_line


def validate(paths: list[Path] = typer.Argument(..., exists=True, help="Manifests to check.")) -> None:
    """Validate Quorum resources in YAML files (the same rules the API server enforces)."""
    failures = 0
    for path in paths:
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as error:
            failures += 1
            console.print(f"[red]invalid[/red] {yaml_error_line(path, error)}")
            continue
        for index, document in enumerate(documents):
            if not document or document.get("apiVersion") != API_VERSION:
                continue
            name = f"{path}#{index} {document.get('kind')}/{(document.get('metadata') or {}).get('name')}"
            try:
                parse_resource(document)
            except ValidationError as error:
                failures += 1
                console.print(f"[red]invalid[/red] {name}\n{format_validation_error(error)}")
            else:
                console.print(f"[green]valid[/green] {name}")
    if failures:
        raise typer.Exit(1)
