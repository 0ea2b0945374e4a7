"""Run an Argo CD health script with a real Lua interpreter: the object goes in as a Lua table literal.

The interpreter is Lua 5.1 (the language Argo CD's gopher-lua implements) embedded through `lupa`, a PyPI
wheel in the dev dependencies, so every fresh machine runs these tests without a system package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def run_lua(program: str) -> Any:
    """What a Lua 5.1 chunk returns, run in a fresh interpreter (no state leaks between checks)."""
    from lupa import lua51

    return lua51.LuaRuntime(unpack_returned_tuples=True).execute(program)


def to_lua(value: Any) -> str:
    """A Lua literal for a JSON-like value (Argo CD hands health scripts the object as such a table)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid Lua escapes for what manifests carry
    if isinstance(value, list):
        return "{" + ", ".join(to_lua(item) for item in value) + "}"
    if isinstance(value, dict):
        fields = (f"[{json.dumps(str(k))}] = {to_lua(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(fields) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def run_health_check(script: Path, obj: dict[str, Any]) -> dict[str, str]:
    """`{"status": ..., "message": ...}` as the script returns it."""
    program = (
        f"obj = {to_lua(obj)}\n"
        f"local hs = (function()\n{script.read_text(encoding='utf-8')}\nend)()\n"
        "return hs.status, hs.message or ''\n"
    )
    status, message = run_lua(program)
    return {"status": status, "message": message}
