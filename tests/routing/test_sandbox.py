"""The code-grading sandbox holds without privileges: the leak probe that stole a calibration pod's API keys
(spawn a fresh interpreter, read the parent's `/proc/<ppid>/environ`, send it to a listener) fails in the
mode the pod runs in: no capabilities, no user namespaces, the keys in the calibrating process's environment.

The same probe run unguarded by the same parent succeeds at every step, so the probe can fail."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from quorum.routing import seccomp
from quorum.routing.sandbox import run_tests

SECRET = "sk-calibration-secret-4242"

PROBE = """
import os, socket, subprocess, sys
leaks = []
if any(value == {secret!r} for value in os.environ.values()) or set(os.environ) - {{"LC_CTYPE"}}:
    leaks.append("environment")
try:
    subprocess.run([sys.executable, "-c", "print('child')"], check=True, capture_output=True)
    leaks.append("spawned")
except OSError as error:
    print("spawn refused:", error)
try:
    with open(f"/proc/{{os.getppid()}}/environ", "rb") as environ:
        if {secret!r}.encode() in environ.read():
            leaks.append("environ")
except OSError as error:
    print("environ refused:", error)
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"key")
    leaks.append("connected")
except OSError as error:
    print("connect refused:", error)
if [fd for fd in range(3, 256) if os.path.exists(f"/proc/self/fd/{{fd}}")]:
    leaks.append("fds")
print("LEAKS", " ".join(leaks))
"""

# The calibrating process of a pod: it holds the keys from the start (the pod spec's `secretKeyRef` env), runs
# with no capabilities at all, and grades the probe, guarded or (the control) as a plain child process.
PARENT = textwrap.dedent(
    """
    import asyncio, ctypes, subprocess, sys

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in range(64):
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP: nothing regained across exec
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]
    assert libc.capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()) == 0, ctypes.get_errno()
    status = open("/proc/self/status").read()
    assert "CapEff:\\t0000000000000000" in status, status

    mode, probe = sys.argv[1], sys.argv[2]
    if mode == "guarded":
        from quorum.routing.sandbox import run_tests
        print(asyncio.run(run_tests(probe, "")).output)
    else:
        print(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout)
    """
)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    yield server
    server.close()


def connections(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            server.accept()[0].close()
        except BlockingIOError:
            return count
        count += 1


def run_probe(mode: str, port: int) -> list[str]:
    probe = PROBE.format(secret=SECRET, port=port)
    environment = {**os.environ, "QUORUM_API_KEY_SIM": SECRET}
    done = subprocess.run(
        [sys.executable, "-c", PARENT, mode, probe], env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("LEAKS"))
    return line.split()[1:]


def test_the_leak_probe_fails_in_the_sandbox_the_pod_uses(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert run_probe("guarded", port) == []
    assert connections(listener) == 0


def test_the_same_probe_unguarded_leaks_so_it_can_fail(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert set(run_probe("unguarded", port)) >= {"environment", "spawned", "environ", "connected"}
    assert connections(listener) == 1


async def test_graded_code_keeps_threads_and_the_standard_library() -> None:
    code = "import threading, json\nbox = []\nt = threading.Thread(target=box.append, args=(json.dumps([1]),))"
    result = await run_tests(code + "\nt.start(); t.join()", "assert box == ['[1]']")
    assert result.passed, result.output


async def test_file_size_and_memory_are_limited() -> None:
    big_file = await run_tests("open('f', 'wb').write(b'x' * (64 * 2**20))", "")
    assert not big_file.passed and "File too large" in big_file.output
    big_memory = await run_tests("x = bytearray(4 * 2**30)", "", memory_bytes=512 * 2**20)
    assert not big_memory.passed and "MemoryError" in big_memory.output


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_the_filter_kills_foreign_abis_and_ends_by_allowing(machine: str) -> None:
    program = seccomp.filter_program((seccomp.NETWORK, seccomp.PROCESSES), machine)
    assert program[2] == seccomp._op(0x06, 0x80000000)  # wrong architecture: kill
    assert program[-1] == seccomp._op(0x06, 0x7FFF0000)
    assert len(program) < 256  # every jump offset fits BPF's 8 bits
