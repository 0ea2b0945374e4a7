"""kubectl, bound to a kubeconfig, a namespace and optionally an impersonated identity.

Tests drive the cluster the way users do: `kubectl apply` of manifests, server-side apply, `kubectl wait`,
`kubectl auth can-i`. We use the kubectl that matches the server's minor version (from the build cache) so
that client-side behaviour in tests is what users of that version get.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from e2e import paths

FIELD_MANAGER = "quorum-e2e"
T = TypeVar("T")

Manifest = Mapping[str, Any]


class KubectlError(RuntimeError):
    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"kubectl {' '.join(args)} exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


def kubectl_binary() -> Path:
    """The version-matched kubectl from the build cache, else whatever kubectl is on the PATH."""
    cached = paths.bin_dir() / "kubectl"
    if cached.is_file():
        return cached
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("no kubectl: run `make k8s` (it unpacks a version-matched kubectl)")
    return Path(found)


@dataclass(frozen=True)
class Kube:
    kubeconfig: Path
    namespace: str | None = None
    as_user: str | None = None
    as_groups: tuple[str, ...] = ()
    binary: Path = field(default_factory=kubectl_binary)

    def in_namespace(self, namespace: str) -> Kube:
        return replace(self, namespace=namespace)

    def impersonate(self, service_account: str, namespace: str | None = None) -> Kube:
        """Act as a service account; the API server adds its system:serviceaccounts groups itself."""
        ns = namespace or self.namespace or "default"
        return replace(self, as_user=f"system:serviceaccount:{ns}:{service_account}", as_groups=())

    def impersonate_user(self, user: str, *groups: str) -> Kube:
        return replace(self, as_user=user, as_groups=groups)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl; on failure (with check) raise KubectlError carrying kubectl's own message."""
        argv = [str(self.binary), f"--kubeconfig={self.kubeconfig}"]
        if self.namespace:
            argv.append(f"--namespace={self.namespace}")
        if self.as_user:
            argv.append(f"--as={self.as_user}")
        argv += [f"--as-group={g}" for g in self.as_groups]
        result = subprocess.run([*argv, *args], input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise KubectlError(args, result.returncode, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "--output=json").stdout)

    def get(self, kind: str, name: str | None = None, *selectors: str) -> dict[str, Any]:
        """One object, or a List of objects (with label selectors such as "-l", "app=x")."""
        return self.json("get", kind, *([name] if name else []), *selectors)

    def exists(self, kind: str, name: str) -> bool:
        return self.kubectl("get", kind, name, "--ignore-not-found", "--output=name").stdout.strip() != ""

    def apply(
        self,
        source: Path | str | Manifest | Sequence[Manifest],
        *,
        server_side: bool = True,
        force: bool = False,
    ) -> str:
        """Apply a file or directory (path), YAML text, or manifests; server-side by default, like GitOps.

        `force` takes over fields another manager (say, the operator) owns, as `--force-conflicts` does.
        """
        flags = ["--server-side", f"--field-manager={FIELD_MANAGER}"] if server_side else []
        if server_side and force:
            flags.append("--force-conflicts")
        if isinstance(source, Path):
            return self.kubectl("apply", *flags, "--filename", str(source)).stdout
        text = source if isinstance(source, str) else _dump(source)
        return self.kubectl("apply", *flags, "--filename=-", input=text).stdout

    def delete(self, kind: str, name: str, *, wait: bool = True, timeout: float = 60.0) -> None:
        self.kubectl(
            "delete",
            kind,
            name,
            "--ignore-not-found",
            f"--wait={str(wait).lower()}",
            f"--timeout={int(timeout)}s",
            timeout=timeout + 10,
        )

    def wait(self, target: str, condition: str, timeout: float = 60.0) -> None:
        """`kubectl wait --for=<condition> <target>`, e.g. ("deployment/web", "condition=Available")."""
        self.kubectl("wait", target, f"--for={condition}", f"--timeout={int(timeout)}s", timeout=timeout + 10)

    def can_i(self, verb: str, resource: str, *extra: str) -> bool:
        result = self.kubectl("auth", "can-i", verb, resource, *extra, check=False)
        answer = result.stdout.strip()
        if answer not in ("yes", "no"):
            raise KubectlError(("auth", "can-i", verb, resource), result.returncode, result.stderr)
        return answer == "yes"


def _dump(manifests: Manifest | Sequence[Manifest]) -> str:
    documents = [manifests] if isinstance(manifests, Mapping) else list(manifests)
    return yaml.safe_dump_all([dict(d) for d in documents], sort_keys=False)


def eventually(
    probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.25, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy; raise TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except (KubectlError, OSError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)
