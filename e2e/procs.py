"""Start, find and stop the plane's processes through pid files.

`make cluster-up` must leave the plane running after Python exits, and `make cluster-down` (a different
process) must find and stop it, so every component gets a pid file holding its pid and its binary. Before
signalling a pid we check that it still runs that binary: a stale pid file never kills a stranger that
inherited the number. Test sessions additionally ask the kernel to kill the components when the Python
process dies (PR_SET_PDEATHSIG), so a test run killed with SIGKILL leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL us when the process that started us exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class PidFile:
    path: Path

    def write(self, pid: int, binary: Path) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n{binary}\n")

    def read(self) -> tuple[int, str] | None:
        try:
            pid, binary = self.path.read_text().split("\n")[:2]
            return int(pid), binary
        except (OSError, ValueError):
            return None

    def live_pid(self) -> int | None:
        """The recorded pid if that process is alive and still runs the recorded binary."""
        record = self.read()
        if record is None:
            return None
        pid, binary = record
        return pid if _runs(pid, binary) else None


def _runs(pid: int, binary: str) -> bool:
    """Whether `pid` is a live (not zombie) process executing `binary`.

    /proc/<pid>/exe is checked first: it is set at exec, while cmdline reads empty for an instant after it.
    """
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    try:
        exe = os.readlink(proc / "exe").removesuffix(" (deleted)")
        return exe == os.path.realpath(binary)
    except OSError:  # not ours to inspect: compare what it was started as
        try:
            return (proc / "cmdline").read_bytes().split(b"\0")[0].decode() == binary
        except OSError:
            return False


def spawn(
    name: str,
    argv: Sequence[str | Path],
    run_dir: Path,
    log_dir: Path,
    *,
    die_with_parent: bool,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start one component in its own session, output to log_dir/<name>.log, pid in run_dir/<name>.pid."""
    log_dir.mkdir(parents=True, exist_ok=True)
    args = [str(a) for a in argv]
    with open(log_dir / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
    PidFile(run_dir / f"{name}.pid").write(process.pid, Path(args[0]))
    return process


def stop(pid_file: PidFile, timeout: float = 10.0, reap: Callable[[], object] | None = None) -> None:
    """SIGTERM, wait up to `timeout`, then SIGKILL; removes the pid file. `reap` collects our own children."""
    pid = pid_file.live_pid()
    if pid is not None:
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid_file, reap):
            time.sleep(0.05)
        if _alive(pid_file, reap):
            _signal(pid, signal.SIGKILL)
            while _alive(pid_file, reap):
                time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        pid_file.path.unlink()


def _alive(pid_file: PidFile, reap: Callable[[], object] | None) -> bool:
    if reap is not None:
        reap()
    return pid_file.live_pid() is not None


def _signal(pid: int, sig: signal.Signals) -> None:
    """Signal the component's whole process group (it leads one: start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
