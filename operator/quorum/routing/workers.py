"""Several router processes on one port: each worker is a forked copy of `quorum router serve` with its own
event loop, engine and listening socket (SO_REUSEPORT, so the kernel spreads connections over them).

Why processes: one Python event loop forwards on one core; a pass-through request costs a few hundred
microseconds of CPU there, so a single process caps the pod near one core while the Rust router it is
compared with uses every core. What workers do not share: circuit breakers and concurrency caps are per
worker (a dead backend costs each worker its own failures before its circuit opens; `maxConcurrency` and a
model's `maxConcurrency` bound each worker). Metrics are merged across workers (`quorum.routing.metrics`).
A worker that exits takes the others down with it, so the pod restarts whole instead of serving short-handed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_workers(count: int, serve: Callable[[], None]) -> int:
    """Fork `count` workers that each call `serve()` (which returns when told to stop); relay SIGTERM and
    SIGINT to them; return the exit status to end with (the first failure's, or 0 after a clean stop)."""
    children: list[int] = []
    stopping = False

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            _signal(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in SIGNALS}
    try:
        # signals wait while forking: a child must not run the parent's handler before it sets its own
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            for _ in range(count):
                pid = os.fork()
                if pid == 0:
                    _worker(serve)
                children.append(pid)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        status = 0
        while children:
            pid, code = os.wait()
            children.remove(pid)
            if not stopping:  # a worker ended unasked: stop the rest and fail with its status
                stopping = True
                code = os.waitstatus_to_exitcode(code)
                status = code if code > 0 else 1
                for other in children:
                    _signal(other, signal.SIGTERM)
        return status
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _worker(serve: Callable[[], None]) -> None:
    """The child: default signal handling (the server installs its own; an ignored SIGTERM inherited from the
    parent's parent must not make a worker unstoppable), serve, and never return into the parent's code."""
    code = 0
    try:
        for signum in SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        serve()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:  # the traceback goes to the shared stderr; the parent stops the others
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
