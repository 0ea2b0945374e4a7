"""Run untrusted model-written code against its tests, with nothing of the calibration process in reach and
without any privilege (a pod with every capability dropped, where `unshare` is refused).

The calibration process holds the backends' API keys in its environment (`QUORUM_API_KEY_*`). Before the
first program runs it makes itself non-dumpable, so no process of the same user can read its
`/proc/<pid>/environ` or memory. Each program then runs in a launcher: a fresh `python -I` with an empty
environment, no inherited file descriptors (stdin from /dev/null, stdout a pipe) and its own session, which
before any graded line runs
- sets rlimits on CPU seconds, address space, file size, open files, core dumps and processes;
- installs seccomp filters (`quorum.routing.seccomp`): no sockets, no io_uring, no ptrace or
  `process_vm_*`, no `execve`, no `fork` (threads only).
A wall-clock time-out kills the whole session. In the cluster a NetworkPolicy also denies the calibration
pod every egress except DNS and its own resource's backends (`builders/network.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from quorum.routing import seccomp

FILE_SIZE_LIMIT = 16 * 2**20
OPEN_FILES_LIMIT = 64

_LAUNCHER = """\
import resource, runpy, sys
guard, program, cpu, memory, file_size, open_files = sys.argv[1:7]
for which, value in (
    (resource.RLIMIT_CPU, int(cpu)),
    (resource.RLIMIT_AS, int(memory)),
    (resource.RLIMIT_FSIZE, int(file_size)),
    (resource.RLIMIT_NOFILE, int(open_files)),
    (resource.RLIMIT_CORE, 0),
    (resource.RLIMIT_NPROC, 0),
):
    resource.setrlimit(which, (value, value))
with open(guard, encoding="utf-8") as source:
    guards = {}
    exec(compile(source.read(), guard, "exec"), guards)
guards["install"](guards["NETWORK"], guards["PROCESSES"])
del guards, source, guard, which, value
sys.argv = [program]
runpy.run_path(program, run_name="__main__")
"""
"""What the fresh interpreter runs: limits and filters first, then the program as `__main__`."""


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    timed_out: bool
    returncode: int | None
    output: str


@functools.cache
def _protect_this_process() -> None:
    """Once per process: the keys in our environment become unreadable to anything we start."""
    seccomp.make_undumpable()


def launcher_command(program: Path, *, cpu_seconds: int, memory_bytes: int) -> list[str]:
    """The argv that runs `program` under the limits and filters."""
    limits = [str(cpu_seconds), str(memory_bytes), str(FILE_SIZE_LIMIT), str(OPEN_FILES_LIMIT)]
    return [sys.executable, "-I", "-B", "-c", _LAUNCHER, seccomp.__file__, str(program), *limits]


async def run_tests(
    code: str, tests: str, *, timeout_seconds: float = 10.0, memory_bytes: int = 1024 * 2**20
) -> SandboxResult:
    """Run `code` followed by `tests` (asserts); passed means exit status 0 within the time-out."""
    _protect_this_process()
    with tempfile.TemporaryDirectory(prefix="quorum-sandbox-") as workdir:
        program = Path(workdir, "program.py")
        program.write_text(code + "\n\n" + tests + "\n", encoding="utf-8")
        process = await asyncio.create_subprocess_exec(
            *launcher_command(program, cpu_seconds=int(timeout_seconds) + 1, memory_bytes=memory_bytes),
            cwd=workdir,
            env={},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
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
