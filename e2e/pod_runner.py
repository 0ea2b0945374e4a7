"""Play the kubelet for real: run a pod's container as a local process and report it back to the API server.

kwok marks pods Running without running anything; tests that need the work done (a worker writing a
dataset, a router answering requests) hand their pods to a `PodRunner` instead. For each pod it:

- waits until the scheduler bound the pod to a node, as a kubelet only starts its own pods;
- materializes the container's volume mounts under a per-pod stand-in root: ConfigMap volumes (data and
  binaryData, `items`), projected volumes (the ServiceAccount token from the TokenRequest API bound to the
  pod, `kube-root-ca.crt`, the namespace from the downward API), emptyDirs, and PersistentVolumeClaims as
  directories shared by every pod the runner starts (one stand-in node disk per claim);
- resolves the environment (`value`, `fieldRef`, `secretKeyRef`, `configMapKeyRef`, `envFrom`) and adds what
  a kubelet adds (`KUBERNETES_SERVICE_HOST/PORT`, here the real API server on loopback);
- runs the container's command with `QUORUM_FS_ROOT` naming the stand-in root (Quorum resolves pod paths
  under it, see quorum.worker.podfs), and maps container ports to free loopback ports (`--host 0.0.0.0`
  becomes 127.0.0.1, `--port <containerPort>` the mapped port), like a port-forward;
- patches the pod status: Running (Ready once the readiness probe answers), then Succeeded/Failed with the
  exit code and the termination message (the file, or the log tail for `FallbackToLogsOnError`);
- stops the process when the pod is deleted (a suspended Job, a rolled Deployment).

Without a token mount (`automountServiceAccountToken: false`) the process gets no credentials at all, so
least privilege is exercised for real: a worker can do exactly what its ServiceAccount may.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from quorum.llm.local import free_port

log = logging.getLogger(__name__)

FS_ROOT_ENV = "QUORUM_FS_ROOT"
PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_NUM_THREADS")
"""Host settings a process needs to start at all; nothing else of the test's environment leaks in."""
LOG_TAIL_BYTES = 2048
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
PODNET_DIR = Path(__file__).parent / "podnet"
"""`sitecustomize.py` that resolves Service names to the runner's loopback ports (see `_refresh_services`)."""
SERVICES_REFRESH_SECONDS = 1.0


class PodStartError(RuntimeError):
    """The runner cannot start the pod (unknown image command, missing ConfigMap, unsupported field)."""


