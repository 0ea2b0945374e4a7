"""Child names as the builders make them, for the cluster tests (names carry a hash; see builders/meta.py)."""

from __future__ import annotations

from quorum.builders import ensemble, synthesis
from quorum.builders.backends import backend_name
from quorum.builders.meta import Owner


def sjob(name: str = "sj") -> Owner:
    return Owner(kind="SynthesisJob", name=name, namespace="", uid="")


def ensr(name: str = "er") -> Owner:
    return Owner(kind="EnsembleRouter", name=name, namespace="", uid="")


WORKER_ACCOUNT = synthesis.worker_account(sjob())
WORKERS_JOB = synthesis.workers_name(sjob())
MERGE_JOB = synthesis.merge_name(sjob())
CALIBRATOR_ACCOUNT = ensemble.calibrator_account(ensr())
ROUTER_ACCOUNT = ensemble.router_name(ensr())
__all__ = ["CALIBRATOR_ACCOUNT", "MERGE_JOB", "ROUTER_ACCOUNT", "WORKERS_JOB", "WORKER_ACCOUNT", "backend_name"]
