"""The event loop every engine process runs on: uvloop where it is installed, asyncio's own otherwise.

Why: a synthesis worker and the router spend most of their CPU moving HTTP requests through the loop; on
uvloop the same synthesis run took about 30% less CPU per sample (measured with bench/synth_throughput.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (Linux and macOS), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on `new_event_loop()`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