def default_executables() -> dict[str, str]:
    """`quorum` in the pod is this environment's `quorum` console script."""
    return {"quorum": str(Path(sys.executable).parent / "quorum")}


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class PodRun:
    """One started pod: its process, stand-in root and port map."""

    name: str
    uid: str
    root: Path
    ports: dict[int, int] = field(default_factory=dict)
    """containerPort → loopback port."""
    process: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None
    message: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    named_ports: dict[str, int] = field(default_factory=dict)
    ready: bool = False

    @property
    def log_path(self) -> Path:
        return self.root.parent / f"{self.root.name}.log"

    def url(self, container_port: int | None = None) -> str:
        port = self.ports[container_port] if container_port is not None else next(iter(self.ports.values()))
        return f"http://127.0.0.1:{port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class PodRunner:
    """Runs the pods of `namespace` that match `selector` (a label selector) until closed.

    `with PodRunner(kubeconfig, namespace, workdir).serving("app.kubernetes.io/managed-by=quorum") as runner:`
    """

    def __init__(
        self,
        kubeconfig: str | Path,
        namespace: str,
        workdir: Path,
        *,
        executables: Mapping[str, str] | None = None,
        poll_seconds: float = 0.2,
    ) -> None:
        self.namespace = namespace
        self.workdir = workdir
        self.executables = dict(executables or default_executables())
        self.poll_seconds = poll_seconds
        configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
        self.api_client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api_client)
        self.dynamic = DynamicClient(self.api_client)
        self.pods_api = self.dynamic.resources.get(api_version="v1", kind="Pod")
        self.server = configuration.host
        self.runs: dict[str, PodRun] = {}
        self.services_file = workdir / "services.json"
        self._services_at = 0.0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- serving -------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def serving(self, selector: str) -> Iterator[PodRunner]:
        """Watch for matching pods in a thread and run each one; stop every process on exit."""
        watcher = threading.Thread(target=self._watch, args=(selector,), name="pod-runner", daemon=True)
        watcher.start()
        try:
            yield self
        finally:
            self._stop.set()
            watcher.join(10)
            for run in list(self.runs.values()):
                self._terminate(run)
            for thread in self._threads:
                thread.join(10)

    def _watch(self, selector: str) -> None:
        while not self._stop.is_set():
            try:
                pods = self.pods_api.get(namespace=self.namespace, label_selector=selector).to_dict()["items"]
            except Exception as error:  # the API server is restarting or the namespace is going away
                log.warning("listing pods failed: %s", error)
                pods = []
            live = {p["metadata"]["uid"] for p in pods if not p["metadata"].get("deletionTimestamp")}
            for pod in pods:
                uid = pod["metadata"]["uid"]
                phase = (pod.get("status") or {}).get("phase", "Pending")
                if uid in self.runs or phase != "Pending" or uid not in live or not pod["spec"].get("nodeName"):
                    continue
                run = PodRun(pod["metadata"]["name"], uid, self.workdir / "pods" / pod["metadata"]["name"])
                with self._lock:
                    self.runs[uid] = run
                thread = threading.Thread(target=self._run_guarded, args=(pod, run), name=run.name, daemon=True)
                self._threads.append(thread)
                thread.start()
            for run in list(self.runs.values()):
                if run.uid not in live and run.exit_code is None:
                    self._terminate(run)  # deleted pod: the kubelet kills its containers
            if time.monotonic() - self._services_at > SERVICES_REFRESH_SECONDS:
                self._refresh_services(live)
            self._stop.wait(self.poll_seconds)

    def _refresh_services(self, live: set[str]) -> None:
        """Play kube-proxy: every Service port of the namespace maps to the loopback port of a ready, live pod
        its selector matches (none: the name does not resolve), written for the pods' `sitecustomize`."""
        self._services_at = time.monotonic()
        try:
            services = self.dynamic.resources.get(api_version="v1", kind="Service").get(namespace=self.namespace)
        except Exception as error:  # the API server is restarting; the next round tries again
            log.warning("listing services failed: %s", error)
            return
        table: dict[str, str] = {}
        ready = [r for r in self.runs.values() if r.ready and r.uid in live and r.exit_code is None]
        for service in services.to_dict()["items"]:
            selector = service["spec"].get("selector") or {}
            backends = [r for r in ready if selector and selector.items() <= r.labels.items()]
            host = f"{service['metadata']['name']}.{self.namespace}.svc"
            for port in service["spec"].get("ports") or []:
                target = port.get("targetPort", port["port"])
                for run in backends:
                    container_port = run.named_ports.get(target) if isinstance(target, str) else int(target)
                    if container_port in run.ports:
                        table[f"{host}:{port['port']}"] = f"127.0.0.1:{run.ports[container_port]}"
                        break
        self.workdir.mkdir(parents=True, exist_ok=True)
        staged = self.services_file.with_suffix(".tmp")
        staged.write_text(json.dumps(table))
        staged.replace(self.services_file)

    def _run_guarded(self, pod: dict[str, Any], run: PodRun) -> None:
        try:
            self.run_pod(pod, run)
        except Exception as error:
            self.errors.append(f"{run.name}: {error}")
            log.exception("pod %s could not run", run.name)
            with contextlib.suppress(Exception):
                self._report_terminated(pod, run, 128, f"{type(error).__name__}: {error}")

    def find(self, name_prefix: str) -> PodRun:
        """The started pod whose name starts with `name_prefix` (newest first)."""
        matches = [r for r in self.runs.values() if r.name.startswith(name_prefix)]
        if not matches:
            raise KeyError(f"no started pod named {name_prefix}*; started: {[r.name for r in self.runs.values()]}")
        return matches[-1]

    # -- one pod --------------------------------------------------------------------------------------------

    def run_pod(self, pod: dict[str, Any], run: PodRun) -> None:
        spec = pod["spec"]
        if len(spec["containers"]) != 1 or spec.get("initContainers"):
            raise PodStartError("the runner starts pods with exactly one container and no init containers")
        container = spec["containers"][0]
        if run.root.exists():
            shutil.rmtree(run.root)
        run.root.mkdir(parents=True)
        self._mount_volumes(pod, container, run.root)
        termination = run.root / container.get("terminationMessagePath", "/dev/termination-log").lstrip("/")
        termination.parent.mkdir(parents=True, exist_ok=True)
        termination.write_bytes(b"")
        run.labels = dict(pod["metadata"].get("labels") or {})
        for port in container.get("ports") or []:
            run.ports[int(port["containerPort"])] = free_port()
            if port.get("name"):
                run.named_ports[port["name"]] = int(port["containerPort"])
        argv = container_argv(container, self.executables, run.ports, run.root)
        env = self._environment(pod, container, run.root)
        with run.log_path.open("wb") as log_file:
            run.process = subprocess.Popen(argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=run.root)
        probe = container.get("readinessProbe")
        self._report_running(pod, ready=probe is None)
        run.ready = probe is None
        if probe is not None:
            self._wait_ready(pod, container, run)
        code = run.process.wait()
        run.exit_code = code
        message = termination.read_text(errors="replace").strip()
        if not message and code != 0 and container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            message = run.log_text()[-LOG_TAIL_BYTES:].strip()
        run.message = message
        if not self._stop.is_set() or code == 0:
            self._report_terminated(pod, run, code, message)

    # -- volumes --------------------------------------------------------------------------------------------

    def _mount_volumes(self, pod: dict[str, Any], container: dict[str, Any], root: Path) -> None:
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            target = root / mount["mountPath"].lstrip("/")
            if mount.get("subPath"):
                raise PodStartError(f"volume mount {mount['name']}: subPath is not supported by the runner")
            if "configMap" in volume:
                self._write_files(target, self._config_map_files(volume["configMap"]))
            elif "secret" in volume:
                self._write_files(target, self._secret_files(volume["secret"]))
            elif "projected" in volume:
                files: dict[str, bytes] = {}
                for source in volume["projected"]["sources"]:
                    files |= self._projected_files(pod, source)
                self._write_files(target, files)
            elif "emptyDir" in volume:
                target.mkdir(parents=True, exist_ok=True)
            elif "persistentVolumeClaim" in volume:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(self._claim_path(volume["persistentVolumeClaim"]["claimName"]), True)
            else:
                raise PodStartError(f"volume {mount['name']}: unsupported source {sorted(volume)}")

    def _claim_path(self, claim: str) -> Path:
        """The directory behind a bound claim: its PersistentVolume's `hostPath` (the scheduler only placed
        the pod once the claim was bound)."""
        found = self._get("PersistentVolumeClaim", claim)
        volume_name = ((found or {}).get("spec") or {}).get("volumeName")
        if not volume_name:
            raise PodStartError(f"PersistentVolumeClaim {claim} is not bound")
        volume = self.dynamic.resources.get(api_version="v1", kind="PersistentVolume").get(name=volume_name)
        host_path = (volume.to_dict()["spec"].get("hostPath") or {}).get("path")
        if not host_path:
            raise PodStartError(f"PersistentVolume {volume_name}: the runner mounts hostPath volumes only")
        return Path(host_path)

    @staticmethod
    def _write_files(target: Path, files: Mapping[str, bytes]) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(data)

    def _get(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return (
                self.dynamic.resources.get(api_version="v1", kind=kind)
                .get(name=name, namespace=self.namespace)
                .to_dict()
            )
        except NotFoundError:
            return None

    @staticmethod
    def _pick(items: list[dict[str, Any]] | None, files: dict[str, bytes]) -> dict[str, bytes]:
        if not items:
            return files
        return {item["path"]: files[item["key"]] for item in items if item["key"] in files}

    def _config_map_files(self, source: dict[str, Any], wait_seconds: float = 30.0) -> dict[str, bytes]:
        deadline = time.monotonic() + wait_seconds
        while (found := self._get("ConfigMap", source["name"])) is None:
            if source.get("optional"):
                return {}
            if time.monotonic() > deadline:  # a kubelet would keep the pod in ContainerCreating
                raise PodStartError(f"ConfigMap {source['name']} not found")
            time.sleep(0.5)
        files = {k: v.encode() for k, v in (found.get("data") or {}).items()}
        files |= {k: base64.b64decode(v) for k, v in (found.get("binaryData") or {}).items()}
        return self._pick(source.get("items"), files)

    def _secret_files(self, source: dict[str, Any]) -> dict[str, bytes]:
        found = self._get("Secret", source["secretName"] if "secretName" in source else source["name"])
        if found is None:
            if source.get("optional"):
                return {}
            raise PodStartError(f"Secret {source.get('secretName') or source.get('name')} not found")
        files = {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}
        return self._pick(source.get("items"), files)

    def _projected_files(self, pod: dict[str, Any], source: dict[str, Any]) -> dict[str, bytes]:
        if "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            return {token["path"]: self._token(pod, token).encode()}
        if "configMap" in source:
            return self._config_map_files(source["configMap"])
        if "secret" in source:
            return self._secret_files(source["secret"])
        if "downwardAPI" in source:
            return {
                item["path"]: field_value(pod, item["fieldRef"]["fieldPath"]).encode()
                for item in source["downwardAPI"]["items"]
            }
        raise PodStartError(f"unsupported projected source {sorted(source)}")

    def _token(self, pod: dict[str, Any], token: dict[str, Any]) -> str:
        """A token from the TokenRequest API bound to this pod: it dies with the pod, as the kubelet's does."""
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[token["audience"]] if token.get("audience") else [],
                expiration_seconds=int(token.get("expirationSeconds") or 3607),
                bound_object_ref=client.V1BoundObjectReference(
                    api_version="v1", kind="Pod", name=pod["metadata"]["name"], uid=pod["metadata"]["uid"]
                ),
            )
        )
        account = pod["spec"].get("serviceAccountName") or "default"
        response = self.core.create_namespaced_service_account_token(account, self.namespace, request)
        return response.status.token

    # -- environment ----------------------------------------------------------------------------------------

    def _environment(self, pod: dict[str, Any], container: dict[str, Any], root: Path) -> dict[str, str]:
        env = {key: os.environ[key] for key in PASSTHROUGH_ENV if key in os.environ}
        server = urlparse(self.server)
        env |= {
            "KUBERNETES_SERVICE_HOST": server.hostname or "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(server.port or 443),
            "HOSTNAME": pod["metadata"]["name"],
            # Cluster DNS for Service names (e2e/podnet/sitecustomize.py), as a kubelet's resolv.conf gives.
            "PYTHONPATH": str(PODNET_DIR),
            "QUORUM_E2E_SERVICES": str(self.services_file),
        }
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                files = self._config_map_files({**source["configMapRef"], "optional": True})
            else:
                files = self._secret_files({**source["secretRef"], "optional": True})
            env |= {prefix + k: v.decode() for k, v in files.items()}
        for entry in container.get("env") or []:
            value = self._env_value(pod, entry)
            if value is not None:
                env[entry["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)
        env[FS_ROOT_ENV] = str(root)
        return env

    def _env_value(self, pod: dict[str, Any], entry: dict[str, Any]) -> str | None:
        if "valueFrom" not in entry:
            return entry.get("value", "")
        source = entry["valueFrom"]
        if "fieldRef" in source:
            return field_value(pod, source["fieldRef"]["fieldPath"])
        for kind, ref_key in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            if kind in source:
                ref = source[kind]
                found = self._get(ref_key, ref["name"]) or {}
                if ref_key == "Secret":
                    raw = (found.get("data") or {}).get(ref["key"])
                    value = base64.b64decode(raw).decode() if raw is not None else None
                else:
                    value = (found.get("data") or {}).get(ref["key"])
                if value is None and not ref.get("optional"):
                    raise PodStartError(f"env {entry['name']}: {ref_key} {ref['name']} has no key {ref['key']!r}")
                return value
        raise PodStartError(f"env {entry['name']}: unsupported valueFrom {sorted(source)}")

    # -- status ---------------------------------------------------------------------------------------------

    def _patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        self.pods_api.status.patch(
            name=pod["metadata"]["name"],
            namespace=self.namespace,
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    def _conditions(self, ready: bool) -> list[dict[str, Any]]:
        now = now_rfc3339()
        flag = "True" if ready else "False"
        return [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
            {"type": "Ready", "status": flag, "lastTransitionTime": now},
        ]

    def _container_status(self, pod: dict[str, Any], state: dict[str, Any], ready: bool) -> list[dict[str, Any]]:
        container = pod["spec"]["containers"][0]
        return [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": ready,
                "started": "running" in state,
                "restartCount": 0,
                "state": state,
            }
        ]

    def _report_running(self, pod: dict[str, Any], *, ready: bool) -> None:
        started = now_rfc3339()
        pod.setdefault("_started", started)
        self._patch_status(
            pod,
            {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}],
                "startTime": started,
                "conditions": self._conditions(ready),
                "containerStatuses": self._container_status(pod, {"running": {"startedAt": started}}, ready),
            },
        )

    def _wait_ready(self, pod: dict[str, Any], container: dict[str, Any], run: PodRun) -> None:
        probe = container["readinessProbe"].get("httpGet")
        if probe is None:
            raise PodStartError("the runner probes httpGet readiness only")
        port = probe["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in container["ports"] if p.get("name") == port)
        url = f"http://127.0.0.1:{run.ports[int(port)]}{probe.get('path', '/')}"
        assert run.process is not None
        while run.process.poll() is None and not self._stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2.0).status_code < 400:
                    self._report_running(pod, ready=True)
                    run.ready = True
                    return
            time.sleep(0.2)

    def _report_terminated(self, pod: dict[str, Any], run: PodRun, code: int, message: str) -> None:
        now = now_rfc3339()
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": pod.get("_started", now),
            "finishedAt": now,
        }
        if message:
            terminated["message"] = message
        self._patch_status(
            pod,
            {
                "phase": "Succeeded" if code == 0 else "Failed",
                "conditions": self._conditions(False),
                "containerStatuses": self._container_status(pod, {"terminated": terminated}, False),
            },
        )

    def _terminate(self, run: PodRun) -> None:
        process = run.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def container_argv(
    container: dict[str, Any], executables: Mapping[str, str], ports: dict[int, int], root: Path
) -> list[str]:
    """The command line with mounted paths under the stand-in root (what a bind mount would make of
    them) and container ports mapped to loopback ports."""
    command = list(container.get("command") or [])
    if not command or command[0] not in executables:
        raise PodStartError(f"no local executable for command {command[:1]} (known: {sorted(executables)})")
    # Only the container's own arguments are rewritten: the executable is this machine's, and its path may
    # well start with a mount path (a checkout under /tmp while the pod mounts an emptyDir at /tmp).
    argv = [*command[1:], *(container.get("args") or [])]
    mounts = [m["mountPath"] for m in container.get("volumeMounts") or []]
    mapped: list[str] = [executables[command[0]]]
    for i, arg in enumerate(argv):
        previous = argv[i - 1] if i else ""
        if previous == "--host" and arg == "0.0.0.0":
            arg = "127.0.0.1"
        elif previous == "--port" and arg.isdigit() and int(arg) in ports:
            arg = str(ports[int(arg)])
        elif arg.startswith("--port=") and arg[7:].isdigit() and int(arg[7:]) in ports:
            arg = f"--port={ports[int(arg[7:])]}"
        elif arg == "--host=0.0.0.0":
            arg = "--host=127.0.0.1"
        elif any(arg == m or arg.startswith(m.rstrip("/") + "/") for m in mounts):
            arg = str(root) + arg
        mapped.append(arg)
    return mapped


def field_value(pod: dict[str, Any], path: str) -> str:
    """The downward API: `metadata.name`, `metadata.annotations['key']`, `spec.nodeName`, `status.podIP`, ..."""
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((pod["metadata"].get(match[1]) or {}).get(match[2], ""))
    simple = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "metadata.uid": pod["metadata"]["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path not in simple:
        raise PodStartError(f"unsupported fieldRef {path}")
    return simple[path]


def dump_runs(runner: PodRunner) -> str:
    """Every started pod with its exit code, message and log tail (printed when a test fails)."""
    lines = []
    for run in runner.runs.values():
        lines.append(f"--- {run.name}: exit {run.exit_code} message {json.dumps(run.message)[:400]}")
        lines.append(run.log_text()[-3000:])
    return "\n".join(lines)
