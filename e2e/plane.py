"""ControlPlane: etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok on loopback.

A real API server (admission, RBAC, CEL validation, server-side apply, garbage collection, Jobs and
Deployments reconciled by the real controllers) with kwok standing in for kubelets, so pods are scheduled,
run and become Ready in seconds without a container runtime. One plane lives in one workdir; everything
about it (certificates, kubeconfigs, etcd data, logs, pid files, state.json) is under that directory, so
`stop()` from any process, or `rm -rf`, leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from e2e import components, paths, versions
from e2e import pki as pkimod
from e2e.components import ORDER, Layout, Ports
from e2e.kube import Kube, eventually
from e2e.kubeconfig import write_kubeconfig
from e2e.netutil import LOOPBACK, probe, tls_context
from e2e.nodes import DEFAULT_NODES, KWOK_SELECTOR, FakeNode
from e2e.pods import MANUAL_STATUS_SELECTOR
from e2e.procs import PidFile, spawn, stop
from e2e.target import Cluster

REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")
LOG_TAIL_LINES = 40
PORT_RACE_ATTEMPTS = 2


class PlaneError(RuntimeError):
    """The plane failed to start; the message carries the failing component's log tail."""


class ControlPlane(Cluster):
    def __init__(
        self,
        workdir: Path,
        *,
        binaries: Path | None = None,
        nodes: Sequence[FakeNode] = DEFAULT_NODES,
        crd_dirs: Sequence[Path] = (),
        detached: bool = False,
        start_timeout: float = 120.0,
        name: str = components.CLUSTER_NAME,
    ) -> None:
        """`detached=False` (tests) ties the components' lives to this process; `make cluster-up` detaches.

        `crd_dirs` are installed before the controller manager starts: its garbage collector discovers new
        resource types only every 30 s, so CRDs it sees at startup have working owner-reference cleanup at
        once, while CRDs created later take up to half a minute to get it (as in any cluster).
        """
        self.layout = Layout(Path(workdir).resolve())
        self.binaries = binaries or paths.bin_dir()
        self.nodes = tuple(nodes)
        self.crd_dirs = tuple(crd_dirs)
        self.detached = detached
        self.start_timeout = start_timeout
        self.name = name
        self.ports: Ports | None = None
        self.timings: dict[str, float] = {}
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        if self.layout.state.is_file():
            state = json.loads(self.layout.state.read_text())
            self.ports = Ports(**state["ports"])

    @property
    def workdir(self) -> Path:
        return self.layout.workdir

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def kube(self) -> Kube:
        """kubectl as the cluster admin, using the kubectl built alongside this plane's binaries."""
        return Kube(self.kubeconfig, binary=self.binaries / "kubectl")

    @property
    def server(self) -> str:
        if self.ports is None:
            raise PlaneError("plane has no ports: not started")
        return f"https://{LOOPBACK}:{self.ports.apiserver}"

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        missing = [b for b in REQUIRED_BINARIES if not (self.binaries / b).is_file()]
        if missing:
            raise PlaneError(f"missing {', '.join(missing)} in {self.binaries}: run `make k8s` first")
        if any(self.pids().values()):
            raise PlaneError(f"a plane is already running in {self.workdir}: stop it first")
        started = time.monotonic()
        for attempt in range(PORT_RACE_ATTEMPTS):
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir.mkdir(parents=True)
            try:
                self._start_phases()
                break
            except BaseException as exc:
                self.stop(remove=False)
                if not isinstance(exc, Exception):
                    raise
                # Ports are picked free, then bound by the components a moment later; another process on the
                # machine can take one in between. That is worth one more try with fresh ports.
                lost_port = "address already in use" in str(exc)
                if lost_port and attempt + 1 < PORT_RACE_ATTEMPTS:
                    continue
                raise PlaneError(f"{exc}\n(logs kept in {self.layout.logs})") from exc
        self.timings["total"] = round(time.monotonic() - started, 2)
        self._write_state()
        return self

    def _start_phases(self) -> None:
        ports = self.ports = Ports.allocate()
        with self._phase("pki"):
            self.layout.pki.generate()
            self._write_kubeconfigs()
        with self._phase("etcd"):
            self._spawn("etcd", components.etcd(self.binaries, self.layout, ports))
            self._await("etcd", lambda: probe(f"http://{LOOPBACK}:{ports.etcd_client}/health")[0] == 200)
        with self._phase("kube-apiserver"):
            self._spawn("kube-apiserver", components.apiserver(self.binaries, self.layout, ports))
            admin = tls_context(self.layout.pki.ca_cert, *self._client_pair(pkimod.ADMIN))
            self._await("kube-apiserver", lambda: probe(f"{self.server}/readyz", admin)[0] == 200)
        with self._phase("crds"):
            self.install_crds(*self.crd_dirs)
        with self._phase("controllers"):
            self._spawn("kube-controller-manager", components.controller_manager(self.binaries, self.layout, ports))
            self._spawn("kube-scheduler", components.scheduler(self.binaries, self.layout, ports))
            self._spawn(
                "kwok",
                components.kwok(self.binaries, self.layout, ports, KWOK_SELECTOR, MANUAL_STATUS_SELECTOR),
            )
            self.kube.apply([node.manifest() for node in self.nodes])
            insecure = tls_context()
            for name, port in (
                ("kube-controller-manager", ports.controller_manager),
                ("kube-scheduler", ports.scheduler),
            ):
                self._await(name, lambda p=port: probe(f"https://{LOOPBACK}:{p}/healthz", insecure)[0] == 200)
        with self._phase("nodes-ready"):
            self._await("kwok", self._nodes_ready, what="fake nodes Ready")
        with self._phase("service-accounts"):
            # The token and service-account controllers are running once `default` exists in `default`.
            self._await(
                "kube-controller-manager",
                lambda: self.kube.exists("serviceaccount", "default"),
                what="the default service account",
            )

    def stop(self, remove: bool = True) -> None:
        """Stop every component (reverse start order) from any process; remove the workdir if asked."""
        for name in reversed(ORDER):
            child = self._children.pop(name, None)
            stop(PidFile(self.layout.run / f"{name}.pid"), reap=child.poll if child else None)
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- inspection ------------------------------------------------------------------------------------

    def pids(self) -> dict[str, int | None]:
        return {name: PidFile(self.layout.run / f"{name}.pid").live_pid() for name in ORDER}

    def is_ready(self) -> bool:
        if self.ports is None or not all(self.pids().values()):
            return False
        admin = tls_context(self.layout.pki.ca_cert, *self._client_pair(pkimod.ADMIN))
        return probe(f"{self.server}/readyz", admin)[0] == 200

    def describe(self) -> dict[str, Any]:
        state = json.loads(self.layout.state.read_text()) if self.layout.state.is_file() else {}
        return {**state, "pids": self.pids(), "ready": self.is_ready()}

    def log_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> str:
        log = self.layout.logs / f"{name}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.is_file() else ""

    # ---- internals -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        yield
        self.timings[name] = round(time.monotonic() - began, 2)

    def _client_pair(self, identity: pkimod.Identity) -> tuple[Path, Path]:
        return self.layout.pki.cert(identity), self.layout.pki.key(identity)

    def _write_kubeconfigs(self) -> None:
        pki = self.layout.pki
        for identity in pkimod.CLIENTS:
            target = (
                self.layout.kubeconfig if identity is pkimod.ADMIN else self.layout.component_kubeconfig(identity.name)
            )
            write_kubeconfig(
                target,
                cluster=self.name,
                server=self.server,
                ca=pki.ca_cert,
                cert=pki.cert(identity),
                key=pki.key(identity),
                user=identity.user,
            )

    def _spawn(self, name: str, argv: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "HTTPS_PROXY", "HTTP_PROXY")}
        self._children[name] = spawn(
            name, argv, self.layout.run, self.layout.logs, die_with_parent=not self.detached, env=env
        )

    def _await(self, name: str, ready: Callable[[], bool], what: str | None = None) -> None:
        """Poll `ready` until the start deadline; fail at once, with its log, if `name` exits meanwhile."""
        child = self._children[name]

        def check() -> bool:
            if child.poll() is not None:
                raise PlaneError(f"{name} exited with {child.returncode}:\n{self.log_tail(name)}")
            return ready()

        try:
            eventually(check, timeout=self.start_timeout, interval=0.1, what=what or f"{name} to be ready")
        except TimeoutError as exc:
            raise PlaneError(f"{exc}; {name} log:\n{self.log_tail(name)}") from exc

    def _nodes_ready(self) -> bool:
        items = self.kube.get("nodes")["items"]
        ready = {
            n["metadata"]["name"]
            for n in items
            for c in n.get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"
        }
        return {node.name for node in self.nodes} <= ready

    def _write_state(self) -> None:
        assert self.ports is not None
        state = {
            "name": self.name,
            "kubernetes": versions.KUBERNETES,
            "kwok": versions.KWOK,
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "binaries": str(self.binaries),
            "ports": json.loads(self.ports.to_json()),
            "detached": self.detached,
            "owner_pid": None if self.detached else os.getpid(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "start_seconds": self.timings,
        }
        self.layout.state.write_text(json.dumps(state, indent=2) + "\n")


def reap_stale_sessions(parent: Path) -> list[Path]:
    """Stop and remove test-session planes under `parent` whose owning process is gone.

    Session workdirs are named `session-<pid>`; a test run killed before its teardown leaves one behind
    (its components already died with it through PR_SET_PDEATHSIG, this removes the files and any straggler).
    """
    reaped = []
    for workdir in sorted(parent.glob("session-*")):
        owner = workdir.name.removeprefix("session-")
        if owner.isdigit() and Path(f"/proc/{owner}").exists():
            continue
        ControlPlane(workdir).stop(remove=True)
        reaped.append(workdir)
    return reaped
