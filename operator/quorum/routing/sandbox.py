"""Run untrusted model-written code against its tests, isolated as far as this machine allows.

Each run gets a fresh temporary directory, an isolated interpreter (`python -I`), an empty environment,
resource limits (CPU seconds, address space, file size, open files) and a wall-clock time-out that kills the
whole process group. Networking is cut with an unprivileged network namespace (`unshare --net`) when the
kernel allows it; otherwise a prelude removes the socket module (best effort, reported by `network_isolated`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

_NO_SOCKETS = (
    "import sys as _s\nfor _m in ('socket', '_socket', 'ssl', '_ssl'):\n    _s.modules[_m] = None\ndel _s, _m\n"
)


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    timed_out: bool
    returncode: int | None
    output: str


@functools.cache
def network_isolated() -> bool:
    """Whether `unshare --user --net` works here (it needs unprivileged user namespaces)."""
    unshare = shutil.which("unshare")
    if not unshare:
        return False
    try:
        probe = subprocess.run(
            [unshare, "--user", "--net", "--map-root-user", "true"], capture_output=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _limit_resources(cpu_seconds: int, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 2**20, 16 * 2**20))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


async def run_tests(
    code: str, tests: str, *, timeout_seconds: float = 10.0, memory_bytes: int = 1024 * 2**20
) -> SandboxResult:
    """Run `code` followed by `tests` (asserts); passed means exit status 0 within the time-out."""
    with tempfile.TemporaryDirectory(prefix="quorum-sandbox-") as workdir:
        program = Path(workdir, "program.py")
        isolated = network_isolated()
        program.write_text(("" if isolated else _NO_SOCKETS) + code + "\n\n" + tests + "\n", encoding="utf-8")
        command = [sys.executable, "-I", "-B", str(program)]
        if isolated:
            command = [shutil.which("unshare") or "unshare", "--user", "--net", "--map-root-user", *command]
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=workdir,
            env={"PATH": "/usr/bin:/bin", "HOME": workdir, "PYTHONHASHSEED": "0"},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=functools.partial(_limit_resources, int(timeout_seconds) + 1, memory_bytes),
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout=timeout_seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            return SandboxResult(passed=False, timed_out=True, returncode=None, output="")
        text = output.decode("utf-8", "replace")[-2000:]
        return SandboxResult(
            passed=process.returncode == 0, timed_out=False, returncode=process.returncode, output=text
        )
