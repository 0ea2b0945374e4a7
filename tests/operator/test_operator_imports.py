"""The operator process imports none of the engines' packages: the operator image carries only pyproject's base
dependencies, so an engine import reached from `quorum operator run` would crash it there."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement

from tests.conftest import REPO

# What `quorum operator run` loads: the CLI (every sub-command module), the handlers and the runner.
OPERATOR_ENTRY = "import quorum.cli.main, quorum.handlers.register, quorum.handlers.runner"


def _extra_only_modules() -> set[str]:
    """Top-level modules of the distributions named only by the extras (engines, torch), not by the base."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {Requirement(r).name.lower() for r in project["dependencies"]}
    extras = (
        {Requirement(r).name.lower() for rs in project["optional-dependencies"].values() for r in rs}
        - base
        - {"quorum"}
    )
    return {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(d.lower().replace("_", "-") in extras for d in dists)
    }


def _modules_after(statement: str) -> set[str]:
    # kubernetes imports kubernetes-validate (and its jsonschema) when present: a dev tool the images lack
    code = "\n".join(
        [
            "import json, sys",
            "sys.modules['kubernetes_validate'] = None",
            statement,
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))",
        ]
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'operator'}:{REPO}"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_operator_process_imports_no_engine_package() -> None:
    engine_modules = _extra_only_modules()
    assert {"numpy", "onnxruntime", "sentence_transformers", "jinja2", "faiss", "pyarrow"} <= engine_modules
    assert sorted(_modules_after(OPERATOR_ENTRY) & engine_modules) == []


def test_the_lazy_package_exports_are_the_ones_listed() -> None:
    import quorum.gra

    assert sorted(quorum.gra.__all__) == sorted(quorum.gra._EXPORTS)
    assert quorum.gra.GraConfig.__module__ == "quorum.gra.config"


def test_the_check_sees_an_engine_import() -> None:
    """The same probe catches an engine module imported at the top of a module the operator reaches."""
    assert "numpy" in _modules_after(f"{OPERATOR_ENTRY}\nimport quorum.embedding")
