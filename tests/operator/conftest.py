"""Fixtures for the operator's cluster tests: the real operator, in-process, against the local plane."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from quorum.handlers.kube import Kube, load_config
from quorum.handlers.runner import OperatorOptions, run_operator

MANUAL_PODS = {"quorum.dev/e2e-pod-status": "manual"}
"""kwok leaves pods with this annotation alone, so the test decides their fate (see e2e/pods.py)."""


@contextmanager
def operator_running(options: OperatorOptions) -> Iterator[None]:
    """The operator as `quorum operator run` runs it, in a thread with its own event loop."""
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(run_operator(options, stop_flag=stop, ready_flag=ready))
        except BaseException as error:  # surfaced in the test thread
            errors.append(error)
            ready.set()

    thread = threading.Thread(target=main, name="quorum-operator", daemon=True)
    thread.start()
    assert ready.wait(60), "operator did not start"
    if errors:
        raise errors[0]
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


@pytest.fixture
def api(kubeconfig: Path) -> Kube:
    """Fast reads for polling (kubectl per poll would dominate the test time)."""
    return Kube(load_config(str(kubeconfig)))


@pytest.fixture
def start_operator(kubeconfig: Path, namespace: str) -> Callable[..., Any]:
    """Start the operator watching the test's namespace: `with start_operator(manual_pods=True): ...`."""

    def start(*, manual_pods: bool = False) -> Any:
        return operator_running(
            OperatorOptions(
                namespaces=[namespace],
                kubeconfig=str(kubeconfig),
                image="quorum:test",
                pod_annotations=MANUAL_PODS if manual_pods else {},
            )
        )

    return start
