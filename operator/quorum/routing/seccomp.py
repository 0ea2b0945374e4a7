"""Kernel-enforced guards for graded code, installed without any privilege (seccomp filter mode only needs
`no_new_privs`), so they hold in a pod with every capability dropped, where `unshare` is refused.

Why seccomp and not a Python stub over `socket`: model-written code can start a fresh interpreter, use
`ctypes`, or call `os.execv`; a filter installed in the process is inherited by everything it starts and can
never be removed. This module imports only the standard library: the sandbox also pastes its source in front
of the graded program (see `sandbox.py`), where nothing of Quorum is importable.

Two filters, both answering EPERM (so the program sees an ordinary `PermissionError`):
- `NETWORK`: no sockets at all (`socket`), no io_uring (it can open sockets), no `ptrace`/`process_vm_*` on
  other processes;
- `PROCESSES`: no `execve`/`execveat`, no `fork`/`vfork`, no `clone` without `CLONE_THREAD` (threads are
  fine), `clone3` answered ENOSYS so the C library falls back to `clone`, where the flags can be inspected.
A syscall from another ABI (x32, i386 on x86-64) kills the process: the numbers above would not apply.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

NETWORK = "network"
PROCESSES = "processes"

_ARCH = {
    "x86_64": {
        "audit": 0xC000003E,
        "socket": 41,
        "io_uring_setup": 425,
        "ptrace": 101,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "execve": 59,
        "execveat": 322,
        "fork": 57,
        "vfork": 58,
        "clone": 56,
        "clone3": 435,
    },
    "aarch64": {
        "audit": 0xC00000B7,
        "socket": 198,
        "io_uring_setup": 425,
        "ptrace": 117,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "execve": 221,
        "execveat": 281,
        "clone": 220,
        "clone3": 435,
    },
}
_DENIED = {
    NETWORK: ("socket", "io_uring_setup", "ptrace", "process_vm_readv", "process_vm_writev"),
    PROCESSES: ("execve", "execveat", "fork", "vfork"),
}

_LD_ABS_W, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL_PROCESS = 0x7FFF0000, 0x80000000
_ERRNO = 0x00050000
_X32_BIT = 0x40000000
_CLONE_THREAD = 0x00010000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, _PR_SET_DUMPABLE = 38, 22, 2, 4


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def filter_program(guards: tuple[str, ...], machine: str | None = None) -> list[bytes]:
    """The BPF instructions of a filter denying the syscalls of `guards` on this machine's ABI."""
    numbers = _ARCH[machine or platform.machine()]
    deny = _ERRNO | errno.EPERM
    program = [_op(_LD_ABS_W, 4), _op(_JEQ, numbers["audit"], jt=1), _op(_RET, _KILL_PROCESS), _op(_LD_ABS_W, 0)]
    program += [_op(_JGE, _X32_BIT, jf=1), _op(_RET, _KILL_PROCESS)]
    for guard in guards:
        for name in _DENIED[guard]:
            if name in numbers:
                program += [_op(_JEQ, numbers[name], jf=1), _op(_RET, deny)]
    if PROCESSES in guards:
        program += [_op(_JEQ, numbers["clone3"], jf=1), _op(_RET, _ERRNO | errno.ENOSYS)]
        # clone: allowed only with CLONE_THREAD in its flags (args[0], low word at offset 16).
        program += [_op(_JEQ, numbers["clone"], jf=3), _op(_LD_ABS_W, 16), _op(_JSET, _CLONE_THREAD, jt=1)]
        program += [_op(_RET, deny)]
    return [*program, _op(_RET, _ALLOW)]


def install(*guards: str) -> None:
    """Install the filter for `guards` on the calling thread and everything it starts; irreversible."""
    program = b"".join(filter_program(guards))

    class _Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    prog = _Fprog(len(program) // 8, program)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def make_undumpable() -> None:
    """Hide this process's memory and `/proc/<pid>/environ` from other processes of the same user (the kernel
    then requires CAP_SYS_PTRACE to read them), so code it starts cannot read the API keys it holds."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE)")
