"""Run an Argo CD health script with a real Lua interpreter: the object goes in as a Lua table literal."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

LUA_INTERPRETERS = ("lua5.4", "lua5.3", "lua5.1", "lua")


def lua_interpreter() -> str | None:
    return next((path for name in LUA_INTERPRETERS if (path := shutil.which(name))), None)


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


def run_health_check(interpreter: str, script: Path, obj: dict[str, Any]) -> dict[str, str]:
    """`{"status": ..., "message": ...}` as the script returns it."""
    program = (
        f"obj = {to_lua(obj)}\n"
        f"local hs = (function()\n{script.read_text(encoding='utf-8')}\nend)()\n"
        'io.write(hs.status, "\\n", hs.message or "")\n'
    )
    result = subprocess.run([interpreter, "-"], input=program, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"{script}: {result.stderr}")
    status, _, message = result.stdout.partition("\n")
    return {"status": status, "message": message}
